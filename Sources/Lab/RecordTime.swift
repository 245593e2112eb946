#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The time format of lab records: ISO 8601 in UTC, whole seconds (`2026-11-29T19:10:29Z`), which is
/// what JSONEncoder's `.iso8601` strategy writes, done here with `gmtime_r` and `timegm`.
///
/// Why by hand: the first time a process uses Foundation's ISO 8601 strategy, it sets up a Gregorian
/// calendar and the current time zone through ICU (the time zone's canonical ID, ICU's zone data).
/// Every natlab process that writes or reads a record paid that: `up`, and `down`, `status` and `gc`
/// on their critical path.
enum RecordTime {
    static func format(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var t = tm()
        gmtime_r(&seconds, &t)
        return "\(digits(t.tm_year + 1900, 4))-\(digits(t.tm_mon + 1, 2))-\(digits(t.tm_mday, 2))"
            + "T\(digits(t.tm_hour, 2)):\(digits(t.tm_min, 2)):\(digits(t.tm_sec, 2))Z"
    }

    /// The date `format` wrote, or nil for anything else (another layout, an offset other than `Z`,
    /// a day that does not exist).
    static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count == 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b[19] == UInt8(ascii: "Z") else { return nil }
        func number(_ from: Int, _ count: Int) -> Int32? {
            var value: Int32 = 0
            for byte in b[from..<(from + count)] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int32(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2) else { return nil }
        var t = tm()
        t.tm_year = year - 1900
        t.tm_mon = month - 1
        t.tm_mday = day
        t.tm_hour = hour
        t.tm_min = minute
        t.tm_sec = second
        var seconds = timegm(&t)
        // timegm normalises (February 30 becomes March 2): only a date that comes back unchanged is one.
        var back = tm()
        gmtime_r(&seconds, &back)
        guard back.tm_year == year - 1900, back.tm_mon == month - 1, back.tm_mday == day,
              back.tm_hour == hour, back.tm_min == minute, back.tm_sec == second else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    private static func digits(_ value: Int32, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}
