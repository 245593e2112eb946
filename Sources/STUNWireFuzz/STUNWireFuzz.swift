// libFuzzer target for STUNWire. Scripts/fuzz-stun builds it with
//   -sanitize=fuzzer,address -DSTUN_FUZZ -enable-experimental-feature Extern
// and runs it. Built without STUN_FUZZ (a plain `swift build`) it is a replay tool:
//   STUNWireFuzz FILE...   runs each file through the same checks (e.g. a crash-* artifact).
import STUNWire
import Foundation

/// One input: nothing may crash, and whatever decodes must re-encode and decode to the same thing.
func fuzzOne(_ bytes: [UInt8]) {
    // Classifiers never crash and agree with each other.
    let header = STUNMessage.peekHeader(bytes)
    let isSTUN = STUNMessage.isSTUN(bytes)
    precondition(!isSTUN || header != nil)
    _ = STUNMessage.isChannelData(bytes)
    _ = bytes.withUnsafeBytes { STUNMessage.streamFrameSize($0) }
    if let first = bytes.first { _ = STUNMessage.classify(firstByte: first) }

    // ChannelData: decode -> encode reproduces the frame without its padding.
    if let cd = try? ChannelData.decode(bytes) {
        precondition(STUNMessage.isChannelData(bytes))
        let again = cd.encode(padded: false)
        precondition(again[...] == bytes[0..<again.count])
    }

    // STUN: in-place validation and the owning packet agree.
    let inPlace = bytes.withUnsafeBytes { b in Result { () throws(STUNDecodeError) in try STUNPacket.validate(b) } }
    let packet: STUNPacket
    do {
        packet = try STUNPacket(bytes)
    } catch {
        if case .success = inPlace { preconditionFailure("validate accepted what STUNPacket rejected: \(error)") }
        return
    }
    guard case .success(let h) = inPlace, h == packet.header else { preconditionFailure("validate disagrees") }
    precondition(isSTUN, "a valid packet must classify as STUN")
    _ = packet.verifyIntegrity(key: fuzzKey)
    _ = packet.unknownComprehensionRequired
    _ = packet.rawAttributes
    let message: STUNMessage
    do { message = try packet.message() } catch { return }
    precondition(message.attributes.count == packet.attributeCount)
    precondition(message.unknownComprehensionRequired == packet.unknownComprehensionRequired)

    // Round trip: encode(decode(x)) decodes to the same message (FINGERPRINT recomputed), and
    // encoding that again gives identical bytes.
    let encoded = message.encode()
    let decoded: STUNMessage
    do { decoded = try STUNMessage.decode(encoded) } catch { preconditionFailure("re-encoded message rejected: \(error)") }
    precondition(withoutFingerprint(decoded) == withoutFingerprint(message), "round trip changed the message")
    precondition(decoded.encode() == encoded, "encoding is not stable")
    _ = message.description
}

let fuzzKey = STUNIntegrityKey.shortTerm(password: "VOkJxbRl1RmTxUk/WvJxBt")

func withoutFingerprint(_ m: STUNMessage) -> STUNMessage {
    var m = m
    m.attributes = m.attributes.map { if case .fingerprint = $0 { .fingerprint(0) } else { $0 } }
    return m
}

@_cdecl("LLVMFuzzerTestOneInput")
public func stunWireFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzOne(bytes)
    return 0
}

/// Seeds beyond the RFC 5769 vectors (which Scripts/fuzz-stun writes itself): every attribute in
/// TURN/ICE messages, signed and fingerprinted, and ChannelData frames.
func writeSeeds(to dir: String) -> CInt {
    let v4 = STUNAddress(ip: .ipv4(0xC000_0201), port: 3478)
    let v6 = STUNAddress(ip: .ipv6(high: 0x2001_0DB8_0000_0000, low: 1), port: 49152)
    let key = STUNIntegrityKey.longTerm(username: "user", realm: "natlab", password: "secret")
    let messages: [(String, STUNMessage, STUNIntegrityMode?)] = [
        ("allocate-request", STUNMessage(method: .allocate, class: .request, attributes: [
            .requestedTransport(17), .lifetime(600), .evenPort(reserveNext: true), .dontFragment,
            .requestedAddressFamily(.ipv6), .additionalAddressFamily(.ipv4), .username("user"), .realm("natlab"),
            .nonce("abcdef"), .passwordAlgorithm(.sha256), .userhash([UInt8](repeating: 7, count: 32)),
        ]), .both()),
        ("allocate-success", STUNMessage(method: .allocate, class: .successResponse, attributes: [
            .xorRelayedAddress(v6), .xorMappedAddress(v4), .lifetime(600), .reservationToken(42), .software("natlab"),
        ]), .sha1),
        ("allocate-401", STUNMessage(method: .allocate, class: .errorResponse, attributes: [
            .errorCode(.unauthenticated), .realm("natlab"), .nonce("n0nce"), .passwordAlgorithms([.md5, .sha256]),
            .alternateServer(v4), .alternateDomain("turn.example"),
        ]), nil),
        ("channel-bind", STUNMessage(method: .channelBind, class: .request, attributes: [
            .channelNumber(0x4001), .xorPeerAddress(v4), .xorPeerAddress(v6),
        ]), .sha1),
        ("send-indication", STUNMessage(method: .send, class: .indication, attributes: [
            .xorPeerAddress(v6), .data([1, 2, 3, 4, 5]), .icmp(type: 3, code: 4, errorData: 1400),
            .addressErrorCode(family: .ipv6, error: .addressFamilyNotSupported), .connectionID(9),
        ]), nil),
        ("ice-check", STUNMessage(method: .binding, class: .request, attributes: [
            .username("abcd:efgh"), .priority(0x6E00_01FF), .iceControlling(tieBreaker: 1), .useCandidate,
        ]), .sha1),
        ("rfc5780", STUNMessage(method: .binding, class: .successResponse, attributes: [
            .mappedAddress(v4), .responseOrigin(v4), .otherAddress(v6), .sourceAddress(v4), .changedAddress(v4),
        ]), nil),
        ("rfc5780-request", STUNMessage(method: .binding, class: .request, attributes: [
            .changeRequest([.changeIP, .changePort]), .responsePort(4000), .padding([0, 0, 0, 0, 0]),
            .unknown(type: 0x7123, value: [1]), .unknown(type: 0xC123, value: [2, 3]),
        ]), nil),
        ("error-420", STUNMessage(method: .binding, class: .errorResponse, attributes: [
            .errorCode(.unknownAttribute), .unknownAttributes([0x7123, 0x0003]),
        ]), nil),
    ]
    var written = 0
    func write(_ name: String, _ bytes: [UInt8]) {
        if FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(bytes)) { written += 1 }
    }
    for (name, m, mode) in messages {
        write("seed-" + name, m.encode(integrity: mode.map { _ in key }, integrityMode: mode ?? .sha1, fingerprint: true))
    }
    write("seed-channeldata", ChannelData(channelNumber: 0x4001, data: [1, 2, 3, 4, 5]).encode(padded: true))
    write("seed-channeldata-empty", ChannelData(channelNumber: 0x4FFF, data: []).encode(padded: false))
    print("wrote \(written) seeds to \(dir)")
    return written == messages.count + 2 ? 0 : 1
}

#if STUN_FUZZ
// SwiftPM links executables with main = STUNWireFuzz_main, so libFuzzer's own main is not used:
// this entry point hands control to libFuzzer's driver.
@_extern(c, "LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("STUNWireFuzz_main")
func stunWireFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let args = CommandLine.arguments
    if args.count == 3, args[1] == "--write-seeds" { return writeSeeds(to: args[2]) }
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v, stunWireFuzzTestOneInput)
}
#else
@main
struct ReplayMain {
    static func main() {
        let files = CommandLine.arguments.dropFirst()
        if files.isEmpty {
            print("usage: STUNWireFuzz FILE...  (replays inputs; build with Scripts/fuzz-stun to fuzz)")
            return
        }
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("\(path): cannot read")
                continue
            }
            let bytes = [UInt8](data)
            fuzzOne(bytes)
            let verdict = (try? STUNMessage.decode(bytes)).map { "\($0)" } ?? "rejected"
            print("\(path): ok: \(verdict)")
        }
    }
}
#endif
