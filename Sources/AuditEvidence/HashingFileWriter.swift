import AuditCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file through a bounded buffer while hashing it, so a package's manifest can name every
/// file's SHA-256 and size without reading the files again, and memory stays flat.
public final class HashingFileWriter {
    public let path: String
    public private(set) var bytesWritten = 0
    public var rows = 0
    private var buffer: [UInt8] = []
    private var hasher: SHA256? = SHA256()
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExportError.io("cannot create \(path): \(String(cString: strerror(errno)))") }
        buffer.reserveCapacity(Self.bufferSize + 4096)
    }

    static let bufferSize = 256 * 1024

    public func write(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.bufferSize { try flush() }
    }

    public func write(_ text: String) throws {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= Self.bufferSize { try flush() }
    }

    /// Appends raw bytes (from libpq's buffers) without an intermediate copy.
    public func write(_ raw: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: raw)
        if buffer.count >= Self.bufferSize { try flush() }
    }

    public func append(_ byte: UInt8) { buffer.append(byte) }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        hasher?.update(buffer)
        var done = 0
        try buffer.withUnsafeBytes { raw in
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw ExportError.io("cannot write \(path): \(String(cString: strerror(errno)))") }
                done += n
            }
        }
        bytesWritten += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, syncs and closes; returns the file's manifest entry.
    public func finish(name: String) throws -> EvidenceManifest.FileEntry {
        try flush()
        fsync(fd)
        close(fd)
        guard let hasher = hasher.take() else { throw ExportError.invalid("\(path) was finished twice") }
        let digest = hasher.finalize()
        return EvidenceManifest.FileEntry(name: name, bytes: bytesWritten, sha256: digest.hexString, rows: rows)
    }
}

public enum ExportError: Error, CustomStringConvertible {
    case io(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .io(let message), .invalid(let message): message
        }
    }
}
