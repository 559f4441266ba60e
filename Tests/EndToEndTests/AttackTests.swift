import Client
import Foundation
import Glibc
import RPC
import Testing

/// The trust boundary, tried as a hostile local user would (see README, "Who can run
/// what", and PROTOCOL.md §"Who can run what"). Each test replays one attack against the
/// real supervisor and kernel and asserts the safe outcome: refused with the documented
/// reason, or the code ran with no more than the owner's rights. Every one of them failed on
/// the code before its fix.
///
/// The attacks live in extensions of this suite, one file per area:
/// AttackTests+Entering (who runs whose files), AttackTests+Spawn (what a session is made
/// of), AttackTests+Limits (what a user can spend). Issue 14's cgroups are attacked in
/// AttackTests+Containment, a serialized suite of its own (ContainmentAttackTests), whose
/// tests each say whether they fail on the current code (a finding) or hold.
@Suite("Attacks on the trust boundary")
struct AttackTests {}
