import Foundation
import Glibc
import Testing

/// Groups belong to their creator: only the owner and root may inspect or
/// destroy them, and list shows a user only their own.
@Suite struct AccessTests {
    @Test func ownerRootAndStranger() throws {
        let supervisor = try TestSupervisor()
        let alice = try TestUser.alice()
        let bob = try TestUser.bob()

        let created = try supervisor.nsgroup(["create", "alices"], as: alice)
        #expect(created.status == 0, "\(created.stderr)")
        let info = try supervisor.inspect("alices")
        #expect(info["owner"] as? Int == Int(alice.uid))
        #expect(info["ownerName"] as? String == alice.name)

        // The owner sees and inspects it.
        #expect(try supervisor.nsgroup(["inspect", "alices"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["list"], as: alice).stdout.contains("alices"))

        // A stranger is refused, and does not see it in list.
        let inspect = try supervisor.nsgroup(["inspect", "alices", "--json"], as: bob)
        #expect(inspect.status == 125)
        #expect(inspect.stdout.isEmpty)
        #expect(inspect.stderr == #"{"error":{"reason":"not_found","message":"no group named \"alices\""}}"# + "\n")
        let destroy = try supervisor.nsgroup(["destroy", "alices"], as: bob)
        #expect(destroy.status == 125)
        #expect(destroy.stderr == "nsgroup: no group named \"alices\"\n")
        #expect(try supervisor.nsgroup(["list"], as: bob).stdout.contains("alices") == false)
        #expect(try supervisor.groupNames() == ["alices"], "the refused destroy changed nothing")

        // Bob's own group is his; root sees both.
        #expect(try supervisor.nsgroup(["create", "bobs"], as: bob).status == 0)
        let bobList = try supervisor.nsgroup(["list", "--json"], as: bob).stdout
        #expect(bobList.contains("\"bobs\"") && !bobList.contains("\"alices\""))
        #expect(try supervisor.groupNames() == ["alices", "bobs"])

        // The owner may destroy; root may destroy anyone's.
        #expect(try supervisor.nsgroup(["destroy", "alices"], as: alice).status == 0)
        #expect(try supervisor.nsgroup(["destroy", "bobs"]).status == 0)
        #expect(try supervisor.groupNames().isEmpty)
    }

    @Test func socketIsReachableByEveryone() throws {
        let supervisor = try TestSupervisor()
        var st = stat()
        #expect(stat(supervisor.socketPath, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o666)
        #expect(st.st_mode & S_IFMT == S_IFSOCK)
    }
}
