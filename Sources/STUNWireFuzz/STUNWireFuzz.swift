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
