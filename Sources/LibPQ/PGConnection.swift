import CLibPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One libpq connection. libpq is blocking: a connection is confined to one thread (the shipper's,
/// a `BlockingExecutor`'s, or a command-line tool's main thread) and never used from Swift's
/// cooperative pool. Not `Sendable` for that reason.
public final class PGConnection {
    let handle: OpaquePointer

    /// Connects with a libpq connection string (`host=… dbname=…`) or URI (`postgresql://…`).
    /// `connectTimeoutSeconds` applies unless the string sets its own `connect_timeout`.
    public init(_ conninfo: String, connectTimeoutSeconds: Int = 5, applicationName: String = "auditgate") throws(PGError) {
        let keywords = ["connect_timeout", "fallback_application_name", "dbname"]
        let values = [String(connectTimeoutSeconds), applicationName, conninfo]
        let handle: OpaquePointer? = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in PQconnectdbParams(keywordPointers, valuePointers, 1) }
        }
        guard let handle else { throw PGError(kind: .connection, message: "out of memory creating a connection") }
        guard PQstatus(handle) == CONNECTION_OK else {
            let error = PGError.fromConnection(handle)
            PQfinish(handle)
            throw error
        }
        // Server notices ("relation already exists, skipping") would go to stderr; the gateway's logs are
        // structured and must not carry stray text.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        self.handle = handle
    }

    deinit { PQfinish(handle) }

    /// False once the server or the network has dropped the connection.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The server's version number, e.g. 150018.
    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// Runs one statement (or, without parameters, a script of several) and returns its result.
    /// Parameters are sent separately from the text, in text format; `nil` is SQL NULL.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) throws(PGError) -> PGResult {
        let raw: OpaquePointer?
        if parameters.isEmpty {
            raw = PQexec(handle, sql)
        } else {
            raw = withOptionalCStrings(parameters) { pointers in
                PQexecParams(handle, sql, Int32(parameters.count), nil, pointers, nil, nil, 0)
            }
        }
        return try checked(raw)
    }

    /// Runs a query and hands each row to `body` as it arrives (libpq single-row mode), so memory stays
    /// flat however many rows the query returns. If `body` throws, the query is cancelled.
    public func forEachRow(_ sql: String, _ parameters: [String?] = [], _ body: (PGRow) throws -> Void) throws {
        let sent = withOptionalCStrings(parameters) { pointers in
            PQsendQueryParams(handle, sql, Int32(parameters.count), nil, pointers, nil, nil, 0)
        }
        guard sent == 1 else { throw PGError.fromConnection(handle) }
        guard PQsetSingleRowMode(handle) == 1 else {
            drainResults()
            throw PGError(kind: .client, message: "could not enter single-row mode")
        }
        var firstError: (any Error)?
        while let raw = PQgetResult(handle) {
            let result = PGResult(raw)
            if firstError != nil { continue }
            switch PQresultStatus(raw) {
            case PGRES_SINGLE_TUPLE:
                do { try body(result.row(0)) } catch {
                    firstError = error
                    cancelRunningQuery()
                }
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
                break
            default:
                firstError = PGError.fromResult(raw, connection: handle)
            }
        }
        if let firstError { throw firstError }
    }

    /// `COPY … FROM STDIN` in text format. `body` writes rows through the writer; throwing inside it
    /// aborts the COPY, so nothing of it is committed. Returns the number of rows copied.
    @discardableResult
    public func copyIn(_ sql: String, _ body: (inout PGCopyWriter) throws -> Void) throws -> Int {
        let start = try checkedCopyStart(PQexec(handle, sql))
        _ = start
        var writer = PGCopyWriter(connection: handle)
        do {
            try body(&writer)
            try writer.flush(force: true)
        } catch {
            _ = PQputCopyEnd(handle, "aborted by client")
            drainResults()
            throw error
        }
        guard PQputCopyEnd(handle, nil) == 1 else {
            let error = PGError.fromConnection(handle)
            drainResults()
            throw error
        }
        var rows = 0
        var failure: PGError?
        while let raw = PQgetResult(handle) {
            let result = PGResult(raw)
            if PQresultStatus(raw) == PGRES_COMMAND_OK {
                rows = result.affectedRows
            } else if failure == nil {
                failure = PGError.fromResult(raw, connection: handle)
            }
        }
        if let failure { throw failure }
        return rows
    }

    /// Runs `body` inside BEGIN … COMMIT; any error rolls back.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            if isHealthy { _ = try? execute("ROLLBACK") }
            throw error
        }
    }

    private func checked(_ raw: OpaquePointer?) throws(PGError) -> PGResult {
        guard let raw else { throw PGError.fromConnection(handle) }
        switch PQresultStatus(raw) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PGResult(raw)
        default:
            let error = PGError.fromResult(raw, connection: handle)
            PQclear(raw)
            drainResults()
            throw error
        }
    }

    private func checkedCopyStart(_ raw: OpaquePointer?) throws(PGError) -> PGResult {
        guard let raw else { throw PGError.fromConnection(handle) }
        guard PQresultStatus(raw) == PGRES_COPY_IN else {
            let error = PGError.fromResult(raw, connection: handle)
            PQclear(raw)
            drainResults()
            throw error
        }
        return PGResult(raw)
    }

    private func cancelRunningQuery() {
        guard let cancel = PQgetCancel(handle) else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &buffer, Int32(buffer.count))
        PQfreeCancel(cancel)
    }

    /// libpq requires every pending result to be read before the next command.
    private func drainResults() {
        while let raw = PQgetResult(handle) { PQclear(raw) }
    }
}

/// Buffers COPY text rows and hands them to libpq in chunks of about 64 KiB.
public struct PGCopyWriter {
    private var buffer: [UInt8] = []
    private let connection: OpaquePointer

    init(connection: OpaquePointer) {
        self.connection = connection
        buffer.reserveCapacity(80 * 1024)
    }

    /// Appends one row. Each field is escaped for COPY text format (`\`, tab, newline, CR); `nil` is NULL.
    public mutating func row(_ fields: [String?]) throws(PGError) {
        for (index, field) in fields.enumerated() {
            if index > 0 { buffer.append(0x09) }
            guard let field else {
                buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")])
                continue
            }
            appendEscaped(field)
        }
        buffer.append(0x0a)
        try flush(force: false)
    }

    private mutating func appendEscaped(_ field: String) {
        var field = field
        field.withUTF8 { bytes in
            // Most fields (ids, hashes in hex, numbers, timestamps) need no escaping: copied in one go.
            if !bytes.contains(where: { $0 == UInt8(ascii: "\\") || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }) {
                buffer.append(contentsOf: bytes)
                return
            }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\\"): buffer.append(contentsOf: [0x5c, 0x5c])
                case 0x09: buffer.append(contentsOf: [0x5c, UInt8(ascii: "t")])
                case 0x0a: buffer.append(contentsOf: [0x5c, UInt8(ascii: "n")])
                case 0x0d: buffer.append(contentsOf: [0x5c, UInt8(ascii: "r")])
                default: buffer.append(byte)
                }
            }
        }
    }

    var needsFlush: Bool { buffer.count >= 64 * 1024 }

    mutating func flush(force: Bool) throws(PGError) {
        guard !buffer.isEmpty, force || needsFlush else { return }
        let status = buffer.withUnsafeBytes { raw in
            PQputCopyData(connection, raw.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(raw.count))
        }
        guard status == 1 else { throw PGError.fromConnection(connection) }
        buffer.removeAll(keepingCapacity: true)
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let duplicates: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    var pointers: [UnsafePointer<CChar>?] = duplicates.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

private func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let duplicates: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0) } ?? nil }
    defer { duplicates.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = duplicates.map { UnsafePointer($0) }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}
