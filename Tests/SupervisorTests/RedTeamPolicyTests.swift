import Testing
@testable import Supervisor

/// Red-team finding on the `~` entry of access.tmpfs-paths: a home of "/home/" (a trailing
/// slash, as a careless `useradd -d /home/` or an LDAP entry writes it) is trimmed to
/// "/home" and then admits every user's home below it, which `~` must never do.
@Suite struct RedTeamPolicyTests {
    @Test func aHomeOfSlashHomeSlashAdmitsNoOneElsesHome() {
        #expect(!TmpfsPlace.home.admits("/home/bob", home: "/home/"), "a home of /home/ admitted /home/bob")
        #expect(!TmpfsPlace.home.admits("/home", home: "/home/"))
        #expect(!TmpfsPlace.home.admits("/home/bob", home: "/home//"))
        // Still: one's own home, with or without a trailing slash.
        #expect(TmpfsPlace.home.admits("/home/alice/x", home: "/home/alice/"))
        #expect(TmpfsPlace.home.admits("/home/alice", home: "/home/alice"))
    }
}
