/// Conversions of the chain's time (integer microseconds since the Unix epoch, UTC) without Foundation's
/// formatters, which are slow on the per-record path.
public enum Timestamp {
    /// `YYYY-MM-DD HH:MM:SS.ffffff+00`, which PostgreSQL reads as an exact `timestamptz`.
    public static func postgresText(micros: Int64) -> String {
        let (days, microsOfDay) = divFloor(micros, 86_400_000_000)
        let (year, month, day) = civil(fromDays: days)
        let seconds = microsOfDay / 1_000_000
        let fraction = microsOfDay % 1_000_000
        // Digits written into one buffer: string interpolation of padded parts made this a tenth of the
        // shipper's CPU (it formats every record's time for COPY).
        var out = Array(pad(year, 4).utf8)
        out.reserveCapacity(out.count + 25)
        func put(_ separator: Unicode.Scalar, _ value: Int64, width: Int) {
            out.append(UInt8(ascii: separator))
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                divisor /= 10
            }
        }
        put("-", month, width: 2)
        put("-", day, width: 2)
        put(" ", seconds / 3600, width: 2)
        put(":", seconds / 60 % 60, width: 2)
        put(":", seconds % 60, width: 2)
        put(".", fraction, width: 6)
        out.append(contentsOf: "+00".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 3339 in UTC with microseconds, `2026-11-22T01:02:03.000004Z`.
    public static func rfc3339UTC(micros: Int64) -> String {
        let text = postgresText(micros: micros)
        return String(text.prefix(10)) + "T" + String(text.dropFirst(11).prefix(15)) + "Z"
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The inverse of `civil(fromDays:)`.
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func divFloor(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a / b
        let r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
