import Foundation
import Testing
@testable import Topology

/// `run: turn-server` / `run: coturn` with options: users, static secret, realm, limits.
@Suite struct TURNRoleTests {
    @Test func bareNamesStayValid() throws {
        let t = try load("""
        hosts:
          r: { attach: internet, run: turn-server }
          c: { attach: internet, run: coturn }
        """)
        #expect(t.hosts.map(\.role) == [.turnServer(TURNRoleOptions()), .coturn(TURNRoleOptions())])
        #expect(TURNRoleOptions().effectiveUsers.map(\.name) == ["natlab"])
    }

    @Test func usersSecretRealmAndLimits() throws {
        let t = try load("""
        hosts:
          r: { attach: internet, run: { turn-server: { users: { alice: secret, bob: "p:w" }, realm: lab.test, max-lifetime: 1200, user-quota: 3 } } }
          s: { attach: internet, run: { turn-server: { static-secret: s3cret } } }
          c: { attach: internet, run: { coturn: { users: { alice: secret } } } }
          n: { attach: internet, run: { turn-server: } }
        """)
        #expect(t.hosts[0].role == .turnServer(TURNRoleOptions(users: ["alice": "secret", "bob": "p:w"], realm: "lab.test",
                                                                maxLifetime: 1200, userQuota: 3)))
        #expect(t.hosts[1].role == .turnServer(TURNRoleOptions(staticSecret: "s3cret")))
        #expect(t.hosts[1].role?.description == "turn-server (static secret)")
        #expect(t.hosts[2].role == .coturn(TURNRoleOptions(users: ["alice": "secret"])))
        #expect(t.hosts[3].role == .turnServer(TURNRoleOptions()))
    }

    @Test func errorsHavePositions() {
        let yaml = """
        hosts:
          a: { attach: internet, run: { turn-server: { users: { alice: [x] } } } }
          b: { attach: internet, run: { turn-server: { users: { "a:b": x }, static-secret: s } } }
          c: { attach: internet, run: { turn-server: { user: { alice: x } } } }
          d: { attach: internet, run: { coturn: { max-lifetime: forever, user-quota: 0 } } }
          e: { attach: internet, run: { turn-server: {}, exec: [x] } }
          f: { attach: internet, run: { turn-server: [alice] } }
          g: { attach: internet, run: { turn-server: { users: {} } } }
        """
        #expect(problems(yaml) == [
            "2:64: expected a password for user 'alice', found a list",
            "3:57: invalid user name 'a:b': no ':' or spaces",
            "3:69: `static-secret` and `users` exclude each other (time-limited credentials, or fixed users)",
            "4:48: unknown key 'user' in `turn-server`; did you mean 'users'?",
            "5:57: `max-lifetime` takes a number from 1 to 86400, found the string 'forever'",
            "5:78: `user-quota` takes a number from 1 to 65535, found the number 0",
            "6:50: `run` takes one role, found `turn-server` and `exec`",
            "7:46: expected a mapping for `turn-server` like `{ users: { alice: secret } }`, found a list",
            "8:55: `users` is empty: name at least one user, like `{ alice: secret }`",
        ])
    }

    @Test func recordsStayReadableByOlderVersions() throws {
        // Lab records carry role names only: versions that know only names must be able to read them.
        let role = Role.turnServer(TURNRoleOptions(users: ["alice": "secret"]))
        let data = try JSONEncoder().encode([role])
        #expect(String(decoding: data, as: UTF8.self) == #"["turn-server"]"#)
        let keyed = try JSONDecoder().decode([Role].self, from: Data(#"[{"coturn":{"users":{"a":"b"},"realm":"r"}}]"#.utf8))
        #expect(keyed == [.coturn(TURNRoleOptions(users: ["a": "b"], realm: "r"))])
    }
}
