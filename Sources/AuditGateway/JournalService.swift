import AuditJournal
import ServiceLifecycle

/// The journal as a `Service`: listed before the HTTP server in the `ServiceGroup`, so on shutdown the
/// server drains its open streams first and the journal flushes last.
public struct JournalService: Service {
    public let journal: Journal
    public var shipTimeout: Duration = .seconds(10)

    public init(journal: Journal) { self.journal = journal }

    public func run() async throws {
        // Started before the group runs (so the gateway fails fast when the chain head is unknown);
        // here the service only waits for shutdown and then flushes.
        try? await gracefulShutdown()
        await journal.shutdown(shipTimeout: shipTimeout)
    }
}
