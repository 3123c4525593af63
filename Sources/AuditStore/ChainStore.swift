import AuditCore
import LibPQ

/// The writer's side of the store: where its chain stands, and inserting records with COPY.
/// Runs as `auditgate_writer`, which may only INSERT and ask for its chain's head.
public final class ChainStore {
    public let connection: PGConnection

    public init(url: String, connectTimeoutSeconds: Int = 5) throws(PGError) {
        connection = try PGConnection(url, connectTimeoutSeconds: connectTimeoutSeconds, applicationName: "auditgate-shipper")
    }

    public init(connection: PGConnection) { self.connection = connection }

    /// The last `seq` and `hash` of a chain in the store; nil for a chain with no records yet.
    public func head(chainID: String) throws(PGError) -> (seq: Int64, hash: [UInt8])? {
        let result = try connection.execute("SELECT seq, hash FROM audit.chain_head($1)", [chainID])
        guard result.rowCount > 0, let seq = result.int(0, 0), let hash = result.bytes(0, 1) else { return nil }
        return (seq, hash)
    }

    /// Creates the monthly partitions ahead of time (the default partition catches anything else).
    @discardableResult
    public func ensurePartitions(monthsAhead: Int = 12) throws(PGError) -> Int {
        Int(try connection.execute("SELECT audit.ensure_partitions($1)", [String(monthsAhead)]).int(0, 0) ?? 0)
    }

    static let eventColumns = CanonicalEncoding.fieldNames + ["prev_hash", "hash"]

    /// Keeps one record the store refused as text (`audit.unstorable_records`): its canonical encoding
    /// and body as bytes, so its hash still verifies and the chain behind it can be shipped.
    public func insertUnstorable(_ record: AuditRecord, refusedWith sqlState: String) throws(PGError) {
        _ = try connection.execute(
            """
            INSERT INTO audit.unstorable_records (chain_id, seq, recorded_at, canonical, body, prev_hash, hash, refused_with)
            VALUES ($1, $2, $3::timestamptz, $4::bytea, $5::bytea, $6::bytea, $7::bytea, $8)
            """,
            [
                StorableText.make(record.chainID), String(record.seq), Timestamp.postgresText(micros: record.recordedAtMicros),
                PGBytea.literal(CanonicalEncoding.encode(record)), record.fields.body.map { PGBytea.literal(Array($0.utf8)) },
                PGBytea.literal(record.prevHash), PGBytea.literal(record.hash), sqlState,
            ])
    }

    /// Inserts records in one transaction: all of them or none.
    public func insert(_ records: [AuditRecord]) throws {
        guard !records.isEmpty else { return }
        try connection.transaction {
            try connection.copyIn("COPY audit.events (\(Self.eventColumns.joined(separator: ", "))) FROM STDIN") { writer in
                for record in records {
                    var values = CanonicalEncoding.fieldValues(record)
                    values[2] = Timestamp.postgresText(micros: record.recordedAtMicros)
                    values.append(PGBytea.literal(record.prevHash))
                    values.append(PGBytea.literal(record.hash))
                    try writer.row(values)
                }
            }
            guard records.contains(where: { $0.fields.body != nil }) else { return }
            try connection.copyIn("COPY audit.bodies (chain_id, seq, recorded_at, body) FROM STDIN") { writer in
                for record in records {
                    guard let body = record.fields.body else { continue }
                    try writer.row([
                        record.chainID, String(record.seq), Timestamp.postgresText(micros: record.recordedAtMicros), body,
                    ])
                }
            }
        }
    }
}
