import Testing
@testable import Topology

@Suite struct ChecksTests {
    let base = """
    routers:
      home1: {}
      home2: {}
    hosts:
      alice: { attach: home1 }
      bob: { attach: home2 }

    """

    @Test func defaultsAndEveryField() throws {
        let t = try load(base + """
        checks:
          - connect: [alice, bob]
            expect: direct
          - connect: [bob, alice]
            expect: relay
            deadline: 2500ms
            bytes: 10
            keepalive: 1s
            hold: 2m
            offer: [srflx, relay]
        """)
        #expect(t.checks.count == 2)
        #expect(t.checks[0] == Check(peers: ["alice", "bob"], expect: .direct))
        #expect(t.checks[1] == Check(peers: ["bob", "alice"], expect: .relay, deadlineMilliseconds: 2500, bytes: 10,
                                     keepaliveMilliseconds: 1000, holdMilliseconds: 120_000, offer: [.srflx, .relay]))
    }

    @Test func everyProblemAtItsPosition() {
        let found = problems(base + """
        checks:
          - connect: [alice, mallory]
            expect: drect
            deadline: soon
            bytes: -1
            offer: [udp]
            colour: red
          - connect: [alice, alice]
            expect: none
          - connect: [home1, bob]
            expect: none
          - expect: direct
          - connect: alice
            expect: relay
        """)
        #expect(found == [
            "8:22: unknown host 'mallory' in `connect`",
            "9:13: unknown path 'drect': expected one of direct, hairpin, relay, none; did you mean 'direct'?",
            "10:15: `deadline` takes a duration like `5s`, `500ms` or `2m` (at most 1h), found the string 'soon'",
            "11:12: `bytes` takes a number of bytes from 0 to 1073741824, found the number -1",
            "12:13: unknown candidate type 'udp': expected host, srflx, relay",
            "13:5: unknown key 'colour' in a check (expected one of: connect, expect, deadline, bytes, keepalive, consent-timeout, hold, offer, lost)",
            "14:22: a check connects two different hosts, found 'alice' twice",
            "16:15: 'home1' is a router; checks connect hosts",
            "18:5: a check needs `connect: [host, host]`",
            "19:14: `connect` takes the two hosts that must reach each other, like `[alice, bob]`, found the string 'alice'",
        ])
    }
}
