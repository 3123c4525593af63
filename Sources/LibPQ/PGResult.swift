import CLibPQ

/// A completed query result. Values are read in text format; the result is freed with the object.
public final class PGResult {
    let handle: OpaquePointer

    init(_ handle: OpaquePointer) { self.handle = handle }
    deinit { PQclear(handle) }

    public var rowCount: Int { Int(PQntuples(handle)) }
    public var columnCount: Int { Int(PQnfields(handle)) }

    /// Rows affected by INSERT/UPDATE/DELETE/COPY, when the command reports it.
    public var affectedRows: Int { Int(String(cString: PQcmdTuples(handle))) ?? 0 }

    public func columnName(_ column: Int) -> String { String(cString: PQfname(handle, Int32(column))) }

    /// The column's type OID (`int8` 20, `int4` 23, `numeric` 1700, `bool` 16, `text` 25, …).
    public func columnType(_ column: Int) -> UInt32 { UInt32(PQftype(handle, Int32(column))) }

    public func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(handle, Int32(row), Int32(column)) == 1 }

    public func string(_ row: Int, _ column: Int) -> String? {
        if isNull(row, column) { return nil }
        return String(cString: PQgetvalue(handle, Int32(row), Int32(column)))
    }

    public func int(_ row: Int, _ column: Int) -> Int64? { string(row, column).flatMap { Int64($0) } }

    public func bool(_ row: Int, _ column: Int) -> Bool? { string(row, column).map { $0 == "t" } }

    /// A `bytea` column in the server's default hex output (`\x0a1b…`).
    public func bytes(_ row: Int, _ column: Int) -> [UInt8]? {
        guard let text = string(row, column) else { return nil }
        guard text.hasPrefix("\\x") else { return nil }
        return PGBytea.decodeHex(text.utf8.dropFirst(2))
    }

    public func row(_ index: Int) -> PGRow { PGRow(result: self, index: index) }
}

/// One row of a result; valid while the result lives.
public struct PGRow {
    let result: PGResult
    public let index: Int

    public var columnCount: Int { result.columnCount }
    public func isNull(_ column: Int) -> Bool { result.isNull(index, column) }
    public func string(_ column: Int) -> String? { result.string(index, column) }
    public func int(_ column: Int) -> Int64? { result.int(index, column) }
    public func bool(_ column: Int) -> Bool? { result.bool(index, column) }
    public func bytes(_ column: Int) -> [UInt8]? { result.bytes(index, column) }
    public func columnName(_ column: Int) -> String { result.columnName(column) }

    /// Raw pointer and length of a column's text, for writers that must not copy (exports).
    public func withUnsafeText<T>(_ column: Int, _ body: (UnsafeRawBufferPointer?) throws -> T) rethrows -> T {
        if result.isNull(index, column) { return try body(nil) }
        let pointer = PQgetvalue(result.handle, Int32(index), Int32(column))
        let length = Int(PQgetlength(result.handle, Int32(index), Int32(column)))
        return try body(UnsafeRawBufferPointer(start: pointer, count: length))
    }
}

/// The text forms of `bytea`.
public enum PGBytea {
    /// `\x…` literal for a parameter or COPY field (in COPY text format the backslash itself needs escaping,
    /// which `PGCopyWriter.field` does).
    public static func literal(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
        out.reserveCapacity(2 + bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decodeHex(_ utf8: some Collection<UInt8>) -> [UInt8]? {
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        var iterator = utf8.makeIterator()
        while let high = iterator.next() {
            guard let low = iterator.next(), let h = nibble(high), let l = nibble(low) else { return nil }
            bytes.append(h << 4 | l)
        }
        return bytes
    }
}
