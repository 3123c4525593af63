import AuditCore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Journal {
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
            let batch = pending
            let batchWaiters = waiters
            let firstSeq = pendingFirstSeq
            let enteringHash = pendingPrevHash
            let lastSeq = nextSeq - 1
            pending = []
            pending.reserveCapacity(batch.count)
            waiters = []
            lock.unlock()

            do {
                try writeBatch(batch, firstSeq: firstSeq, enteringHash: enteringHash)
                lock.lock()
                durableSeq = lastSeq
                if let active = activeSegment { activeSegment = (active.firstSeq, active.path, segmentLength) }
                lock.unlock()
                for waiter in batchWaiters { waiter(.success(())) }
                wake(shipperWakeup)
            } catch {
                let failure = (error as? JournalError) ?? .spoolUnwritable(String(describing: error))
                logger.critical("audit spool write failed; refusing new records", metadata: ["error": "\(failure)"])
                lock.lock()
                self.failure = failure
                let stranded = waiters
                waiters = []
                pending = []
                lock.unlock()
                for waiter in batchWaiters + stranded { waiter(.failure(failure)) }
            }
        }
    }

    /// Returns (holding `lock`) once there is a batch to write, or the journal stops. A waiting caller
    /// (`spool` mode) or a large batch starts the write at once; `async` records wait up to
    /// `asyncSyncInterval`, so a busy gateway syncs a few hundred times a second instead of once per
    /// call and its event loops do not wake this thread per record.
    private func waitForWork() {
        var deadline: Date?
        while state == .running {
            if !waiters.isEmpty || pending.count >= Self.asyncEagerBytes { return }
            if pending.isEmpty {
                deadline = nil
                lock.wait()
            } else {
                let until = deadline ?? Date(timeIntervalSinceNow: configuration.asyncSyncInterval.seconds)
                deadline = until
                if !lock.wait(until: until) { return }
            }
        }
    }

    /// Queued `async` records past this size are written without waiting for the interval.
    static let asyncEagerBytes = 256 * 1024

    /// Writes a batch to the active segment (beginning a new one when it is full) and syncs it.
    private func writeBatch(_ batch: [UInt8], firstSeq: Int64, enteringHash: [UInt8]) throws {
        if segmentFD < 0 || segmentLength >= configuration.effectiveSegmentBytes {
            let header = SpoolFormat.SegmentHeader(chainID: configuration.chainID, firstSeq: firstSeq, prevHash: enteringHash)
            let created = try spool.createSegment(header)
            let previous = segmentFD
            segmentFD = created.fd
            segmentLength = created.length
            lock.lock()
            spoolBytes += created.length
            activeSegment = (firstSeq, created.path, created.length)
            lock.unlock()
            if previous >= 0 { close(previous) }
        }
        try writeAll(segmentFD, batch)
        guard fdatasync(segmentFD) == 0 else { throw JournalError.spoolUnwritable("fdatasync: \(errnoText())") }
        segmentLength += batch.count
    }
}
