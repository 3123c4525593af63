import AuditCore
import AuditStore
import Foundation
import LibPQ

/// What `auditgate-report export` was asked for.
public struct ExportRequest: Sendable {
    public var period: ReportPeriod
    public var user: String?
    public var team: String?
    public var includeBodies: Bool
    public var signingKey: Ed25519PrivateKey?
    public var previousDirectory: String?
    public var outputDirectory: String
    public var generatorVersion: String

    public init(
        period: ReportPeriod, user: String? = nil, team: String? = nil, includeBodies: Bool = false,
        signingKey: Ed25519PrivateKey? = nil, previousDirectory: String? = nil, outputDirectory: String,
        generatorVersion: String = AuditGateVersion.current
    ) {
        self.period = period
        self.user = user
        self.team = team
        self.includeBodies = includeBodies
        self.signingKey = signingKey
        self.previousDirectory = previousDirectory
        self.outputDirectory = outputDirectory
        self.generatorVersion = generatorVersion
    }
}

public enum AuditGateVersion {
    public static let current = "0.1.0"
}

/// Writes an evidence package for a period: every exchange as CSV and JSON Lines, the summary, the
/// integrity of each chain across the period, and a manifest naming every file's size, rows and
/// SHA-256, signed with Ed25519.
///
/// Everything is read in one REPEATABLE READ snapshot, so the files agree with each other even while
/// the gateway keeps writing. Exchanges stream through a cursor into files hashed as they are written:
/// memory stays flat whatever the size of the period.
public struct PackageExporter {
    public let connection: PGConnection
    /// Called with the number of exchanges written so far (for a progress line).
    public var progress: ((Int) -> Void)?
    public var fetchSize = 5000

    public init(connection: PGConnection) { self.connection = connection }

    /// The view's columns, in the contract's order, and how each is written.
    public static let exchangeColumns: [(name: String, kind: ColumnKind)] = [
        ("request_id", .text), ("started_at", .timestamp), ("finished_at", .timestamp), ("chain_id", .text),
        ("request_seq", .integer), ("response_seq", .integer), ("user_id", .text), ("team_id", .text),
        ("key_id", .text), ("end_user", .text), ("client_ip", .text), ("api", .text), ("method", .text),
        ("path", .text), ("provider", .text), ("model", .text), ("stream", .boolean), ("status_code", .integer),
        ("outcome", .text), ("input_tokens", .integer), ("output_tokens", .integer),
        ("cache_read_tokens", .integer), ("cache_write_tokens", .integer), ("latency_ms", .integer),
        ("ttfb_ms", .integer), ("redactions", .integer), ("request_body_truncated", .boolean),
        ("response_body_truncated", .boolean),
    ]
    public static let bodyColumns: [(name: String, kind: ColumnKind)] = [("request_body", .text), ("response_body", .text)]

    /// `WHERE` clause and parameters shared by every query of the package.
    static func filter(_ request: ExportRequest) -> (sql: String, parameters: [String?]) {
        var sql = "started_at >= $1::timestamptz AND started_at < $2::timestamptz"
        var parameters: [String?] = [request.period.utc(request.period.from), request.period.utc(request.period.to)]
        if let user = request.user {
            parameters.append(user)
            sql += " AND user_id = $\(parameters.count)"
        }
        if let team = request.team {
            parameters.append(team)
            sql += " AND team_id = $\(parameters.count)"
        }
        return (sql, parameters)
    }

    @discardableResult
    public func export(_ request: ExportRequest) throws -> EvidenceManifest {
        let directory = request.outputDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let existing = try FileManager.default.contentsOfDirectory(atPath: directory)
        guard existing.isEmpty else { throw ExportError.invalid("\(directory) is not empty; choose a new folder for the package") }
        let previousHash = try request.previousDirectory.map { previous -> String in
            guard let data = FileManager.default.contents(atPath: previous + "/" + PackageFile.manifest) else {
                throw ExportError.invalid("--previous \(previous) has no \(PackageFile.manifest)")
            }
            _ = try EvidenceManifest.decode(data)
            return SHA256.hash([UInt8](data)).hexString
        }

        try connection.execute("SELECT set_config('TimeZone', $1, false)", [request.period.zoneName])
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            let (exchanges, outcomes) = try writeExchanges(request)
            let summary = try writeSummary(request)
            let (integrity, chains) = try writeIntegrity(request)
            try connection.execute("COMMIT")

            var byOutcome = Dictionary(uniqueKeysWithValues: Outcome.allCases.map { ($0.rawValue, 0) })
            for (outcome, count) in outcomes { byOutcome[outcome, default: 0] += count }
            var manifest = EvidenceManifest(
                generator: .init(name: "auditgate-report", version: request.generatorVersion),
                generatedAt: Timestamp.rfc3339UTC(micros: Int64(Date().timeIntervalSince1970 * 1_000_000)).prefix(23) + "Z",
                period: .init(
                    label: request.period.label, from: request.period.format(request.period.from),
                    to: request.period.format(request.period.to), fromUTC: request.period.utc(request.period.from),
                    toUTC: request.period.utc(request.period.to), timeZone: request.period.zoneName),
                filters: .init(user: request.user, team: request.team, includeBodies: request.includeBodies),
                csv: .init(),
                files: [exchanges.csv, exchanges.jsonl, summary.csv, summary.json, integrity],
                counts: .init(exchanges: exchanges.csv.rows, byOutcome: byOutcome),
                chains: chains, previousManifestSHA256: previousHash, signature: nil)
            if let key = request.signingKey {
                manifest.signature = .init(publicKeySHA256: key.publicKey.fingerprint)
            }
            let bytes = try manifest.encoded()
            try bytes.write(to: URL(fileURLWithPath: directory + "/" + PackageFile.manifest))
            if let key = request.signingKey {
                let signature = try key.signature(for: [UInt8](bytes))
                try Data(signature).write(to: URL(fileURLWithPath: directory + "/" + PackageFile.signature))
            }
            return manifest
        } catch {
            if connection.isHealthy { _ = try? connection.execute("ROLLBACK") }
            throw error
        }
    }

    private func timestampFormat(_ request: ExportRequest) -> String {
        let zone = request.period.zoneName
        return zone == "UTC" || zone == "GMT" ? "YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"" : "YYYY-MM-DD\"T\"HH24:MI:SS.MSTZH:TZM"
    }

    private func writeExchanges(_ request: ExportRequest) throws -> (
        (csv: EvidenceManifest.FileEntry, jsonl: EvidenceManifest.FileEntry), [String: Int]
    ) {
        let columns = Self.exchangeColumns + (request.includeBodies ? Self.bodyColumns : [])
        let format = timestampFormat(request)
        let select = columns.map { column -> String in
            column.kind == .timestamp ? "to_char(\(column.name), '\(format)')" : column.name
        }.joined(separator: ", ")
        let (filter, parameters) = Self.filter(request)
        let directory = request.outputDirectory
        var writers = try TabularWriters(
            columns: columns, csvPath: directory + "/" + PackageFile.exchangesCSV,
            jsonlPath: directory + "/" + PackageFile.exchangesJSONL)
        try connection.execute(
            "DECLARE exchanges NO SCROLL CURSOR FOR SELECT \(select) FROM audit.exchanges WHERE \(filter) ORDER BY started_at, chain_id, request_seq",
            parameters)
        let outcomeColumn = columns.firstIndex { $0.name == "outcome" }!
        var outcomes: [String: Int] = [:]
        var written = 0
        while true {
            let batch = try connection.execute("FETCH \(fetchSize) FROM exchanges")
            if batch.rowCount == 0 { break }
            for index in 0..<batch.rowCount {
                let row = batch.row(index)
                try writers.writeRow { column, body in row.withUnsafeText(column) { body($0) } }
                outcomes[row.string(outcomeColumn) ?? "incomplete", default: 0] += 1
            }
            written += batch.rowCount
            progress?(written)
        }
        try connection.execute("CLOSE exchanges")
        return ((try writers.csv.finish(name: PackageFile.exchangesCSV), try writers.jsonl.finish(name: PackageFile.exchangesJSONL)), outcomes)
    }

    /// The summary's SQL: one row per team, per user, per model, per (team, user, model) and a total.
    public static func summarySQL(filter: String) -> String {
        """
        SELECT CASE WHEN GROUPING(team_id, user_id, model) = 7 THEN 'total'
                    WHEN GROUPING(team_id, user_id, model) = 0 THEN 'team_user_model'
                    WHEN GROUPING(team_id) = 0 THEN 'team'
                    WHEN GROUPING(user_id) = 0 THEN 'user'
                    ELSE 'model' END AS scope,
               team_id, user_id, model,
               count(*) AS calls,
               count(*) FILTER (WHERE outcome = 'ok') AS ok,
               count(*) FILTER (WHERE outcome IN ('upstream_error', 'client_error', 'gateway_error', 'incomplete')) AS errors,
               count(*) FILTER (WHERE outcome = 'denied') AS denials,
               coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens,
               coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
               coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) AS latency_p50_ms,
               round(percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) AS latency_p95_ms,
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) AS latency_p99_ms
        FROM audit.exchanges
        WHERE \(filter)
        GROUP BY GROUPING SETS ((team_id, user_id, model), (team_id), (user_id), (model), ())
        ORDER BY GROUPING(team_id, user_id, model), team_id NULLS FIRST, user_id NULLS FIRST, model NULLS FIRST
        """
    }

    private func writeSummary(_ request: ExportRequest) throws -> (csv: EvidenceManifest.FileEntry, json: EvidenceManifest.FileEntry) {
        let (filter, parameters) = Self.filter(request)
        let result = try connection.execute(Self.summarySQL(filter: filter), parameters)
        return try ResultTable.write(
            result, csvPath: request.outputDirectory + "/" + PackageFile.summaryCSV,
            jsonPath: request.outputDirectory + "/" + PackageFile.summaryJSON)
    }

    /// Recomputes each chain over the records written in the period, anchored to the record before it,
    /// and names each chain's head at the period's end (so a later package can prove nothing was cut).
    private func writeIntegrity(_ request: ExportRequest) throws -> (EvidenceManifest.FileEntry, [EvidenceManifest.ChainEntry]) {
        let from = request.period.utc(request.period.from)
        let to = request.period.utc(request.period.to)
        let report = try ChainReader(connection: connection).verify(from: from, to: to)
        let heads = try connection.execute(
            "SELECT DISTINCT ON (chain_id) chain_id, seq, hash FROM audit.events WHERE recorded_at < $1::timestamptz ORDER BY chain_id, seq DESC",
            [to])

        var out: [UInt8] = []
        func key(_ name: String) {
            CellEncoding.appendJSONString(name, to: &out)
            out.append(contentsOf: Array(": ".utf8))
        }
        func string(_ value: String?) {
            if let value { CellEncoding.appendJSONString(value, to: &out) } else { out.append(contentsOf: Array("null".utf8)) }
        }
        out.append(contentsOf: Array("{\n  ".utf8))
        key("basis")
        string("records with recorded_at in [from, to), each chain recomputed from the record before the period")
        out.append(contentsOf: Array(",\n  ".utf8))
        key("from_utc")
        string(from)
        out.append(contentsOf: Array(",\n  ".utf8))
        key("to_utc")
        string(to)
        out.append(contentsOf: Array(",\n  ".utf8))
        key("chains")
        out.append(UInt8(ascii: "["))
        var entries: [EvidenceManifest.ChainEntry] = []
        for (index, chain) in report.chains.enumerated() {
            out.append(contentsOf: Array((index == 0 ? "\n    {" : ",\n    {").utf8))
            key("chain_id")
            string(chain.chainID)
            out.append(contentsOf: Array(", \"first_seq\": \(chain.firstSeq), \"last_seq\": \(chain.lastSeq), \"count\": \(chain.count), \"expected_count\": \(chain.lastSeq - chain.firstSeq + 1), ".utf8))
            key("gaps")
            out.append(contentsOf: Array(("[" + chain.gaps.map { "[\($0.lowerBound), \($0.upperBound)]" }.joined(separator: ", ") + "], ").utf8))
            key("entering_hash")
            string(chain.enteringHash.hexString)
            out.append(contentsOf: Array(", ".utf8))
            key("leaving_hash")
            string(chain.leavingHash.hexString)
            out.append(contentsOf: Array(", \"verified\": \(chain.failure == nil), ".utf8))
            key("failure")
            string(chain.failure?.description)
            out.append(UInt8(ascii: "}"))
            entries.append(
                .init(
                    chainID: chain.chainID, firstSeq: chain.firstSeq, lastSeq: chain.lastSeq, count: chain.count,
                    gaps: chain.gaps.count, verified: chain.failure == nil))
        }
        out.append(contentsOf: Array((report.chains.isEmpty ? "],\n  " : "\n  ],\n  ").utf8))
        key("heads_at_period_end")
        out.append(UInt8(ascii: "["))
        for index in 0..<heads.rowCount {
            out.append(contentsOf: Array((index == 0 ? "\n    {" : ",\n    {").utf8))
            key("chain_id")
            string(heads.string(index, 0))
            out.append(contentsOf: Array(", \"seq\": \(heads.string(index, 1) ?? "0"), ".utf8))
            key("hash")
            string(heads.bytes(index, 2)?.hexString)
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: Array((heads.rowCount == 0 ? "]\n}\n" : "\n  ]\n}\n").utf8))
        let writer = try HashingFileWriter(path: request.outputDirectory + "/" + PackageFile.integrity)
        try writer.write(out)
        writer.rows = report.chains.count
        return (try writer.finish(name: PackageFile.integrity), entries)
    }
}
