/// One record as read back from the store, ready to be checked.
public struct StoredRecord: Sendable {
    public var chainID: String
    public var seq: Int64
    public var prevHash: [UInt8]
    public var hash: [UInt8]
    /// The texts of the hashed fields in `CanonicalEncoding.fieldNames` order.
    public var values: [String?]
    /// The body text when it is still kept.
    public var body: String?

    public init(chainID: String, seq: Int64, prevHash: [UInt8], hash: [UInt8], values: [String?], body: String?) {
        self.chainID = chainID
        self.seq = seq
        self.prevHash = prevHash
        self.hash = hash
        self.values = values
        self.body = body
    }
}

/// Why a chain does not hold, at the first record where it stops holding.
public enum ChainFault: Sendable, Equatable, CustomStringConvertible {
    /// Records are missing: the store jumps from `expected - 1` to `found`.
    case gap(expected: Int64, found: Int64)
    /// A sequence number appears again or goes backwards.
    case reorder(expected: Int64, found: Int64)
    /// The record is intact on its own but does not follow the record before it.
    case brokenLink
    /// The record's fields no longer produce its hash: it was edited.
    case hashMismatch
    /// The stored body no longer matches the digest that the chain holds.
    case bodyMismatch
    /// A field could not be read (wrong type, missing hash).
    case malformed(String)

    public var description: String {
        switch self {
        case .gap(let expected, let found):
            found - expected == 1
                ? "gap: seq \(expected) is missing"
                : "gap: seq \(expected) to \(found - 1) are missing"
        case .reorder(let expected, let found): "reorder: expected seq \(expected), found seq \(found) again or out of order"
        case .brokenLink: "broken link: prev_hash is not the hash of the previous record (a record was removed, inserted or moved)"
        case .hashMismatch: "hash mismatch: the record's fields do not produce its stored hash (the record was altered)"
        case .bodyMismatch: "body mismatch: the stored body does not match the body digest in the chain"
        case .malformed(let what): "malformed record: \(what)"
        }
    }
}

/// The first place a chain breaks.
public struct ChainFailure: Sendable, Equatable, CustomStringConvertible {
    public var chainID: String
    public var seq: Int64
    public var fault: ChainFault

    public init(chainID: String, seq: Int64, fault: ChainFault) {
        self.chainID = chainID
        self.seq = seq
        self.fault = fault
    }

    public var description: String { "chain \(chainID) seq \(seq): \(fault)" }
}

/// What verification established about one chain over the records it saw.
public struct ChainSummary: Sendable, Equatable {
    public var chainID: String
    public var firstSeq: Int64
    public var lastSeq: Int64
    public var count: Int64
    /// The hash entering the first record seen (its `prev_hash`).
    public var enteringHash: [UInt8]
    /// The hash of the last record seen: the chain head at the end of what was checked.
    public var leavingHash: [UInt8]
    /// Sequence ranges missing between the first and last record seen.
    public var gaps: [ClosedRange<Int64>]
    public var failure: ChainFailure?
}

/// Recomputes hash chains from records fed in (`chain_id`, `seq`) order. Pure: no I/O, so every fault
/// it can name is tested one record at a time.
public struct ChainVerifier: Sendable {
    public private(set) var summaries: [ChainSummary] = []
    private var current: ChainSummary?
    private var expectedSeq: Int64 = 1
    private var expectedPrevHash: [UInt8] = AuditRecord.genesisHash
    private let anchoredAtGenesis: Bool

    /// `anchoredAtGenesis`: each chain must start at seq 1 from the genesis hash (whole-store
    /// verification). When false (a period), each chain starts wherever its first record is, and the
    /// caller checks that record against its predecessor.
    public init(anchoredAtGenesis: Bool = true) { self.anchoredAtGenesis = anchoredAtGenesis }

    /// The first failure across every chain, in feeding order.
    public var firstFailure: ChainFailure? {
        (summaries + (current.map { [$0] } ?? [])).lazy.compactMap(\.failure).first
    }

    /// Begins a chain. `expectedSeq`/`expectedPrevHash` are where the chain stands before its first
    /// record here: seq 1 and the genesis hash for a whole chain, or the record before a period.
    /// `expectedPrevHash` nil means the predecessor is unknown, so the first link is not checked.
    public mutating func beginChain(_ chainID: String, expectedSeq: Int64 = 1, expectedPrevHash: [UInt8]? = AuditRecord.genesisHash) {
        finishChain()
        current = ChainSummary(
            chainID: chainID, firstSeq: expectedSeq, lastSeq: expectedSeq - 1, count: 0,
            enteringHash: expectedPrevHash ?? [], leavingHash: expectedPrevHash ?? [], gaps: [], failure: nil)
        self.expectedSeq = expectedSeq
        self.expectedPrevHash = expectedPrevHash ?? []
    }

    /// Checks one record; returns the fault if this record is where the chain first breaks.
    @discardableResult
    public mutating func consume(_ record: StoredRecord) -> ChainFailure? {
        if current?.chainID != record.chainID {
            if anchoredAtGenesis {
                beginChain(record.chainID)
            } else {
                beginChain(record.chainID, expectedSeq: record.seq, expectedPrevHash: nil)
            }
        }
        guard var summary = current else { return nil }
        defer { current = summary }

        func fail(_ fault: ChainFault) -> ChainFailure? {
            guard summary.failure == nil else { return nil }
            let failure = ChainFailure(chainID: record.chainID, seq: record.seq, fault: fault)
            summary.failure = failure
            return failure
        }

        var result: ChainFailure?
        if summary.count == 0 { summary.firstSeq = record.seq }
        if summary.count == 0 && expectedPrevHash.isEmpty { expectedPrevHash = record.prevHash }
        if summary.count == 0 && summary.enteringHash.isEmpty { summary.enteringHash = record.prevHash }

        if record.seq > expectedSeq {
            summary.gaps.append(expectedSeq...(record.seq - 1))
            result = fail(.gap(expected: expectedSeq, found: record.seq))
        } else if record.seq < expectedSeq {
            result = fail(.reorder(expected: expectedSeq, found: record.seq))
        }

        let canonical = CanonicalEncoding.encode(values: record.values)
        let recomputed = CanonicalEncoding.chainHash(prevHash: record.prevHash, canonical: canonical)
        if record.hash.count != 32 || record.prevHash.count != 32 {
            result = result ?? fail(.malformed("hash or prev_hash is not 32 bytes"))
        } else if recomputed != record.hash {
            result = result ?? fail(.hashMismatch)
        } else if record.values.count != CanonicalEncoding.fieldNames.count
            || record.values[0] != record.chainID || record.values[1] != String(record.seq)
        {
            result = result ?? fail(.hashMismatch)
        } else if record.seq == expectedSeq && record.prevHash != expectedPrevHash {
            result = result ?? fail(.brokenLink)
        } else if let body = record.body, SHA256.hash(body).hexString != record.values[25] {
            result = result ?? fail(.bodyMismatch)
        }

        summary.count += 1
        summary.lastSeq = record.seq
        summary.leavingHash = record.hash
        expectedSeq = max(expectedSeq, record.seq + 1)
        expectedPrevHash = record.hash
        return result
    }

    /// Closes the chain being fed and returns every summary.
    public mutating func finish() -> [ChainSummary] {
        finishChain()
        return summaries
    }

    private mutating func finishChain() {
        if let current { summaries.append(current) }
        current = nil
    }
}
