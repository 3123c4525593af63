import AuditCore
import AuditStore
@testable import AuditJournal
import Foundation
import LibPQ
import Testing
import TestSupport

/// What the shipper does when PostgreSQL takes the connection but refuses the records.
@Suite struct StoreRefusalTests {
    /// A record whose data PostgreSQL refuses (here a status code past `integer`, SQLSTATE 22003; once a
    /// U+0000, 22021) is kept as bytes, and the chain behind it still reaches the store and verifies.
    @Test func aRecordTheStoreRefusesNeverHoldsBackTheChainBehindIt() async throws {
        let database = try TestDatabase()
        let journal = journal(temporaryDirectory(), store: database.writerURL)
        try await journal.start()
        for index in 0..<10 {
            var record = draft(index)
            if index == 3 { record.statusCode = 5_000_000_000 }
            try await journal.append(record)
        }
        #expect(await journal.waitUntilShipped(timeout: .seconds(30)))
        #expect(journal.status.unstorableRecords == 1)
        for index in 10..<20 { try await journal.append(draft(index)) }
        #expect(await journal.waitUntilShipped(timeout: .seconds(30)))
        await journal.shutdown()

        let state = try storeState(database)
        #expect(state.seqs == Array(1...3) + Array(5...20))
        #expect(try database.scalar("SELECT seq || ':' || refused_with FROM audit.unstorable_records") == "4:22003")
        #expect(state.verified, "\(state.output)")
        #expect(state.output.contains("chain gw-test: seq 1...20, 20 records"), "\(state.output)")
        // The verifier written from docs/canonical-encoding.md alone agrees.
        let python = try runCommand("/usr/bin/env", ["python3", packageRoot + "/tools/verify_chain.py", "--database", database.readerURL])
        #expect(python.contains("OK: 1 chain(s), 20 records verified"), "\(python)")
        // The chain's head counts the record kept as bytes: a restart continues after seq 20.
        #expect(try ChainStore(url: database.writerURL).head(chainID: "gw-test")?.seq == 20)
    }

    /// A store that refuses every batch (here: its INSERT privilege revoked) is retried with backoff, not
    /// 15 times a second; after `shipperStallAfter` the status says so with the store's reason; once the
    /// store takes records again, everything ships and the stall clears.
    @Test func aStalledShipperBacksOffAndSaysWhy() async throws {
        let database = try TestDatabase()
        let admin = try database.connect()
        _ = try admin.execute("REVOKE INSERT ON audit.events FROM auditgate_writer")
        var configuration = JournalConfiguration(
            chainID: "gw-test", spoolDirectory: temporaryDirectory(), segmentBytes: 64 * 1024,
            databaseURL: database.writerURL, maxBackoff: .seconds(1))
        configuration.shipperStallAfter = .seconds(1)
        let journal = Journal(configuration: configuration)
        try await journal.start()
        for index in 0..<3 { try await journal.append(draft(index)) }
        try await Task.sleep(for: .milliseconds(3200))
        let status = journal.status
        #expect(status.shipperStalledSeconds ?? 0 >= 1)
        let reason = try #require(status.notReadyReason)
        #expect(reason.contains("42501") && reason.contains("3 records wait in the spool"), "\(reason)")
        // 50, 100, 200, 400, 800, 1000 ms between tries: a handful in 3 s, where resetting the backoff on
        // every successful connect made about 40.
        #expect(status.storeErrors >= 2 && status.storeErrors <= 10, "\(status.storeErrors) tries in 3.2 s")
        #expect(status.acceptingRecords, "records are still durable in the spool")

        _ = try admin.execute("GRANT INSERT ON audit.events TO auditgate_writer")
        #expect(await journal.waitUntilShipped(timeout: .seconds(10)))
        #expect(journal.status.notReadyReason == nil)
        await journal.shutdown()
        let state = try storeState(database)
        #expect(state.seqs == [1, 2, 3])
        #expect(state.verified, "\(state.output)")
    }
}
