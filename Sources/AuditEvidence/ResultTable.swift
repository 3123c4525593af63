import LibPQ

extension ColumnKind {
    /// The kind of a PostgreSQL column, from its type OID.
    public init(typeOID: UInt32) {
        switch typeOID {
        case 20, 21, 23, 26: self = .integer
        case 700, 701, 1700: self = .decimal
        case 16: self = .boolean
        default: self = .text
        }
    }
}

/// Writes a small, already fetched result (summaries, report definitions) as CSV and as a JSON array.
public enum ResultTable {
    public static func write(
        _ result: PGResult, csvPath: String, jsonPath: String
    ) throws -> (csv: EvidenceManifest.FileEntry, json: EvidenceManifest.FileEntry) {
        let kinds = (0..<result.columnCount).map { ColumnKind(typeOID: result.columnType($0)) }
        let names = (0..<result.columnCount).map { result.columnName($0) }
        let csv = try HashingFileWriter(path: csvPath)
        let json = try HashingFileWriter(path: jsonPath)
        var line: [UInt8] = []
        for (index, name) in names.enumerated() {
            if index > 0 { line.append(UInt8(ascii: ",")) }
            CellEncoding.appendCSV(name, kind: .timestamp, to: &line)
        }
        line.append(contentsOf: [0x0d, 0x0a])
        try csv.write(line)
        try json.write("[")
        for rowIndex in 0..<result.rowCount {
            let row = result.row(rowIndex)
            var csvLine: [UInt8] = []
            var object: [UInt8] = rowIndex == 0 ? [0x0a, 0x20, 0x20, UInt8(ascii: "{")] : [UInt8(ascii: ","), 0x0a, 0x20, 0x20, UInt8(ascii: "{")]
            for column in 0..<result.columnCount {
                if column > 0 {
                    csvLine.append(UInt8(ascii: ","))
                    object.append(contentsOf: [UInt8(ascii: ","), 0x20])
                }
                CellEncoding.appendJSONString(names[column], to: &object)
                object.append(contentsOf: [UInt8(ascii: ":"), 0x20])
                row.withUnsafeText(column) { raw in
                    CellEncoding.appendCSV(raw, kind: kinds[column], to: &csvLine)
                    CellEncoding.appendJSON(raw, kind: kinds[column], to: &object)
                }
            }
            csvLine.append(contentsOf: [0x0d, 0x0a])
            object.append(UInt8(ascii: "}"))
            try csv.write(csvLine)
            try json.write(object)
            csv.rows += 1
            json.rows += 1
        }
        try json.write(result.rowCount == 0 ? "]\n" : "\n]\n")
        let csvName = String(csvPath.split(separator: "/").last ?? "")
        let jsonName = String(jsonPath.split(separator: "/").last ?? "")
        return (try csv.finish(name: csvName), try json.finish(name: jsonName))
    }
}
