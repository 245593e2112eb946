import Foundation
import Testing
import Topology
@testable import Lab

/// The records' hand-made ISO 8601 time (pure: no kernel).
struct RecordTimeTests {
    @Test("record times are written exactly as JSONEncoder's .iso8601 writes them, and read back")
    func sameAsFoundationISO8601() throws {
        let foundation = JSONEncoder()
        foundation.dateEncodingStrategy = .iso8601
        for seconds in [0, 951_782_400, 1_764_443_429, 1_798_761_599, 4_102_444_800] as [TimeInterval] {
            let date = Date(timeIntervalSince1970: seconds + 0.75)   // fractions are dropped by both
            let expected = String(decoding: try foundation.encode([date]), as: UTF8.self)
            #expect("[\"\(RecordTime.format(date))\"]" == expected.replacingOccurrences(of: "\\/", with: "/"))
            #expect(RecordTime.parse(RecordTime.format(date)) == Date(timeIntervalSince1970: seconds))
        }
        #expect(RecordTime.format(Date(timeIntervalSince1970: 1_764_443_429)) == "2025-11-29T19:10:29Z")
    }

    @Test("anything but that exact layout is refused, days that do not exist included")
    func refusesOtherLayouts() {
        for text in ["2026-02-30T10:00:00Z", "2026-11-29T19:10:29+01:00", "2026-11-29 19:10:29Z", "2026-11-29T19:10:29.5Z",
                     "2026-11-29T24:00:00Z", "2026-13-01T00:00:00Z", "20x6-11-29T19:10:29Z", ""] {
            #expect(RecordTime.parse(text) == nil, "\(text)")
        }
    }

    @Test("a record's creation time survives the store's encoder and decoder")
    func recordRoundTrip() throws {
        let plan = Planner.plan(try TopologyLoader.load(path: Harness.topology("two-homes.yaml")))
        var record = LabRecord.building("t", from: plan, topologyFile: "/x.yaml")
        record.created = Date(timeIntervalSince1970: 1_764_443_429)
        let data = try LabStore.encoder.encode(record)
        #expect(String(decoding: data, as: UTF8.self).contains("\"created\" : \"2025-11-29T19:10:29Z\""))
        #expect(try LabStore.decoder.decode(LabRecord.self, from: data).created == record.created)
    }
}
