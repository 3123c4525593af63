/// How a column's values are written: text is guarded in CSV and quoted in JSON; numbers and booleans
/// are written bare.
public enum ColumnKind: Sendable {
    case text
    case integer
    case decimal
    case boolean
    /// Already RFC 3339 text; never begins with a formula character.
    case timestamp
}

/// RFC 4180 cells with the spreadsheet formula guard, and JSON values, written as bytes.
public enum CellEncoding {
    /// A text cell beginning with one of these is prefixed with `'` so no spreadsheet evaluates it.
    static let formulaStarts: Set<UInt8> = [UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "@"), 0x09, 0x0d]

    /// Appends one CSV cell (no separator). NULL is an empty cell.
    public static func appendCSV(_ value: UnsafeRawBufferPointer?, kind: ColumnKind, to out: inout [UInt8]) {
        guard let value, value.count > 0 else { return }
        let guarded = kind == .text && formulaStarts.contains(value[0])
        var needsQuotes = false
        for byte in value where byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\"") || byte == 0x0a || byte == 0x0d {
            needsQuotes = true
            break
        }
        if !needsQuotes {
            if guarded { out.append(UInt8(ascii: "'")) }
            out.append(contentsOf: value)
            return
        }
        out.append(UInt8(ascii: "\""))
        if guarded { out.append(UInt8(ascii: "'")) }
        for byte in value {
            if byte == UInt8(ascii: "\"") { out.append(byte) }
            out.append(byte)
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func appendCSV(_ text: String?, kind: ColumnKind, to out: inout [UInt8]) {
        guard var text else { return }
        text.withUTF8 { appendCSV(UnsafeRawBufferPointer($0), kind: kind, to: &out) }
    }

    /// Appends one JSON value. PostgreSQL's text forms: booleans `t`/`f`, numbers in decimal.
    public static func appendJSON(_ value: UnsafeRawBufferPointer?, kind: ColumnKind, to out: inout [UInt8]) {
        guard let value else {
            out.append(contentsOf: [110, 117, 108, 108])  // null
            return
        }
        switch kind {
        case .integer, .decimal:
            out.append(contentsOf: value)
        case .boolean:
            out.append(contentsOf: value.first == UInt8(ascii: "t") ? Array("true".utf8) : Array("false".utf8))
        case .text, .timestamp:
            appendJSONString(value, to: &out)
        }
    }

    public static func appendJSON(_ text: String?, kind: ColumnKind, to out: inout [UInt8]) {
        guard var text else {
            appendJSON(UnsafeRawBufferPointer?.none, kind: kind, to: &out)
            return
        }
        text.withUTF8 { appendJSON(UnsafeRawBufferPointer($0), kind: kind, to: &out) }
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    public static func appendJSONString(_ value: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5c, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5c, 0x5c])
            case 0x0a: out.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: out.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: [0x5c, UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xf)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func appendJSONString(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { appendJSONString(UnsafeRawBufferPointer($0), to: &out) }
    }
}

/// Writes rows as CSV and JSON Lines side by side, with the same columns.
public struct TabularWriters {
    public let columns: [(name: String, kind: ColumnKind)]
    public let csv: HashingFileWriter
    public let jsonl: HashingFileWriter
    private var csvRow: [UInt8] = []
    private var jsonRow: [UInt8] = []
    private let jsonKeys: [[UInt8]]

    public init(columns: [(name: String, kind: ColumnKind)], csvPath: String, jsonlPath: String) throws {
        self.columns = columns
        csv = try HashingFileWriter(path: csvPath)
        jsonl = try HashingFileWriter(path: jsonlPath)
        jsonKeys = columns.map { column in
            var key: [UInt8] = []
            CellEncoding.appendJSONString(column.name, to: &key)
            key.append(UInt8(ascii: ":"))
            return key
        }
        var header: [UInt8] = []
        for (index, column) in columns.enumerated() {
            if index > 0 { header.append(UInt8(ascii: ",")) }
            CellEncoding.appendCSV(column.name, kind: .timestamp, to: &header)
        }
        header.append(contentsOf: [0x0d, 0x0a])
        try csv.write(header)
    }

    /// Writes one row; `value(i)` hands the i-th column's text (nil for NULL) to the closure it gets.
    public mutating func writeRow(_ value: (Int, (UnsafeRawBufferPointer?) -> Void) -> Void) throws {
        csvRow.removeAll(keepingCapacity: true)
        jsonRow.removeAll(keepingCapacity: true)
        jsonRow.append(UInt8(ascii: "{"))
        for index in columns.indices {
            let kind = columns[index].kind
            if index > 0 {
                csvRow.append(UInt8(ascii: ","))
                jsonRow.append(UInt8(ascii: ","))
            }
            jsonRow.append(contentsOf: jsonKeys[index])
            value(index) { raw in
                CellEncoding.appendCSV(raw, kind: kind, to: &csvRow)
                CellEncoding.appendJSON(raw, kind: kind, to: &jsonRow)
            }
        }
        csvRow.append(contentsOf: [0x0d, 0x0a])
        jsonRow.append(contentsOf: [UInt8(ascii: "}"), 0x0a])
        try csv.write(csvRow)
        try jsonl.write(jsonRow)
        csv.rows += 1
        jsonl.rows += 1
    }
}
