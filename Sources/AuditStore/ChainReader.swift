import AuditCore
import LibPQ

/// Reads chains back from the store for verification. Needs only SELECT (`auditgate_reader`).
public struct ChainReader {
    public let connection: PGConnection

    public init(connection: PGConnection) { self.connection = connection }

    /// The hashed fields as text, exactly as the canonical encoding wants them.
    static let selectFields = """
        e.chain_id, e.seq::text, (extract(epoch FROM e.recorded_at) * 1000000)::bigint::text, e.kind, e.request_id,
        e.user_id, e.team_id, e.key_id, e.end_user, e.client_ip, e.api, e.method, e.path, e.provider, e.model,
        CASE WHEN e.stream THEN 'true' WHEN NOT e.stream THEN 'false' END, e.status_code::text, e.outcome,
        e.input_tokens::text, e.output_tokens::text, e.cache_read_tokens::text, e.cache_write_tokens::text,
        e.latency_ms::text, e.ttfb_ms::text, e.redactions::text, e.body_sha256, e.detail,
        e.prev_hash, e.hash, b.body
        """

    /// Streams every record with `recorded_at` in `[from, to)` (either bound optional; RFC 3339 or any
    /// `timestamptz` text) in (`chain_id`, `seq`) order: the rows of `audit.events`, and the records kept
    /// as bytes in `audit.unstorable_records`, whose field texts come from their canonical encoding.
    public func forEachRecord(from: String?, to: String?, _ body: (StoredRecord) throws -> Void) throws {
        let fieldCount = CanonicalEncoding.fieldNames.count
        let placeholders = Array(repeating: "NULL", count: fieldCount - 2).joined(separator: ", ")
        let sql = """
            SELECT \(Self.selectFields), NULL::bytea AS canonical, NULL::bytea AS raw_body, e.seq AS seq_order
            FROM audit.events e
            LEFT JOIN audit.bodies b ON b.chain_id = e.chain_id AND b.seq = e.seq AND b.recorded_at = e.recorded_at
            WHERE ($1::timestamptz IS NULL OR e.recorded_at >= $1::timestamptz)
              AND ($2::timestamptz IS NULL OR e.recorded_at < $2::timestamptz)
            UNION ALL
            SELECT u.chain_id, u.seq::text, \(placeholders), u.prev_hash, u.hash, NULL, u.canonical, u.body, u.seq
            FROM audit.unstorable_records u
            WHERE ($1::timestamptz IS NULL OR u.recorded_at >= $1::timestamptz)
              AND ($2::timestamptz IS NULL OR u.recorded_at < $2::timestamptz)
            ORDER BY chain_id, seq_order
            """
        try connection.forEachRow(sql, [from, to]) { row in
            var values = (0..<fieldCount).map { row.string($0) }
            var text = row.string(fieldCount + 2)
            if let canonical = row.bytes(fieldCount + 3) {
                // Kept as bytes: the fields are what the encoding holds; one that does not decode
                // gives texts that cannot match the hash, which verification then reports.
                values = CanonicalEncoding.decode(canonical[...]) ?? values
                text = row.bytes(fieldCount + 4).map { String(decoding: $0, as: UTF8.self) }
            }
            guard let chainID = row.string(0), let seq = row.string(1).flatMap({ Int64($0) }) else { return }
            try body(
                StoredRecord(
                    chainID: chainID, seq: seq, prevHash: row.bytes(fieldCount) ?? [], hash: row.bytes(fieldCount + 1) ?? [],
                    values: values, body: text))
        }
    }

    /// The hash of one record, to anchor a period's first record to the one before it.
    public func hash(chainID: String, seq: Int64) throws(PGError) -> [UInt8]? {
        let result = try connection.execute(
            """
            SELECT hash FROM audit.events WHERE chain_id = $1 AND seq = $2
            UNION ALL SELECT hash FROM audit.unstorable_records WHERE chain_id = $1 AND seq = $2
            """, [chainID, String(seq)])
        return result.rowCount > 0 ? result.bytes(0, 0) : nil
    }

    /// Recomputes every chain (or the part recorded in `[from, to)`) and names the first broken record.
    public func verify(from: String? = nil, to: String? = nil) throws -> VerificationReport {
        let wholeChains = from == nil
        var verifier = ChainVerifier(anchoredAtGenesis: wholeChains)
        try forEachRecord(from: from, to: to) { verifier.consume($0) }
        var summaries = verifier.finish()
        if !wholeChains {
            // A period's first record must follow the record just before the period.
            for index in summaries.indices where summaries[index].firstSeq > 1 {
                let summary = summaries[index]
                let before = try hash(chainID: summary.chainID, seq: summary.firstSeq - 1)
                let fault: ChainFault? =
                    before == nil
                    ? .gap(expected: summary.firstSeq - 1, found: summary.firstSeq)
                    : (before != summary.enteringHash ? .brokenLink : nil)
                if let fault {
                    summaries[index].failure = ChainFailure(chainID: summary.chainID, seq: summary.firstSeq, fault: fault)
                }
            }
        }
        return VerificationReport(chains: summaries)
    }
}

/// The result of `verify`: every chain's summary, and the first failure if any.
public struct VerificationReport: Sendable {
    public var chains: [ChainSummary]
    public var firstFailure: ChainFailure? { chains.lazy.compactMap(\.failure).first }
    public var recordCount: Int64 { chains.reduce(0) { $0 + $1.count } }
}
