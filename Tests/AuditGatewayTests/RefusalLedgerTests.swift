import Testing

@testable import AuditGateway

/// Every transition of the refusal ledger, without sockets or a journal.
@Suite struct RefusalLedgerTests {
    static func key(_ ip: String, _ reason: String = "unknown_key") -> RefusalLedger.Key {
        .init(reason: reason, clientIP: ip, status: 401, outcome: "denied")
    }

    @Test func theFirstRefusalsOfAKeyAreRecordedTheRestCounted() {
        var ledger = RefusalLedger(perKey: 3, total: 100, maxKeys: 10)
        let decisions = (0..<10).map { _ in ledger.refusal(Self.key("198.51.100.1"), now: 1000).0 }
        #expect(decisions == Array(repeating: .record, count: 3) + Array(repeating: .counted, count: 7))
        // Another reason from the same address is another key.
        #expect(ledger.refusal(Self.key("198.51.100.1", "no_key"), now: 1000).0 == .record)
    }

    @Test func aClosedWindowBecomesOneSummaryPerKeyAndEveryRefusalAddsUp() {
        var ledger = RefusalLedger(perKey: 2, total: 100, maxKeys: 10)
        var recorded = 0
        for i in 0..<50 where ledger.refusal(Self.key(i % 2 == 0 ? "a" : "b"), now: 1000).0 == .record { recorded += 1 }
        #expect(recorded == 4)
        #expect(ledger.flush(now: 1000).isEmpty, "the window is still open")
        let summaries = ledger.flush(now: 1001)
        #expect(summaries.map(\.key.clientIP) == ["a", "b"])
        #expect(summaries.map(\.count) == [23, 23])
        #expect(recorded + summaries.reduce(0) { $0 + $1.count } == 50)
        #expect(summaries.allSatisfy { $0.windowStart == 1000 && $0.windowSeconds == 1 })
        // A new window records anew.
        #expect(ledger.refusal(Self.key("a"), now: 1001).0 == .record)
    }

    @Test func aRefusalInALaterWindowReturnsTheSummariesOfTheOneBefore() {
        var ledger = RefusalLedger(perKey: 1, total: 100, maxKeys: 10)
        _ = ledger.refusal(Self.key("a"), now: 5)
        _ = ledger.refusal(Self.key("a"), now: 5)
        let (decision, closed) = ledger.refusal(Self.key("a"), now: 7)
        #expect(decision == .record)
        #expect(closed == [RefusalLedger.Summary(key: Self.key("a"), count: 1, windowStart: 5, windowSeconds: 1)])
    }

    @Test func aFloodFromManyAddressesIsBoundedAndStillCounted() {
        var ledger = RefusalLedger(perKey: 5, total: 20, maxKeys: 50)
        var recorded = 0
        for i in 0..<10_000 where ledger.refusal(Self.key("10.0.\(i / 256).\(i % 256)"), now: 0).0 == .record { recorded += 1 }
        #expect(recorded == 20, "at most `total` individual records a window")
        let summaries = ledger.flush(now: 1)
        #expect(summaries.count == 51, "at most maxKeys summaries, plus one for every other address")
        #expect(summaries.contains { $0.key.clientIP == "other" })
        #expect(recorded + summaries.reduce(0) { $0 + $1.count } == 10_000)
    }

    @Test func shutdownFlushesWhatIsCounted() {
        var ledger = RefusalLedger(perKey: 0, total: 100, maxKeys: 10)
        #expect(ledger.refusal(Self.key("a"), now: 3).0 == .counted)
        #expect(ledger.flush(now: 3, force: true).map(\.count) == [1])
        #expect(ledger.flush(now: 10, force: true).isEmpty)
    }
}
