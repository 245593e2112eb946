import Testing
import STUNWire
@testable import Roles

/// The allocation generator's client steps (`natlab bench-client turn-alloc`), answer by answer.
struct TURNAllocLoadGeneratorTests {
    let options = TURNAllocLoadGenerator.Options(server: STUNAddress("192.0.2.1:3478")!, username: "alice", password: "secret")
    let relayed = STUNAttribute.xorRelayedAddress(STUNAddress("192.0.2.1:50000")!)

    func answer(_ c: TURNAllocLoadGenerator.Client, method: STUNMethod, _ cls: STUNClass, _ attrs: [STUNAttribute] = []) -> STUNMessage {
        STUNMessage(method: method, class: cls, transactionID: c.transaction, attributes: attrs)
    }

    func error(_ code: Int, _ reason: String, nonce: String? = nil) -> [STUNAttribute] {
        [.errorCode(STUNErrorCode(code: code, reason: reason))] + (nonce.map { [.realm("natlab"), .nonce($0)] } ?? [])
    }

    @Test("A cycle is a real client's: 401, authenticated Allocate with a relayed address, Refresh(0); a stale nonce renews")
    func cycle() throws {
        var c = TURNAllocLoadGenerator.Client(fd: -1)
        #expect(c.step == .challenge)
        #expect(try !TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .errorResponse, error(401, "Unauthorized", nonce: "n1")),
                                                    client: &c, options))
        #expect(c.nonce == "n1" && c.realm == "natlab")
        #expect(c.key == .longTerm(username: "alice", realm: "natlab", password: "secret"))
        #expect(c.step == .allocate)
        #expect(try !TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .errorResponse, error(438, "Stale Nonce", nonce: "n2")),
                                                    client: &c, options))
        #expect(c.nonce == "n2" && c.step == .allocate)
        #expect(try !TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .successResponse, [relayed]), client: &c, options))
        #expect(c.step == .delete)
        #expect(try TURNAllocLoadGenerator.receive(answer(c, method: .refresh, .successResponse), client: &c, options))
    }

    @Test("Only real allocations count: a success without a relayed address, an error, or 401 to a Refresh are refused")
    func notAllocations() throws {
        var c = TURNAllocLoadGenerator.Client(fd: -1)
        c.step = .allocate
        // (The run loop takes 437 to a new client's Allocate as a busy port before it gets here.)
        #expect(throws: TURNAllocLoadGenerator.Failure.self) {
            try TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .errorResponse, error(437, "Allocation Mismatch")), client: &c, options)
        }
        #expect(throws: TURNAllocLoadGenerator.Failure.self) {
            try TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .successResponse), client: &c, options)
        }
        #expect(throws: TURNAllocLoadGenerator.Failure.self) {
            try TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .errorResponse, error(486, "Allocation Quota Reached")), client: &c, options)
        }
        c.step = .delete
        #expect(throws: TURNAllocLoadGenerator.Failure.self) {
            try TURNAllocLoadGenerator.receive(answer(c, method: .refresh, .errorResponse, error(401, "Unauthorized", nonce: "n3")), client: &c, options)
        }
    }

    @Test("437 to a retransmitted Refresh(0): the original deleted the allocation, the cycle is done")
    func retransmittedDelete() throws {
        var c = TURNAllocLoadGenerator.Client(fd: -1)
        c.step = .delete
        #expect(try TURNAllocLoadGenerator.receive(answer(c, method: .refresh, .errorResponse, error(437, "Allocation Mismatch")), client: &c, options))
    }
}
