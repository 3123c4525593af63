import AuditCore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Journal {
    /// A batch taken off the queue by whoever writes it (the writer thread, or a caller syncing inline).
    struct Batch {
        var bytes: [UInt8]
        var waiters: [@Sendable (Result<Void, any Error>) -> Void]
        var firstSeq: Int64
        var enteringHash: [UInt8]
        var lastSeq: Int64
    }

    /// Takes everything queued as one batch and the right to write it (`writing`). Call holding `lock`.
    func takeBatch() -> Batch {
        let batch = Batch(
            bytes: pending, waiters: waiters, firstSeq: pendingFirstSeq, enteringHash: pendingPrevHash, lastSeq: nextSeq - 1)
        pending = []
        pending.reserveCapacity(batch.bytes.count)
        waiters = []
        writing = true
        return batch
    }

    /// Writes and syncs a taken batch (not holding `lock`), gives up `writing`, then releases the
    /// batch's waiters on this thread.
    func completeBatch(_ batch: Batch) {
        do {
            try writeBatch(batch.bytes, firstSeq: batch.firstSeq, enteringHash: batch.enteringHash)
            lock.lock()
            durableSeq = batch.lastSeq
            if let active = activeSegment { activeSegment = (active.firstSeq, active.path, segmentLength) }
            writing = false
            // The writer thread may be waiting for `writing` to end, with records queued meanwhile.
            if !pending.isEmpty || state != .running { lock.signal() }
            lock.unlock()
            for waiter in batch.waiters { waiter(.success(())) }
            wake(shipperWakeup)
        } catch {
            let failure = (error as? JournalError) ?? .spoolUnwritable(String(describing: error))
            logger.critical("audit spool write failed; refusing new records", metadata: ["error": "\(failure)"])
            lock.lock()
            self.failure = failure
            let stranded = waiters
            waiters = []
            pending = []
            writing = false
            lock.signal()
            lock.unlock()
            for waiter in batch.waiters + stranded { waiter(.failure(failure)) }
        }
    }

    /// In `spool` mode, a caller with nothing else to do meanwhile (the only call on its event loop)
    /// writes and syncs the queue itself when no batch is being written: no hand-over to the writer
    /// thread and back, which at low load cost about as much as the sync (docs/benchmarks.md). Under
    /// load a batch is usually being written, and the writer thread takes the queue after it.
    func syncInlineIfIdle() {
        lock.lock()
        guard !writing, state == .running, failure == nil, !pending.isEmpty else {
            // Not ours to write: make sure the writer thread knows there is a waiter.
            if !pending.isEmpty { lock.signal() }
            lock.unlock()
            return
        }
        let batch = takeBatch()
        lock.unlock()
        completeBatch(batch)
    }

    /// The writer thread: takes everything queued since its last sync, writes it in one `write`, syncs
    /// once (group commit), then releases every waiter of that batch.
    func writerLoop() {
        while true {
            lock.lock()
            waitForWork()
            if pending.isEmpty {
                writerDone = true
                lock.unlock()
                if segmentFD >= 0 { close(segmentFD) }
                segmentFD = -1
                wake(shipperWakeup)
                return
            }
            let batch = takeBatch()
            lock.unlock()
            completeBatch(batch)
        }
    }

    /// Returns (holding `lock`, with no batch being written) once there is a batch to write, or with
    /// nothing queued once the journal stops. A waiting caller (`spool` mode), a large batch or a stop
    /// starts the write at once; `async` records wait up to `asyncSyncInterval`, so a busy gateway
    /// syncs a few hundred times a second instead of once per call and its event loops do not wake
    /// this thread per record. Every wake-up re-checks from the top: an inline writer may have taken
    /// the queue meanwhile.
    private func waitForWork() {
        var deadline: Date?
        while true {
            if writing {
                lock.wait()
            } else if pending.isEmpty {
                if state != .running { return }
                deadline = nil
                lock.wait()
            } else {
                if state != .running || !waiters.isEmpty || pending.count >= Self.asyncEagerBytes { return }
                let until = deadline ?? Date(timeIntervalSinceNow: configuration.asyncSyncInterval.seconds)
                if until.timeIntervalSinceNow <= 0 { return }
                deadline = until
                _ = lock.wait(until: until)
            }
        }
    }

    /// Queued `async` records past this size are written without waiting for the interval.
    static let asyncEagerBytes = 256 * 1024

    /// Zeros are written this far ahead of the active segment's frames (`writeBatch`).
    static let writeAheadBytes = 1 << 20

    /// Writes a batch to the active segment (beginning a new one when it is full) and syncs it.
    ///
    /// A batch is written over zeros written earlier rather than past the file's end, as PostgreSQL
    /// does with its WAL: when the file's size does not change, `fdatasync` writes only the data,
    /// not the inode too, which made a sync about a third cheaper here (`bench/fsync.py`, and two
    /// syncs are on the path of every `spool`-mode call). So once the frames reach the zeros' end,
    /// the next MiB of zeros is written along with the batch, under the same sync. The zeros never
    /// pass the segment's size, so a finished segment ends with its last frame; in the newest segment,
    /// recovery cuts them off with any torn frame.
    private func writeBatch(_ batch: [UInt8], firstSeq: Int64, enteringHash: [UInt8]) throws {
        if segmentFD < 0 || segmentLength >= configuration.effectiveSegmentBytes {
            let header = SpoolFormat.SegmentHeader(chainID: configuration.chainID, firstSeq: firstSeq, prevHash: enteringHash)
            let created = try spool.createSegment(header)
            let previous = segmentFD
            segmentFD = created.fd
            segmentLength = created.length
            segmentAllocated = created.length
            lock.lock()
            spoolBytes += created.length
            activeSegment = (firstSeq, created.path, created.length)
            lock.unlock()
            if previous >= 0 { close(previous) }
        }
        let end = segmentLength + batch.count
        try batch.withUnsafeBytes { try writeAll(segmentFD, $0, at: segmentLength) }
        var allocated = max(segmentAllocated, end)
        if end > segmentAllocated && end < configuration.effectiveSegmentBytes {
            // The frames passed the zeros: write the next ones after them, covered by this sync.
            allocated = min(configuration.effectiveSegmentBytes, end + Self.writeAheadBytes)
            try writeZeros(segmentFD, end..<allocated)
        }
        guard fdatasync(segmentFD) == 0 else { throw JournalError.spoolUnwritable("fdatasync: \(errnoText())") }
        segmentLength = end
        segmentAllocated = allocated
    }
}
