import ArgumentParser
import AuditEvidence
import Foundation
import LibPQ

/// `auditgate-report summary`: a readable table of use per team, user and model.
struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print use per team, user and model for a period.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var periodOptions: PeriodOptions

    func run() throws {
        let period = try periodOptions.resolve()
        let connection = try database.connect()
        try connection.execute("SELECT set_config('TimeZone', $1, false)", [period.zoneName])
        let result = try connection.execute(
            PackageExporter.summarySQL(filter: "started_at >= $1::timestamptz AND started_at < $2::timestamptz"),
            [period.utc(period.from), period.utc(period.to)])
        print("AuditGate use from \(period.format(period.from)) to \(period.format(period.to)) (\(period.zoneName))\n")
        let headers = ["scope", "team", "user", "model", "calls", "errors", "denials", "input tok", "output tok", "p50 ms", "p95 ms", "p99 ms"]
        let columns = [0, 1, 2, 3, 4, 6, 7, 8, 9, 12, 13, 14]
        var rows: [[String]] = []
        for index in 0..<result.rowCount {
            rows.append(columns.map { result.string(index, $0) ?? (($0 >= 1 && $0 <= 3) ? "·" : "-") })
        }
        if rows.count <= 1 && (rows.first?[4] ?? "0") == "0" {
            print("no calls in this period")
            return
        }
        print(TextTable.render(headers: headers, rows: rows, rightAligned: Set(4..<headers.count)))
    }
}

/// A plain aligned table for terminals, counting characters (Hangul names stay aligned well enough).
enum TextTable {
    static func render(headers: [String], rows: [[String]], rightAligned: Set<Int>) -> String {
        var widths = headers.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                return rightAligned.contains(index) ? pad + cell : cell + pad
            }.joined(separator: "  ")
        }
        var out = [line(headers), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        var previousScope: String?
        for row in rows {
            if let previousScope, previousScope != row[0] { out.append("") }
            previousScope = row[0]
            out.append(line(row))
        }
        return out.joined(separator: "\n")
    }
}
