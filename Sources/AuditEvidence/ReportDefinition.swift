import AuditCore
import Foundation
import LibPQ

/// A report of `reports/`: one SQL query with `-- key: value` metadata in its leading comments.
public struct ReportDefinition: Sendable {
    public var name: String
    public var title: String
    public var description: String
    public var sql: String

    public static func load(name: String, directory: String) throws -> ReportDefinition {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }), !name.isEmpty else {
            throw ExportError.invalid("'\(name)' is not a report name")
        }
        let path = directory + "/" + name + ".sql"
        guard let sql = try? String(contentsOfFile: path, encoding: .utf8) else {
            let available = list(directory: directory).joined(separator: ", ")
            throw ExportError.invalid("no report '\(name)' in \(directory) (available: \(available))")
        }
        var metadata: [String: String] = [:]
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("--") else { break }
            let text = line.dropFirst(2)
            guard let colon = text.firstIndex(of: ":") else { continue }
            metadata[text[..<colon].trimmingCharacters(in: .whitespaces)] =
                text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return ReportDefinition(name: name, title: metadata["title"] ?? name, description: metadata["description"] ?? "", sql: sql)
    }

    public static func list(directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".sql") }.map { String($0.dropLast(4)) }.sorted()
    }

    /// Runs the report for a period into `directory`: NAME.csv, NAME.json and a (signed) manifest.
    @discardableResult
    public func run(
        on connection: PGConnection, period: ReportPeriod, directory: String, signingKey: Ed25519PrivateKey?
    ) throws -> EvidenceManifest {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try connection.execute("SELECT set_config('TimeZone', $1, false)", [period.zoneName])
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        let files: (csv: EvidenceManifest.FileEntry, json: EvidenceManifest.FileEntry)
        do {
            let result = try connection.execute(sql, [period.utc(period.from), period.utc(period.to)])
            files = try ResultTable.write(result, csvPath: directory + "/\(name).csv", jsonPath: directory + "/\(name).json")
            try connection.execute("COMMIT")
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
        var manifest = EvidenceManifest(
            generator: .init(name: "auditgate-report run \(name)", version: AuditGateVersion.current),
            generatedAt: String(Timestamp.rfc3339UTC(micros: Int64(Date().timeIntervalSince1970 * 1_000_000)).prefix(23)) + "Z",
            period: .init(
                label: period.label, from: period.format(period.from), to: period.format(period.to),
                fromUTC: period.utc(period.from), toUTC: period.utc(period.to), timeZone: period.zoneName),
            filters: .init(user: nil, team: nil, includeBodies: false), csv: .init(), files: [files.csv, files.json],
            counts: .init(exchanges: files.csv.rows, byOutcome: [:]), chains: [], previousManifestSHA256: nil, signature: nil)
        manifest.report = .init(name: name, title: title, description: description, sqlSHA256: SHA256.hash(sql).hexString)
        if let signingKey { manifest.signature = .init(publicKeySHA256: signingKey.publicKey.fingerprint) }
        let bytes = try manifest.encoded()
        try bytes.write(to: URL(fileURLWithPath: directory + "/" + PackageFile.manifest))
        if let signingKey {
            try Data(try signingKey.signature(for: [UInt8](bytes))).write(to: URL(fileURLWithPath: directory + "/" + PackageFile.signature))
        }
        return manifest
    }
}
