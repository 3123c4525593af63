import AuditCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum JournalError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The spool holds `spoolMaxBytes` already (the store has been away too long): refuse, don't buffer.
    case spoolFull(bytes: Int, cap: Int)
    /// The journal is shutting down or not started.
    case closed
    /// The spool cannot be written (disk error); records cannot be made durable.
    case spoolUnwritable(String)
    /// The chain's head is unknown: the spool is empty and the store cannot be asked.
    case headUnknown(String)
    /// The spool directory belongs to another chain, or a segment is unreadable.
    case spoolInvalid(String)

    public var description: String {
        switch self {
        case .spoolFull(let bytes, let cap):
            "audit spool is full (\(bytes) of \(cap) bytes): the audit store is not taking records; no new call can be recorded"
        case .closed: "the audit journal is shut down"
        case .spoolUnwritable(let reason): "the audit spool cannot be written: \(reason)"
        case .headUnknown(let reason):
            "cannot tell where the audit chain stands: the spool is empty and the store cannot be reached (\(reason))"
        case .spoolInvalid(let reason): "the audit spool is invalid: \(reason)"
        }
    }
}

/// File operations on the spool directory: listing segments, recovering after a crash, creating and
/// deleting segments with the fsyncs that make those steps durable.
struct SpoolDirectory {
    let path: String

    struct Segment: Equatable {
        var firstSeq: Int64
        var path: String
        var size: Int
    }

    struct Recovered {
        var segments: [Segment]
        /// The last record in the spool, or where the newest segment's header says the chain stood.
        var head: (seq: Int64, hash: [UInt8])?
        /// Length of valid data in the newest segment (after cutting off a torn tail).
        var lastSegmentLength: Int
    }

    func create() throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func segments() throws -> [Segment] {
        try FileManager.default.contentsOfDirectory(atPath: path).compactMap { name -> Segment? in
            guard let firstSeq = SpoolFormat.firstSeq(fileName: name) else { return nil }
            let full = path + "/" + name
            var info = stat()
            guard stat(full, &info) == 0 else { return nil }
            return Segment(firstSeq: firstSeq, path: full, size: Int(info.st_size))
        }.sorted { $0.firstSeq < $1.firstSeq }
    }

    /// Reads the spool after a start or a crash: checks each header, scans the newest segment's frames,
    /// and truncates a torn tail (a frame whose write never completed was never acknowledged) together
    /// with the zeros the writer had written ahead of its frames (a zero frame does not decode).
    func recover(chainID: String) throws -> Recovered {
        try create()
        let segments = try segments()
        var head: (seq: Int64, hash: [UInt8])?
        var lastLength = 0
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            let bytes = try readFile(segment.path, maxBytes: isLast ? Int.max : 4096)
            guard let (header, headerLength) = SpoolFormat.decodeHeader(bytes) else {
                if isLast && bytes.count < 4096 && segments.count > 1 {
                    // Crashed while creating a segment: it holds nothing acknowledged.
                    unlink(segment.path)
                    continue
                }
                throw JournalError.spoolInvalid("segment \(segment.path) has no valid header")
            }
            guard header.chainID == chainID else {
                throw JournalError.spoolInvalid("segment \(segment.path) belongs to chain '\(header.chainID)', not '\(chainID)'")
            }
            guard isLast else { continue }
            head = (header.firstSeq - 1, header.prevHash)
            var offset = headerLength
            scan: while true {
                switch SpoolFormat.decodeFrame(bytes, at: offset) {
                case .record(let record, let length):
                    head = (record.seq, record.hash)
                    offset += length
                case .incomplete, .corrupt:
                    break scan
                }
            }
            if offset < bytes.count {
                try truncate(segment.path, to: offset)
            }
            lastLength = offset
        }
        return Recovered(segments: try self.segments(), head: head, lastSegmentLength: lastLength)
    }

    /// Creates a segment with its header, synced together with the directory entry.
    func createSegment(_ header: SpoolFormat.SegmentHeader) throws -> (fd: Int32, path: String, length: Int) {
        let file = path + "/" + SpoolFormat.fileName(firstSeq: header.firstSeq)
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError.spoolUnwritable("cannot create \(file): \(errnoText())") }
        let bytes = SpoolFormat.encodeHeader(header)
        do {
            try bytes.withUnsafeBytes { try writeAll(fd, $0, at: 0) }
            guard fdatasync(fd) == 0 else { throw JournalError.spoolUnwritable("fdatasync: \(errnoText())") }
            try syncDirectory()
        } catch {
            close(fd)
            throw error
        }
        return (fd, file, bytes.count)
    }

    /// Opens an existing segment for the writer, which writes at explicit offsets (`pwrite`). Not
    /// `O_APPEND`: on Linux that makes `pwrite` ignore its offset.
    func openForWriting(_ file: String) throws -> Int32 {
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw JournalError.spoolUnwritable("cannot open \(file): \(errnoText())") }
        return fd
    }

    func delete(_ file: String) throws {
        guard unlink(file) == 0 || errno == ENOENT else {
            throw JournalError.spoolUnwritable("cannot delete \(file): \(errnoText())")
        }
        try syncDirectory()
    }

    func syncDirectory() throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw JournalError.spoolUnwritable("cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw JournalError.spoolUnwritable("fsync of \(path): \(errnoText())") }
    }

    func truncate(_ file: String, to length: Int) throws {
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw JournalError.spoolUnwritable("cannot open \(file): \(errnoText())") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0, fsync(fd) == 0 else {
            throw JournalError.spoolUnwritable("cannot truncate \(file): \(errnoText())")
        }
    }
}

/// Reads up to `maxBytes` from the start of a file.
func readFile(_ path: String, maxBytes: Int) throws -> [UInt8] {
    try readRange(path, offset: 0, maxBytes: maxBytes)
}

/// Reads up to `maxBytes` starting at `offset` (fewer at the end of the file).
func readRange(_ path: String, offset: Int, maxBytes: Int) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw JournalError.spoolInvalid("cannot open \(path): \(errnoText())") }
    defer { close(fd) }
    var info = stat()
    fstat(fd, &info)
    let available = max(0, Int(info.st_size) - offset)
    let count = min(available, maxBytes)
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        done += n
    }
    if done < count { bytes.removeLast(count - done) }
    return bytes
}

/// Writes all of `bytes` at `offset` of the file (`pwrite`, whatever the descriptor's position).
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
    var done = 0
    while done < bytes.count {
        let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw JournalError.spoolUnwritable("write: \(errnoText())") }
        done += n
    }
}

/// Writes zeros over `range` of the file, 64 KiB at a time.
func writeZeros(_ fd: Int32, _ range: Range<Int>) throws {
    let zeros = [UInt8](repeating: 0, count: min(64 * 1024, range.count))
    var offset = range.lowerBound
    try zeros.withUnsafeBytes { raw in
        while offset < range.upperBound {
            let count = min(raw.count, range.upperBound - offset)
            try writeAll(fd, UnsafeRawBufferPointer(rebasing: raw[0..<count]), at: offset)
            offset += count
        }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
