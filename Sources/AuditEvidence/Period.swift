import Foundation

/// A reporting period `[from, to)`, read in a time zone: `--period 2026-10 | 2026-Q4 | 2026-10-05`, or
/// `--from/--to` as RFC 3339 timestamps or `YYYY-MM-DD` dates (midnight in the zone).
public struct ReportPeriod: Sendable, Equatable {
    public init(label: String, from: Date, to: Date, timeZone: TimeZone, zoneName: String? = nil) {
        self.label = label
        self.from = from
        self.to = to
        self.timeZone = timeZone
        self.zoneName = zoneName ?? timeZone.identifier
    }

    public var label: String
    public var from: Date
    public var to: Date
    public var timeZone: TimeZone
    /// The zone's name as given (Foundation may report `UTC` as `GMT`); written in manifests and
    /// handed to PostgreSQL.
    public var zoneName: String

    public enum ParseError: Error, CustomStringConvertible {
        case badZone(String)
        case badPeriod(String)
        case badBound(String)
        case empty(String)
        case missing

        public var description: String {
            switch self {
            case .badZone(let zone): "unknown time zone '\(zone)' (use an IANA name such as UTC or Asia/Seoul)"
            case .badPeriod(let text): "'\(text)' is not a period: use 2026-10 (a month), 2026-Q4 (a quarter) or 2026-10-05 (a day)"
            case .badBound(let text): "'\(text)' is not an RFC 3339 timestamp (2026-10-01T00:00:00Z) or a date (2026-10-01)"
            case .empty(let text): "the period \(text) is empty: --from must be before --to"
            case .missing: "give --period, or --from and --to"
            }
        }
    }

    public static func zone(_ identifier: String) throws(ParseError) -> TimeZone {
        guard let zone = TimeZone(identifier: identifier) else { throw .badZone(identifier) }
        return zone
    }

    public static func parse(period: String?, from: String?, to: String?, timeZone identifier: String) throws(ParseError) -> ReportPeriod {
        let zone = try zone(identifier)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        if let period {
            let parts = period.split(separator: "-").map(String.init)
            func start(_ year: Int, _ month: Int, _ day: Int) -> Date? {
                calendar.date(from: DateComponents(year: year, month: month, day: day))
            }
            if parts.count == 2, let year = Int(parts[0]), parts[0].count == 4, parts[1].hasPrefix("Q"),
                let quarter = Int(parts[1].dropFirst()), (1...4).contains(quarter),
                let begin = start(year, (quarter - 1) * 3 + 1, 1),
                let end = calendar.date(byAdding: .month, value: 3, to: begin)
            {
                return ReportPeriod(label: period, from: begin, to: end, timeZone: zone, zoneName: identifier)
            }
            if parts.count == 2, let year = Int(parts[0]), let month = Int(parts[1]), parts[0].count == 4,
                parts[1].count == 2, (1...12).contains(month), let begin = start(year, month, 1),
                let end = calendar.date(byAdding: .month, value: 1, to: begin)
            {
                return ReportPeriod(label: period, from: begin, to: end, timeZone: zone, zoneName: identifier)
            }
            if parts.count == 3, let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
                parts[0].count == 4, (1...12).contains(month), (1...31).contains(day), let begin = start(year, month, day),
                calendar.component(.day, from: begin) == day, let end = calendar.date(byAdding: .day, value: 1, to: begin)
            {
                return ReportPeriod(label: period, from: begin, to: end, timeZone: zone, zoneName: identifier)
            }
            throw .badPeriod(period)
        }
        guard let from, let to else { throw .missing }
        let begin = try bound(from, calendar: calendar)
        let end = try bound(to, calendar: calendar)
        guard begin < end else { throw .empty("[\(from), \(to))") }
        return ReportPeriod(label: "custom", from: begin, to: end, timeZone: zone, zoneName: identifier)
    }

    static func bound(_ text: String, calendar: Calendar) throws(ParseError) -> Date {
        let parts = text.split(separator: "-").map(String.init)
        if text.count == 10, parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
            let date = calendar.date(from: DateComponents(year: y, month: m, day: d)), calendar.component(.day, from: date) == d
        {
            return date
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        throw .badBound(text)
    }

    /// RFC 3339 with milliseconds in the period's zone (`Z` for UTC).
    public func format(_ date: Date) -> String { Self.rfc3339(date, zone: timeZone) }

    /// RFC 3339 with milliseconds in UTC, the form PostgreSQL receives.
    public func utc(_ date: Date) -> String { Self.rfc3339(date, zone: TimeZone(identifier: "UTC")!) }

    static func rfc3339(_ date: Date, zone: TimeZone) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = zone
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if zone.secondsFromGMT(for: date) != 0 || zone.identifier != "UTC" && zone.identifier != "GMT" {
            formatter.formatOptions.insert(.withColonSeparatorInTimeZone)
        }
        return formatter.string(from: date)
    }
}
