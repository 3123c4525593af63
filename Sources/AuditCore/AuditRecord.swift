/// Whether a record opens an exchange (the call as received) or closes it (the answer and its outcome).
public enum RecordKind: String, Sendable, Codable, CaseIterable {
    case request
    case response
}

/// How an exchange ended, as auditors read it in `audit.exchanges.outcome`.
public enum Outcome: String, Sendable, Codable, CaseIterable {
    case ok
    case upstreamError = "upstream_error"
    case clientError = "client_error"
    case denied
    case gatewayError = "gateway_error"
    /// Never written: the view shows it for a request record that has no response record.
    case incomplete
}

/// What the gateway knows about a call when it asks the journal for a record. The journal adds the
/// chain position (`chain_id`, `seq`, `prev_hash`, `hash`) and the time of recording.
///
/// Every field here is hashed (see `docs/canonical-encoding.md`). The body itself is not: it enters
/// the chain as its SHA-256, so bodies can be kept for a shorter time than the metadata.
public struct RecordDraft: Sendable, Equatable {
    public var kind: RecordKind
    public var requestID: String
    public var userID: String?
    public var teamID: String?
    public var keyID: String?
    public var endUser: String?
    public var clientIP: String?
    public var api: String?
    public var method: String?
    public var path: String?
    public var provider: String?
    public var model: String?
    public var stream: Bool?
    public var statusCode: Int?
    public var outcome: Outcome?
    public var inputTokens: Int64?
    public var outputTokens: Int64?
    public var cacheReadTokens: Int64?
    public var cacheWriteTokens: Int64?
    public var latencyMs: Int64?
    public var ttfbMs: Int64?
    public var redactions: Int?
    /// A small JSON object of further facts (error reason, upstream request id), hashed as its exact bytes.
    public var detail: String?
    /// The body as `audit.bodies` allowed it (already redacted); nil when none is kept.
    public var body: String?
    /// The digest of the body that was kept, or, in `hashed` mode, of the original body. Computed from
    /// `body` when not given.
    public var bodySHA256: [UInt8]?

    public init(kind: RecordKind, requestID: String) {
        self.kind = kind
        self.requestID = requestID
    }
}

/// A record as it sits in the chain: the draft plus its position, time and hashes.
public struct AuditRecord: Sendable, Equatable {
    public var chainID: String
    public var seq: Int64
    /// Microseconds since 1970-01-01T00:00:00Z; PostgreSQL's `timestamptz` keeps exactly this precision.
    public var recordedAtMicros: Int64
    public var fields: RecordDraft
    public var prevHash: [UInt8]
    public var hash: [UInt8]

    public init(chainID: String, seq: Int64, recordedAtMicros: Int64, fields: RecordDraft, prevHash: [UInt8], hash: [UInt8]) {
        self.chainID = chainID
        self.seq = seq
        self.recordedAtMicros = recordedAtMicros
        self.fields = fields
        self.prevHash = prevHash
        self.hash = hash
    }

    /// The hash of the record that precedes seq 1.
    public static let genesisHash = [UInt8](repeating: 0, count: 32)

    /// Seals a draft at a position in the chain: fills the body digest and computes the hash.
    public static func seal(
        _ draft: RecordDraft, chainID: String, seq: Int64, recordedAtMicros: Int64, prevHash: [UInt8]
    ) -> AuditRecord {
        sealKeepingCanonical(draft, chainID: chainID, seq: seq, recordedAtMicros: recordedAtMicros, prevHash: prevHash).record
    }

    /// `seal`, also returning the canonical encoding it hashed (the spool frame carries the same bytes,
    /// so the journal need not encode the record twice).
    public static func sealKeepingCanonical(
        _ draft: RecordDraft, chainID: String, seq: Int64, recordedAtMicros: Int64, prevHash: [UInt8]
    ) -> (record: AuditRecord, canonical: [UInt8]) {
        // Made storable first, so that the hash covers exactly the text the store will hold.
        var fields = draft.storable()
        if fields.bodySHA256 == nil, let body = fields.body { fields.bodySHA256 = SHA256.hash(body) }
        var record = AuditRecord(
            chainID: chainID, seq: seq, recordedAtMicros: recordedAtMicros, fields: fields, prevHash: prevHash, hash: [])
        let canonical = CanonicalEncoding.encode(record)
        record.hash = CanonicalEncoding.chainHash(prevHash: prevHash, canonical: canonical)
        return (record, canonical)
    }
}
