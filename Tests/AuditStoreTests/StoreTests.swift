import AuditCore
import AuditStore
import Foundation
import LibPQ
import Testing
import TestSupport

/// Writes `count` records of one chain straight into the store, as the shipper would.
func seedChain(_ database: TestDatabase, chainID: String = "gw-1", count: Int, startMicros: Int64 = 1_790_000_000_000_000) throws -> [AuditRecord] {
    var prev = AuditRecord.genesisHash
    var records: [AuditRecord] = []
    for seq in 1...count {
        var draft = RecordDraft(kind: seq % 2 == 1 ? .request : .response, requestID: "\(chainID)-r\((seq + 1) / 2)")
        draft.userID = seq % 4 < 2 ? "alice" : "bob"
        draft.teamID = "risk"
        draft.model = "claude-sonnet-4-5"
        draft.body = "body of \(seq)\twith\\escapes\nand lines"
        if draft.kind == .response {
            draft.statusCode = 200
            draft.outcome = .ok
            draft.outputTokens = Int64(seq)
        }
        let record = AuditRecord.seal(
            draft, chainID: chainID, seq: Int64(seq), recordedAtMicros: startMicros + Int64(seq) * 1000, prevHash: prev)
        prev = record.hash
        records.append(record)
    }
    try ChainStore(url: database.writerURL).insert(records)
    return records
}

/// Runs `auditgate-report verify` against a database; returns its exit status and output.
func reportVerify(_ database: TestDatabase, _ extra: [String] = []) throws -> (status: Int32, output: String) {
    do {
        let output = try runCommand(binDirectory + "/auditgate-report", ["verify", "--database", database.readerURL] + extra)
        return (0, output)
    } catch let failure as CommandFailure {
        return (failure.status, failure.output + failure.errors)
    }
}

@Suite struct MigrationTests {
    @Test func migrateTwiceChangesNothingTheSecondTime() throws {
        let database = try TestDatabase()  // already migrated once by the library
        let catalog = "SELECT string_agg(c.relname || ':' || c.relkind::text, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'audit'"
        let before = try database.scalar(catalog)
        let first = try runCommand(binDirectory + "/auditgate", ["migrate", "--database-url", database.superuserURL])
        let second = try runCommand(binDirectory + "/auditgate", ["migrate", "--database-url", database.superuserURL])
        #expect(first.contains("schema up to date"))
        #expect(second.contains("schema up to date"))
        #expect(try database.scalar(catalog) == before)
        #expect(try database.scalar("SELECT count(*) FROM audit.schema_migrations") == "5")
    }

    @Test func migrateOnAFreshDatabaseAppliesEveryFileInOrder() throws {
        let server = try TestDatabase()
        let name = "agfresh_" + UUID().uuidString.prefix(8).lowercased()
        try server.connect().execute("CREATE DATABASE \(name)")
        let url = "postgresql://postgres@\(server.host):\(server.port)/\(name)"
        let output = try runCommand(binDirectory + "/auditgate", ["migrate", "--database-url", url])
        #expect(output.split(separator: "\n").map(String.init) == [
            "applied 0001 roles_and_schema", "applied 0002 events_and_bodies", "applied 0003 exchanges_view",
            "applied 0004 unstorable_records", "applied 0005 exchanges_truncation_flags",
        ])
    }

    @Test func anEditedMigrationIsRefused() throws {
        let database = try TestDatabase()
        var migrations = try Migrator(directory: packageRoot + "/schema").migrations
        migrations[1].sql += "\n-- edited"
        #expect(throws: MigrationError.self) { try Migrator(migrations: migrations).apply(on: database.connect()) }
    }

    @Test func monthlyPartitionsExistAhead() throws {
        let database = try TestDatabase()
        let count = try database.scalar("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname LIKE 'events_y%'")
        #expect(Int(count ?? "0")! >= 13)
    }

    @Test func theExchangesViewHasEveryContractColumn() throws {
        let database = try TestDatabase()
        let contract = [
            "request_id", "started_at", "finished_at", "chain_id", "request_seq", "response_seq", "user_id", "team_id",
            "key_id", "end_user", "client_ip", "api", "method", "path", "provider", "model", "stream", "status_code",
            "outcome", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "latency_ms",
            "ttfb_ms", "redactions", "request_body", "response_body", "request_body_truncated", "response_body_truncated",
        ]
        let columns = try database.connect().execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'audit' AND table_name = 'exchanges' ORDER BY ordinal_position")
        let names = (0..<columns.rowCount).compactMap { columns.string($0, 0) }
        #expect(names == contract)
    }
}

@Suite struct AppendOnlyTests {
    static let changes = [
        "UPDATE audit.events SET model = 'x'", "DELETE FROM audit.events", "TRUNCATE audit.events",
        "UPDATE audit.bodies SET body = 'x'", "DELETE FROM audit.bodies", "TRUNCATE audit.bodies",
    ]

    @Test(arguments: ["auditgate_writer", "auditgate_reader"])
    func applicationRolesCannotChangeOrRemoveRows(role: String) throws {
        let database = try TestDatabase()
        _ = try seedChain(database, count: 4)
        let connection = try database.connect(as: role)
        for sql in Self.changes {
            #expect(throws: PGError.self, "\(role): \(sql)") { try connection.execute(sql) }
        }
        // Nor through a partition directly.
        let partition = try #require(try database.scalar("SELECT tableoid::regclass::text FROM audit.events LIMIT 1"))
        #expect(throws: PGError.self) { try connection.execute("DELETE FROM \(partition)") }
        #expect(throws: PGError.self) { try connection.execute("TRUNCATE \(partition)") }
        #expect(try database.scalar("SELECT count(*) FROM audit.events") == "4")
    }

    @Test func evenASuperuserIsRefusedByTheTriggers() throws {
        let database = try TestDatabase()
        _ = try seedChain(database, count: 4)
        let connection = try database.connect()
        let partition = try #require(try database.scalar("SELECT tableoid::regclass::text FROM audit.events LIMIT 1"))
        for sql in Self.changes + ["DELETE FROM \(partition)", "TRUNCATE \(partition)", "TRUNCATE audit.events_default"] {
            let error = #expect(throws: PGError.self, "\(sql)") { try connection.execute(sql) }
            #expect(error?.message.contains("append-only") == true, "\(sql): \(error?.message ?? "")")
        }
        #expect(try database.scalar("SELECT count(*) FROM audit.events") == "4")
        #expect(try database.scalar("SELECT count(*) FROM audit.bodies") == "4")
    }

    @Test func theWriterMayInsertAndReadItsHeadButNotTheRows() throws {
        let database = try TestDatabase()
        let records = try seedChain(database, count: 3)
        let writer = try database.connect(as: "auditgate_writer")
        #expect(throws: PGError.self) { try writer.execute("SELECT * FROM audit.events") }
        #expect(throws: PGError.self) { try writer.execute("SELECT * FROM audit.exchanges") }
        let head = try ChainStore(connection: writer).head(chainID: "gw-1")
        #expect(head?.seq == 3 && head?.hash == records[2].hash)
        let reader = try database.connect(as: "auditgate_reader")
        #expect(throws: PGError.self) {
            try reader.execute("INSERT INTO audit.events (chain_id, seq, recorded_at, kind, request_id, prev_hash, hash) VALUES ('x', 1, now(), 'request', 'r', '\\x00', '\\x00')")
        }
    }
}

@Suite struct TamperDetectionTests {
    /// What a superuser can do: switch the triggers off for the session and change rows.
    func tamper(_ database: TestDatabase, _ sql: String) throws {
        let connection = try database.connect()
        try connection.execute("SET session_replication_role = replica")
        try connection.execute(sql)
    }

    @Test func anIntactStoreVerifies() throws {
        let database = try TestDatabase()
        _ = try seedChain(database, chainID: "gw-a", count: 20)
        _ = try seedChain(database, chainID: "gw-b", count: 7)
        let result = try reportVerify(database)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK: 2 chain(s), 27 records verified"))
    }

    @Test func anEditedFieldIsNamed() throws {
        let database = try TestDatabase()
        _ = try seedChain(database, count: 20)
        try tamper(database, "UPDATE audit.events SET output_tokens = 1 WHERE chain_id = 'gw-1' AND seq = 12")
        let result = try reportVerify(database)
        #expect(result.status == 1)
        #expect(result.output.contains("FAILED: chain gw-1 seq 12: hash mismatch"), "\(result.output)")
    }

    @Test func aDeletedRowIsNamed() throws {
        let database = try TestDatabase()
        _ = try seedChain(database, count: 20)
        try tamper(database, "DELETE FROM audit.events WHERE chain_id = 'gw-1' AND seq = 9")
        let result = try reportVerify(database)
        #expect(result.status == 1)
        #expect(result.output.contains("FAILED: chain gw-1 seq 10: gap: seq 9 is missing"), "\(result.output)")
    }

    @Test func swappedRowsAreNamed() throws {
        let database = try TestDatabase()
        _ = try seedChain(database, count: 20)
        // Exchange every field of seq 5 and seq 6 except their positions.
        try tamper(database, """
            WITH a AS (SELECT * FROM audit.events WHERE chain_id = 'gw-1' AND seq = 5),
                 b AS (SELECT * FROM audit.events WHERE chain_id = 'gw-1' AND seq = 6)
            UPDATE audit.events e SET kind = s.kind, request_id = s.request_id, user_id = s.user_id,
                   status_code = s.status_code, outcome = s.outcome, output_tokens = s.output_tokens,
                   prev_hash = s.prev_hash, hash = s.hash
            FROM (SELECT 5 AS target, * FROM b UNION ALL SELECT 6, * FROM a) s
            WHERE e.chain_id = 'gw-1' AND e.seq = s.target
            """)
        let result = try reportVerify(database)
        #expect(result.status == 1)
        #expect(result.output.contains("FAILED: chain gw-1 seq 5:"), "\(result.output)")
    }

    @Test func aRenumberedRowIsNamed() throws {
        let database = try TestDatabase()
        _ = try seedChain(database, count: 10)
        try tamper(database, "UPDATE audit.events SET seq = 100 WHERE chain_id = 'gw-1' AND seq = 4")
        let result = try reportVerify(database)
        #expect(result.status == 1)
        #expect(result.output.contains("FAILED: chain gw-1 seq 5: gap: seq 4 is missing"), "\(result.output)")
    }

    @Test func anEditedBodyIsNamed() throws {
        let database = try TestDatabase()
        _ = try seedChain(database, count: 6)
        try tamper(database, "UPDATE audit.bodies SET body = 'nothing to see' WHERE chain_id = 'gw-1' AND seq = 3")
        let result = try reportVerify(database)
        #expect(result.output.contains("FAILED: chain gw-1 seq 3: body mismatch"), "\(result.output)")
    }

    @Test func aPeriodIsAnchoredToTheRecordBeforeIt() throws {
        let database = try TestDatabase()
        let records = try seedChain(database, count: 30)
        let from = Timestamp.rfc3339UTC(micros: records[9].recordedAtMicros)
        let to = Timestamp.rfc3339UTC(micros: records[20].recordedAtMicros)
        let intact = try reportVerify(database, ["--from", from, "--to", to])
        #expect(intact.status == 0, "\(intact.output)")
        #expect(intact.output.contains("seq 10...20, 11 records"), "\(intact.output)")
        try tamper(database, "DELETE FROM audit.events WHERE chain_id = 'gw-1' AND seq = 9")
        let broken = try reportVerify(database, ["--from", from, "--to", to])
        #expect(broken.status == 1)
        #expect(broken.output.contains("FAILED: chain gw-1 seq 10: gap: seq 9 is missing"), "\(broken.output)")
    }

    @Test func recordsReadBackAreTheRecordsWritten() throws {
        let database = try TestDatabase()
        let written = try seedChain(database, count: 5)
        var read: [StoredRecord] = []
        try ChainReader(connection: database.connect(as: "auditgate_reader")).forEachRecord(from: nil, to: nil) { read.append($0) }
        #expect(read.map(\.values) == written.map { CanonicalEncoding.fieldValues($0) })
        #expect(read.map(\.body) == written.map(\.fields.body))
    }
}

@Suite struct ExchangesViewTests {
    @Test func requestsPairWithResponsesAndUnansweredOnesAreIncomplete() throws {
        let database = try TestDatabase()
        _ = try seedChain(database, count: 5)  // requests r1, r2, r3; responses for r1, r2
        let rows = try database.connect(as: "auditgate_reader").execute(
            "SELECT request_id, outcome, status_code, request_seq, response_seq, output_tokens, user_id FROM audit.exchanges ORDER BY request_seq")
        #expect(rows.rowCount == 3)
        #expect(rows.string(0, 0) == "gw-1-r1" && rows.string(0, 1) == "ok" && rows.string(0, 4) == "2" && rows.string(0, 5) == "2")
        #expect(rows.string(2, 0) == "gw-1-r3" && rows.string(2, 1) == "incomplete" && rows.isNull(2, 2) && rows.isNull(2, 4))
    }
}
