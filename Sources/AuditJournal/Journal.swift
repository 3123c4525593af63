import AuditCore
import AuditStore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When `append` returns.
public enum Durability: String, Sendable, CaseIterable {
    /// Once the record is synced to the spool (group-committed `fdatasync`).
    case spool
    /// At once; the record is synced moments later. A crash can lose the last few records.
    case async
}

public struct JournalConfiguration: Sendable {
    public var chainID: String
    public var spoolDirectory: String
    public var durability: Durability
    /// Past this many bytes in the spool, `append` fails at once (the gateway answers 503).
    public var spoolMaxBytes: Int
    /// A segment is closed and a new one begun past this size; shipped segments are deleted whole.
    public var segmentBytes: Int
    /// The writer's libpq connection string; nil runs without a store (spool only, e.g. benchmarks).
    public var databaseURL: String?
    /// Records per COPY transaction.
    public var shipBatchRecords: Int
    /// Bytes of records per COPY transaction, at most (bounds the shipper's memory).
    public var shipBatchBytes: Int
    /// Longest wait between reconnection attempts while the store is away.
    public var maxBackoff: Duration
    /// After shipping a batch smaller than `shipBatchRecords`, the shipper waits this long for more
    /// records before the next COPY. Without it, a trickle of calls made one transaction (directory
    /// listing, file reads, BEGIN/COPY/COMMIT and PostgreSQL's WAL flush) per record or two: 5 libpq
    /// round trips and 8 file-system calls per call (docs/benchmarks.md). Records are durable in the
    /// spool meanwhile; only their arrival in the store waits.
    public var shipLinger: Duration
    /// In `async` mode, how long queued records wait for more before the writer syncs them: the window
    /// a crash can lose grows by this much, and the writer syncs at most about 1/interval times a second.
    public var asyncSyncInterval: Duration
    /// A shipper with records to ship that has not moved for this long is stalled: `/readyz` answers 503
    /// with the reason, `/metrics` shows it, and it is logged once a minute.
    public var shipperStallAfter: Duration = .seconds(30)

    /// Segments are at most a sixteenth of the cap (and at least 64 KiB): the newest segment is never
    /// deleted, so once the store has caught up the spool keeps at most that much, well under the cap,
    /// and calls are taken again.
    public var effectiveSegmentBytes: Int { min(segmentBytes, max(64 * 1024, spoolMaxBytes / 16)) }

    public init(
        chainID: String, spoolDirectory: String, durability: Durability = .spool, spoolMaxBytes: Int = 1 << 30,
        segmentBytes: Int = 16 << 20, databaseURL: String?, shipBatchRecords: Int = 2000, maxBackoff: Duration = .seconds(5),
        shipLinger: Duration = .milliseconds(20), shipBatchBytes: Int = 8 << 20, asyncSyncInterval: Duration = .milliseconds(2)
    ) {
        self.chainID = chainID
        self.spoolDirectory = spoolDirectory
        self.durability = durability
        self.spoolMaxBytes = spoolMaxBytes
        self.segmentBytes = segmentBytes
        self.databaseURL = databaseURL
        self.shipBatchRecords = shipBatchRecords
        self.maxBackoff = maxBackoff
        self.shipLinger = shipLinger
        self.shipBatchBytes = shipBatchBytes
        self.asyncSyncInterval = asyncSyncInterval
    }
}

/// What `append` returns: where the record sits in the chain.
public struct AppendReceipt: Sendable, Equatable {
    public var seq: Int64
    public var hash: [UInt8]
    public var recordedAtMicros: Int64
}

/// A snapshot for `/readyz` and `/metrics`.
public struct JournalStatus: Sendable {
    public var durability: Durability
    public var acceptingRecords: Bool
    /// Why records cannot be made durable, when they cannot.
    public var refusalReason: String?
    public var spoolBytes: Int
    public var spoolMaxBytes: Int
    /// The last seq assigned, synced to the spool, and committed in the store.
    public var lastSeq: Int64
    public var durableSeq: Int64
    public var shippedSeq: Int64
    public var storeReachable: Bool
    public var storeErrors: Int
    public var lastStoreError: String?
    /// Seconds since the shipper last moved while records wait, once that reaches `shipperStallAfter`.
    public var shipperStalledSeconds: Int?
    /// Records kept as bytes in `audit.unstorable_records` since start.
    public var unstorableRecords: Int
    /// Why `/readyz` says not ready although records can still be made durable (a stalled shipper).
    public var notReadyReason: String? {
        guard let shipperStalledSeconds else { return nil }
        return "the audit store has taken no record for \(shipperStalledSeconds) s (\(lastStoreError ?? "no error reported")); \(backlog) records wait in the spool"
    }
    /// Records written but not yet in the store.
    public var backlog: Int64 { max(0, durableSeq - shippedSeq) }
}

/// The audit journal of one chain: one serial writer assigns `seq`, computes the hash chain and appends
/// to the spool with group-committed `fdatasync`; a shipper moves the spool into PostgreSQL.
///
/// Callers on any thread call `append`; the writer and the shipper each run on a dedicated thread, so
/// neither `fdatasync` nor libpq ever blocks Swift's cooperative pool.
public final class Journal: @unchecked Sendable {
    public let configuration: JournalConfiguration
    let logger: Logger
    let spool: SpoolDirectory

    // Shared state, guarded by `lock`; the writer waits on `lock` itself (so no wakeup is lost), the
    // shipper on `shipperWakeup` with a timeout (a lost wakeup only delays shipping a little).
    let lock = NSCondition()
    let shipperWakeup = NSCondition()
    var nextSeq: Int64 = 1
    var prevHash: [UInt8] = AuditRecord.genesisHash
    var lastRecordedAt: Int64 = 0
    var pending: [UInt8] = []
    var pendingFirstSeq: Int64 = 1
    var pendingPrevHash: [UInt8] = AuditRecord.genesisHash
    /// Called by the writer once their batch is synced (or failed), on the writer's thread.
    var waiters: [@Sendable (Result<Void, any Error>) -> Void] = []
    var spoolBytes = 0
    var durableSeq: Int64 = 0
    var shippedSeq: Int64 = 0
    var failure: JournalError?
    var state: LifecycleState = .created
    /// The segment the writer appends to, and how much of it is synced (the shipper reads only that).
    var activeSegment: (firstSeq: Int64, path: String, syncedLength: Int)?
    var storeReachable = false
    /// When the shipper last stood level with the spool or shipped a batch (`notePosition`).
    var lastShipProgress = ContinuousClock.now
    var lastStallLog: ContinuousClock.Instant?
    var unstorableRecords = 0
    /// The current outage has been logged (`noteStoreError`); cleared when a batch ships.
    var storeErrorLogged = false
    var storeErrors = 0
    var lastStoreError: String?
    var writerDone = false
    /// A batch is being written and synced (by the writer thread or an inline caller); the segment's
    /// file descriptor and length belong to that writer meanwhile.
    var writing = false
    var shipperDone = false
    var shipperStopDeadline: ContinuousClock.Instant?

    enum LifecycleState { case created, running, stopping, stopped }

    // Writer-thread state.
    var segmentFD: Int32 = -1
    var segmentLength = 0
    /// How far the active segment's file has been written, zeros included (`writeBatch`).
    var segmentAllocated = 0

    public init(configuration: JournalConfiguration, logger: Logger = Logger(label: "auditgate.journal")) {
        self.configuration = configuration
        self.logger = logger
        self.spool = SpoolDirectory(path: configuration.spoolDirectory)
    }

    /// Recovers the spool, finds where the chain stands (spool and store), and starts the writer and
    /// shipper threads. Fails when the spool is unusable, or when it is empty and the store is away
    /// (a new chain could otherwise restart at seq 1 over records already in the store).
    ///
    /// The spool recovery and the store query block, so they run on a thread of their own, not on the
    /// caller's (cooperative) thread.
    public func start() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread { [self] in
                continuation.resume(with: Result { try startBlocking() })
            }
            thread.name = "auditgate-journal-start"
            thread.start()
        }
    }

    private func startBlocking() throws {
        let recovered = try spool.recover(chainID: configuration.chainID)
        var head = recovered.head
        var storeHead: (seq: Int64, hash: [UInt8])?
        if let url = configuration.databaseURL {
            do {
                let store = try ChainStore(url: url)
                storeHead = try store.head(chainID: configuration.chainID)
                if storeHead == nil || head == nil { _ = try? store.ensurePartitions() }
                if head == nil { head = storeHead ?? (0, AuditRecord.genesisHash) }
            } catch {
                if head == nil { throw JournalError.headUnknown(String(describing: error)) }
                logger.warning("audit store unreachable at start; continuing from the spool", metadata: ["error": "\(error)"])
            }
        } else if head == nil {
            head = (0, AuditRecord.genesisHash)
        }
        if let storeHead, let spoolHead = head, storeHead.seq > spoolHead.seq {
            logger.warning(
                "the store is ahead of the spool; continuing after the store's head",
                metadata: ["store_seq": "\(storeHead.seq)", "spool_seq": "\(spoolHead.seq)"])
            head = storeHead
        }
        let start = head ?? (0, AuditRecord.genesisHash)

        lock.lock()
        nextSeq = start.seq + 1
        prevHash = start.hash
        durableSeq = start.seq
        shippedSeq = storeHead?.seq ?? 0
        spoolBytes = recovered.segments.reduce(0) { $0 + $1.size }
        if let last = recovered.segments.last, recovered.head?.seq == start.seq {
            activeSegment = (last.firstSeq, last.path, recovered.lastSegmentLength)
        }
        state = .running
        lock.unlock()

        if let active = activeSegment {
            segmentFD = try spool.openForWriting(active.path)
            segmentLength = active.syncedLength
            // Recovery cut the file at its last whole frame (zeros written ahead included).
            segmentAllocated = active.syncedLength
        }

        let writer = Thread { [self] in writerLoop() }
        writer.name = "auditgate-journal-writer"
        writer.start()
        let shipper = Thread { [self] in shipperLoop() }
        shipper.name = "auditgate-journal-shipper"
        shipper.start()
        logger.info(
            "journal started",
            metadata: [
                "chain_id": "\(configuration.chainID)", "next_seq": "\(start.seq + 1)",
                "durability": "\(configuration.durability.rawValue)", "spool_bytes": "\(spoolBytes)",
            ])
    }

    /// Appends a record. In `spool` mode, returns once the record is synced to disk; in `async` mode,
    /// at once. Throws `spoolFull` at once when the spool is at its cap and the record opens a new
    /// exchange (a request record): never waits for room.
    @discardableResult
    public func append(_ draft: RecordDraft) async throws -> AppendReceipt {
        if configuration.durability == .async { return try enqueue(draft, waiter: nil) }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<AppendReceipt, any Error>) in
            append(draft) { continuation.resume(with: $0) }
        }
    }

    /// `append` for callers that are not async (the gateway's event loops): `completion` runs once the
    /// record is as durable as the mode promises. In `async` mode, and on any refusal, it runs at once
    /// on the caller's thread; in `spool` mode after the sync, on the writer's thread.
    ///
    /// `syncInline` (spool mode): when no batch is being written, the caller writes and syncs the queue
    /// itself and `completion` runs on its thread before `append` returns. For callers that would
    /// otherwise only wait (an event loop with no other call in flight); the sync blocks them.
    public func append(
        _ draft: RecordDraft, syncInline: Bool = false, completion: @escaping @Sendable (Result<AppendReceipt, any Error>) -> Void
    ) {
        do {
            switch configuration.durability {
            case .async:
                completion(.success(try enqueue(draft, waiter: nil)))
            case .spool:
                try enqueue(draft, waiter: completion, signalWriter: !syncInline)
                if syncInline { syncInlineIfIdle() }
            }
        } catch {
            completion(.failure(error))
        }
    }

    /// Seals the record at the next position under the lock and queues its frame for the writer.
    @discardableResult
    private func enqueue(
        _ draft: RecordDraft, waiter: (@Sendable (Result<AppendReceipt, any Error>) -> Void)?, signalWriter: Bool = true
    ) throws -> AppendReceipt {
        let now = Self.nowMicros()
        lock.lock()
        defer { lock.unlock() }
        guard state == .running else { throw JournalError.closed }
        if let failure { throw failure }
        // The cap refuses new calls, never the closing record of a call already let in: that call may
        // already have reached the provider and its client, so its response record must be kept. The
        // spool can thus pass the cap by at most one response record per call in flight.
        guard draft.kind == .response || spoolBytes < configuration.spoolMaxBytes else {
            throw JournalError.spoolFull(bytes: spoolBytes, cap: configuration.spoolMaxBytes)
        }
        // Time never goes backwards along the chain, so ordering by time agrees with ordering by seq.
        let recordedAt = max(now, lastRecordedAt)
        let (record, canonical) = AuditRecord.sealKeepingCanonical(
            draft, chainID: configuration.chainID, seq: nextSeq, recordedAtMicros: recordedAt, prevHash: prevHash)
        if pending.isEmpty {
            pendingFirstSeq = record.seq
            pendingPrevHash = record.prevHash
        }
        let before = pending.count
        SpoolFormat.encodeFrame(record, canonical: canonical, into: &pending)
        spoolBytes += pending.count - before
        nextSeq += 1
        prevHash = record.hash
        lastRecordedAt = recordedAt
        let receipt = AppendReceipt(seq: record.seq, hash: record.hash, recordedAtMicros: recordedAt)
        if let waiter {
            waiters.append { waiter($0.map { receipt }) }
            if signalWriter { lock.signal() }
        } else if before == 0 || pending.count >= Self.asyncEagerBytes {
            // The first `async` record of a batch starts the writer's interval; later ones ride along.
            lock.signal()
        }
        return receipt
    }

    public var status: JournalStatus {
        lock.lock()
        defer { lock.unlock() }
        let reason: String? =
            if let failure { failure.description }
            else if state != .running { JournalError.closed.description }
            else if spoolBytes >= configuration.spoolMaxBytes {
                JournalError.spoolFull(bytes: spoolBytes, cap: configuration.spoolMaxBytes).description
            } else { nil }
        let sinceProgress = ContinuousClock.now - lastShipProgress
        let stalled = durableSeq > shippedSeq && configuration.databaseURL != nil && sinceProgress >= configuration.shipperStallAfter
        return JournalStatus(
            durability: configuration.durability, acceptingRecords: reason == nil, refusalReason: reason,
            spoolBytes: spoolBytes, spoolMaxBytes: configuration.spoolMaxBytes, lastSeq: nextSeq - 1,
            durableSeq: durableSeq, shippedSeq: shippedSeq, storeReachable: storeReachable, storeErrors: storeErrors,
            lastStoreError: lastStoreError, shipperStalledSeconds: stalled ? Int(sinceProgress.seconds) : nil,
            unstorableRecords: unstorableRecords)
    }

    /// Stops taking records, syncs what is queued, then lets the shipper move the spool into the store
    /// for up to `shipTimeout` (what it cannot ship stays in the spool for the next start).
    public func shutdown(shipTimeout: Duration = .seconds(10)) async {
        let wasRunning = locked { () -> Bool in
            guard state == .running else { return false }
            state = .stopping
            shipperStopDeadline = ContinuousClock.now + shipTimeout
            lock.broadcast()
            return true
        }
        guard wasRunning else { return }
        wake(shipperWakeup)
        while !locked({ writerDone && shipperDone }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let status = locked { () -> (Int64, Int64) in
            state = .stopped
            return (durableSeq, shippedSeq)
        }
        logger.info("journal stopped", metadata: ["durable_seq": "\(status.0)", "shipped_seq": "\(status.1)"])
    }

    /// Waits until every record synced so far is committed in the store (tests, `spool flush`).
    public func waitUntilShipped(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let status = self.status
            if status.shippedSeq >= status.lastSeq { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// Runs `body` holding the state lock (callable from async code, unlike `lock()`).
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    func wake(_ condition: NSCondition) {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    static func nowMicros() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }
}
