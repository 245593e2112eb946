import Foundation
import Testing
@testable import Lab

/// natlab's own date coding (no root needed): the same text as Foundation's `.iso8601`, both ways.
struct TimestampTests {
    @Test("Format and parse agree with Foundation's .iso8601 strategy, and bad text is refused")
    func agreesWithFoundation() throws {
        struct Box: Codable, Equatable { var d: Date }
        let foundationEncoder = JSONEncoder(), foundationDecoder = JSONDecoder()
        foundationEncoder.dateEncodingStrategy = .iso8601
        foundationDecoder.dateDecodingStrategy = .iso8601
        let ours = JSONEncoder(), oursDecoder = JSONDecoder()
        ours.dateEncodingStrategy = Timestamp.encoding
        oursDecoder.dateDecodingStrategy = Timestamp.decoding
        var seconds: [Double] = [0, 951_782_400, 1_795_000_000, 4_102_444_799, 1_700_000_000.75]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 { seconds.append(Double(UInt32.random(in: 0...UInt32.max, using: &rng))) }
        for s in seconds {
            let box = Box(d: Date(timeIntervalSince1970: s))
            let a = try ours.encode(box), b = try foundationEncoder.encode(box)
            #expect(a == b, "\(s)")
            #expect(try oursDecoder.decode(Box.self, from: b) == (try foundationDecoder.decode(Box.self, from: b)))
        }
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_795_000_000)) == "2026-11-18T11:06:40Z")
        for bad in ["", "2026-11-29", "2026-11-29T13:01:33", "2026-13-29T13:01:33Z", "2026-11-29T25:01:33Z",
                    "2026-11-29 13:01:33Z", "2026-11-29T13:01:33+01:00", "２026-11-29T13:01:33Z"] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
    }
}
