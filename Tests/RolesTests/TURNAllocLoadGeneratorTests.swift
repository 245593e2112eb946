import Testing
import STUNWire
@testable import Roles

/// The allocation generator's client steps (`natlab bench-client turn-alloc`), answer by answer.
struct TURNAllocLoadGeneratorTests {
    let options = TURNAllocLoadGenerator.Options(server: STUNAddress("192.0.2.1:3478")!, username: "alice", password: "secret")

    func answer(_ c: TURNAllocLoadGenerator.Client, method: STUNMethod, _ cls: STUNClass, _ attrs: [STUNAttribute] = []) -> STUNMessage {
        STUNMessage(method: method, class: cls, transactionID: c.transaction, attributes: attrs)
    }

    @Test("401 gives realm, nonce and key; Allocate then Refresh(0) completes one cycle; a stale nonce renews it")
    func cycle() throws {
        var c = TURNAllocLoadGenerator.Client(fd: -1)
        let challenge = answer(c, method: .allocate, .errorResponse,
                               [.errorCode(STUNErrorCode(code: 401, reason: "Unauthorized")), .realm("natlab"), .nonce("n1")])
        #expect(try TURNAllocLoadGenerator.receive(challenge, client: &c, options) == 0)
        #expect(c.nonce == "n1" && c.realm == "natlab")
        #expect(c.key == .longTerm(username: "alice", realm: "natlab", password: "secret"))
        #expect(c.step == .allocate)
        #expect(try TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .successResponse), client: &c, options) == 0)
        #expect(c.step == .delete)
        #expect(try TURNAllocLoadGenerator.receive(answer(c, method: .refresh, .successResponse), client: &c, options) == 1)
        #expect(c.step == .allocate)
        let stale = answer(c, method: .allocate, .errorResponse,
                           [.errorCode(STUNErrorCode(code: 438, reason: "Stale Nonce")), .realm("natlab"), .nonce("n2")])
        #expect(try TURNAllocLoadGenerator.receive(stale, client: &c, options) == 0)
        #expect(c.nonce == "n2" && c.step == .allocate)
    }

    @Test("437 after a lost answer: an Allocate deletes the leftover first; a retransmitted delete counts as done")
    func mismatch() throws {
        var c = TURNAllocLoadGenerator.Client(fd: -1)
        let mismatch = [STUNAttribute.errorCode(STUNErrorCode(code: 437, reason: "Allocation Mismatch"))]
        #expect(try TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .errorResponse, mismatch), client: &c, options) == 0)
        #expect(c.step == .delete)
        #expect(try TURNAllocLoadGenerator.receive(answer(c, method: .refresh, .errorResponse, mismatch), client: &c, options) == 1)
        #expect(c.step == .allocate)
        #expect(throws: TURNAllocLoadGenerator.Failure.self) {
            try TURNAllocLoadGenerator.receive(answer(c, method: .allocate, .errorResponse,
                                                      [.errorCode(STUNErrorCode(code: 486, reason: "Allocation Quota Reached"))]),
                                               client: &c, options)
        }
    }
}
