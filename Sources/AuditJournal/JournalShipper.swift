import AuditCore
import AuditStore
import Foundation
import LibPQ
import Logging

/// Exponential backoff between reconnection attempts while the store is away.
struct Backoff {
    let initial: Duration = .milliseconds(50)
    let maximum: Duration
    private(set) var next: Duration

    init(maximum: Duration) {
        self.maximum = maximum
        self.next = initial
    }

    mutating func take() -> Duration {
        defer { next = min(next * 2, maximum) }
        return next
    }

    mutating func reset() { next = initial }
}

extension Duration {
    /// In seconds, for the Foundation and POSIX calls that take a `TimeInterval`.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension Journal {
    /// Where the shipper is in the spool: the segment it reads and the offset of its next frame.
    struct ShipCursor {
        var segmentFirstSeq: Int64
        var offset: Int
    }

    /// The shipper thread: moves synced records into the store in order, in bounded COPY batches,
    /// resuming after the store's head (so a replay after a crash inserts nothing twice), and deletes
    /// a segment only after its last record is committed. While the store is away it retries with
    /// backoff; the spool keeps every record meanwhile.
    func shipperLoop() {
        var store: ChainStore?
        var backoff = Backoff(maximum: configuration.maxBackoff)
        var cursor: ShipCursor?
        while true {
            lock.lock()
            let running = state == .running
            let deadline = shipperStopDeadline
            let writerFinished = writerDone
            let caughtUp = shippedSeq >= durableSeq
            lock.unlock()
            if !running && writerFinished && (caughtUp || configuration.databaseURL == nil) { break }
            if !running, let deadline, ContinuousClock.now >= deadline {
                logger.warning("shutdown: records left in the spool for the next start", metadata: ["reason": "store unavailable"])
                break
            }
            guard let url = configuration.databaseURL else {
                pause(.milliseconds(100))
                continue
            }
            if store == nil {
                do {
                    let connected = try ChainStore(url: url, connectTimeoutSeconds: 3)
                    let head = try connected.head(chainID: configuration.chainID)
                    lock.lock()
                    shippedSeq = head?.seq ?? 0
                    storeReachable = true
                    let inOutage = storeErrorLogged
                    lock.unlock()
                    store = connected
                    cursor = nil
                    // The backoff is reset by shipping, not by connecting: a store that takes the
                    // connection but refuses every batch must not be retried 15 times a second.
                    if !inOutage { logger.info("audit store connected", metadata: ["store_seq": "\(head?.seq ?? 0)"]) }
                } catch {
                    noteStoreError(error)
                    notePosition(shipped: false)
                    pause(backoff.take())
                    continue
                }
            }
            do {
                let step = try shipSome(to: store!, cursor: &cursor)
                notePosition(shipped: { if case .shipped = step { true } else { false } }())
                switch step {
                case .nothing: pause(.milliseconds(100))
                case .shipped(let count) where count < configuration.shipBatchRecords && running:
                    backoff.reset()
                    // Not woken by the writer: let records gather for one larger COPY.
                    Thread.sleep(forTimeInterval: configuration.shipLinger.seconds)
                case .shipped:
                    backoff.reset()
                case .deleted: break
                }
            } catch let error as JournalError {
                // The spool itself is unreadable: keep the segment, say so, try again later.
                lock.lock()
                lastStoreError = error.description
                lock.unlock()
                logger.critical("cannot read the spool", metadata: ["error": "\(error)"])
                pause(configuration.maxBackoff)
            } catch {
                noteStoreError(error)
                notePosition(shipped: false)
                store = nil
                pause(backoff.take())
            }
        }
        lock.lock()
        shipperDone = true
        lock.unlock()
    }

    /// Keeps the instant the shipper last stood level with the spool or moved forward, and logs once a
    /// minute while it has not for `shipperStallAfter` (the same condition makes `/readyz` 503).
    private func notePosition(shipped: Bool) {
        let now = ContinuousClock.now
        lock.lock()
        let recovered = shipped && storeErrorLogged
        if shipped || shippedSeq >= durableSeq {
            lastShipProgress = now
            if shipped { storeErrorLogged = false }
        }
        let stalledFor = now - lastShipProgress
        let logDue = stalledFor >= configuration.shipperStallAfter && (lastStallLog.map { now - $0 >= .seconds(60) } ?? true)
        if logDue { lastStallLog = now }
        let backlog = durableSeq - shippedSeq
        let storeSeq = shippedSeq
        let reason = lastStoreError ?? "no error reported"
        lock.unlock()
        if recovered {
            logger.info("the audit store takes records again", metadata: ["store_seq": "\(storeSeq)", "backlog": "\(backlog)"])
        }
        if logDue {
            logger.error(
                "the audit store has taken no record for a while; records stay in the spool",
                metadata: ["stalled_seconds": "\(Int(stalledFor.seconds))", "backlog": "\(backlog)", "error": "\(reason)"])
        }
    }

    /// Counts every failure, but logs only the first of an outage (a store that takes the connection
    /// and refuses every batch would otherwise log each retry); `notePosition` logs once a minute after.
    private func noteStoreError(_ error: any Error) {
        lock.lock()
        let firstOfOutage = !storeErrorLogged
        storeErrorLogged = true
        storeReachable = false
        storeErrors += 1
        lastStoreError = String(describing: error)
        lock.unlock()
        if firstOfOutage {
            logger.error("audit store unavailable; records stay in the spool", metadata: ["error": "\(error)"])
        }
    }

    /// Waits for the writer's signal, shutdown, or the timeout.
    func pause(_ duration: Duration) {
        shipperWakeup.lock()
        _ = shipperWakeup.wait(until: Date(timeIntervalSinceNow: duration.seconds))
        shipperWakeup.unlock()
    }

    /// What one `shipSome` did: the loop pauses after `.nothing` and lingers after a short batch.
    enum ShipStep {
        case nothing
        case shipped(Int)
        case deleted
    }

    /// Ships one batch, or deletes one fully shipped segment.
    private func shipSome(to store: ChainStore, cursor: inout ShipCursor?) throws -> ShipStep {
        // List first, then read the writer's position: a segment created after the listing is simply
        // not seen this round, and one listed is never mistaken for finished while it is written.
        let segments = try spool.segments()
        lock.lock()
        let shipped = shippedSeq
        let active = activeSegment
        lock.unlock()

        for (index, segment) in segments.enumerated() {
            // Only a segment with a successor is finished: the writer begins the next segment after
            // syncing the last batch of this one. The newest segment is never deleted, so its header
            // always tells where the chain stands.
            let next = index + 1 < segments.count ? segments[index + 1] : nil
            let finished = next != nil
            // Everything before the next segment's first seq is in this one: if the store has it all,
            // the segment can go without being read.
            if let next, next.firstSeq - 1 <= shipped {
                try deleteSegment(segment)
                return .deleted
            }
            let limit =
                finished ? segment.size : (active?.firstSeq == segment.firstSeq ? active?.syncedLength ?? 0 : 0)
            var offset: Int
            if let current = cursor, current.segmentFirstSeq == segment.firstSeq {
                offset = current.offset
            } else {
                let head = try readRange(segment.path, offset: 0, maxBytes: 4096)
                guard let (_, headerLength) = SpoolFormat.decodeHeader(head) else {
                    throw JournalError.spoolInvalid("segment \(segment.path) has no valid header")
                }
                offset = headerLength
            }
            var records: [AuditRecord] = []
            var batchBytes = 0
            // Only records kept for this batch count against its byte budget: frames already in the
            // store are skipped however many there are, so an empty batch means the segment's synced
            // end was reached (a budget that counted skipped frames once stopped here with nothing
            // kept, moved on to the next segment and left the rest of this one unshipped).
            while offset < limit && records.count < configuration.shipBatchRecords && batchBytes < configuration.shipBatchBytes {
                var chunk = try readRange(segment.path, offset: offset, maxBytes: min(limit - offset, 4 << 20, configuration.shipBatchBytes))
                if chunk.count >= 8, case .incomplete = SpoolFormat.decodeFrame(chunk, at: 0) {
                    let needed = SpoolFormat.frameHeaderSize + Int(SpoolFormat.readUInt32(chunk, at: 0))
                    chunk = try readRange(segment.path, offset: offset, maxBytes: min(limit - offset, needed))
                }
                var position = 0
                decode: while position < chunk.count && records.count < configuration.shipBatchRecords {
                    switch SpoolFormat.decodeFrame(chunk, at: position) {
                    case .record(let record, let length):
                        if record.seq > shipped {
                            records.append(record)
                            batchBytes += length
                        }
                        position += length
                    case .incomplete:
                        break decode
                    case .corrupt:
                        throw JournalError.spoolInvalid("corrupt frame in \(segment.path) at offset \(offset + position)")
                    }
                }
                if position == 0 { break }
                offset += position
            }
            if !records.isEmpty {
                if let first = records.first, first.seq != shipped + 1 {
                    logger.error(
                        "the spool does not continue the store's chain; shipping anyway, verify will show the gap",
                        metadata: ["store_seq": "\(shipped)", "spool_seq": "\(first.seq)"])
                }
                try insertIsolatingRefusals(records, into: store)
                lock.lock()
                shippedSeq = records.last!.seq
                lock.unlock()
                cursor = ShipCursor(segmentFirstSeq: segment.firstSeq, offset: offset)
                return .shipped(records.count)
            }
            cursor = ShipCursor(segmentFirstSeq: segment.firstSeq, offset: offset)
            if !finished { return .nothing }
            // A finished segment is read to its end before the next one: anything left is not a
            // whole frame, and moving on would leave records behind unshipped (and deleted later).
            guard offset >= limit else {
                throw JournalError.spoolInvalid("segment \(segment.path) ends in an incomplete frame at offset \(offset) of \(limit)")
            }
        }
        return .nothing
    }

    /// Inserts a batch. When PostgreSQL refuses the batch for its data (`PGError.refusesData`), the
    /// records go one by one, and each one it refuses is kept as bytes in `audit.unstorable_records`:
    /// one record can never hold back the chain behind it. Any other error (connection, privileges)
    /// is thrown, and the batch is retried after a backoff.
    private func insertIsolatingRefusals(_ records: [AuditRecord], into store: ChainStore) throws {
        do {
            try store.insert(records)
        } catch let error as PGError where error.refusesData {
            logger.warning(
                "the store refused a batch for its data; shipping its records one by one",
                metadata: ["sqlstate": "\(error.sqlState ?? "")", "first_seq": "\(records.first?.seq ?? 0)", "count": "\(records.count)"])
            for record in records {
                do {
                    try store.insert([record])
                } catch let refusal as PGError where refusal.refusesData {
                    try store.insertUnstorable(record, refusedWith: refusal.sqlState ?? "")
                    lock.lock()
                    unstorableRecords += 1
                    lock.unlock()
                    logger.error(
                        "a record the store refuses as text is kept as bytes in audit.unstorable_records; verify reads it there",
                        metadata: ["chain_id": "\(record.chainID)", "seq": "\(record.seq)", "sqlstate": "\(refusal.sqlState ?? "")"])
                }
            }
        }
    }

    private func deleteSegment(_ segment: SpoolDirectory.Segment) throws {
        try spool.delete(segment.path)
        lock.lock()
        spoolBytes -= segment.size
        lock.unlock()
    }
}
