/// The byte encoding that the chain hashes: version 1, specified in `docs/canonical-encoding.md`.
///
/// A domain tag, then every field in a fixed order, each either `0x00` (NULL) or `0x01`, a 4-byte
/// big-endian length and the field's UTF-8 text. Integers are in decimal, booleans `true`/`false`,
/// the time in microseconds since the epoch, the body digest in lower-case hex. Length prefixes make
/// the encoding unambiguous, unlike a delimiter join.
public enum CanonicalEncoding {
    public static let domainTag = "auditgate.record.v1"

    /// Field names in encoding order, as the store's columns are named.
    public static let fieldNames = [
        "chain_id", "seq", "recorded_at", "kind", "request_id", "user_id", "team_id", "key_id", "end_user",
        "client_ip", "api", "method", "path", "provider", "model", "stream", "status_code", "outcome",
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "latency_ms", "ttfb_ms",
        "redactions", "body_sha256", "detail",
    ]

    /// The fields of a record as text, in `fieldNames` order; nil is NULL.
    public static func fieldValues(_ record: AuditRecord) -> [String?] {
        let f = record.fields
        return [
            record.chainID, String(record.seq), String(record.recordedAtMicros), f.kind.rawValue, f.requestID,
            f.userID, f.teamID, f.keyID, f.endUser, f.clientIP, f.api, f.method, f.path, f.provider, f.model,
            f.stream.map { $0 ? "true" : "false" }, f.statusCode.map { String($0) }, f.outcome?.rawValue,
            f.inputTokens.map { String($0) }, f.outputTokens.map { String($0) },
            f.cacheReadTokens.map { String($0) }, f.cacheWriteTokens.map { String($0) },
            f.latencyMs.map { String($0) }, f.ttfbMs.map { String($0) }, f.redactions.map { String($0) },
            f.bodySHA256?.hexString, f.detail,
        ]
    }

    public static func encode(_ record: AuditRecord) -> [UInt8] {
        encode(values: fieldValues(record))
    }

    /// Encodes field texts given in `fieldNames` order (the verifier reads them straight from the store).
    public static func encode(values: [String?]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(512)
        append(domainTag, to: &out)
        for value in values { append(value, to: &out) }
        return out
    }

    /// `SHA-256(prev_hash ‖ canonical)`.
    public static func chainHash(prevHash: [UInt8], canonical: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(prevHash)
        hasher.update(canonical)
        return hasher.finalize()
    }

    private static func append(_ value: String?, to out: inout [UInt8]) {
        guard let value else {
            out.append(0)
            return
        }
        out.append(1)
        let count = value.utf8.count
        out.append(UInt8(truncatingIfNeeded: count >> 24))
        out.append(UInt8(truncatingIfNeeded: count >> 16))
        out.append(UInt8(truncatingIfNeeded: count >> 8))
        out.append(UInt8(truncatingIfNeeded: count))
        out.append(contentsOf: value.utf8)
    }

    /// Reads a canonical encoding back into field texts (for the spool and for tests).
    public static func decode(_ bytes: ArraySlice<UInt8>) -> [String?]? {
        var index = bytes.startIndex
        var values: [String?] = []
        while index < bytes.endIndex {
            let marker = bytes[index]
            index += 1
            if marker == 0 {
                values.append(nil)
                continue
            }
            guard marker == 1, bytes.endIndex - index >= 4 else { return nil }
            let count = bytes[index..<index + 4].reduce(0) { $0 << 8 | Int($1) }
            index += 4
            guard bytes.endIndex - index >= count else { return nil }
            values.append(String(decoding: bytes[index..<index + count], as: UTF8.self))
            index += count
        }
        guard values.first == domainTag, values.count == fieldNames.count + 1 else { return nil }
        return Array(values.dropFirst())
    }

    /// Rebuilds a record's fields from their texts (inverse of `fieldValues`); nil if any is malformed.
    public static func record(
        values: [String?], prevHash: [UInt8], hash: [UInt8], body: String?
    ) -> AuditRecord? {
        guard values.count == fieldNames.count,
            let chainID = values[0], let seq = values[1].flatMap({ Int64($0) }),
            let recordedAt = values[2].flatMap({ Int64($0) }),
            let kind = values[3].flatMap({ RecordKind(rawValue: $0) }), let requestID = values[4]
        else { return nil }
        var f = RecordDraft(kind: kind, requestID: requestID)
        f.userID = values[5]
        f.teamID = values[6]
        f.keyID = values[7]
        f.endUser = values[8]
        f.clientIP = values[9]
        f.api = values[10]
        f.method = values[11]
        f.path = values[12]
        f.provider = values[13]
        f.model = values[14]
        f.stream = values[15].map { $0 == "true" }
        f.statusCode = values[16].flatMap { Int($0) }
        f.outcome = values[17].flatMap { Outcome(rawValue: $0) }
        f.inputTokens = values[18].flatMap { Int64($0) }
        f.outputTokens = values[19].flatMap { Int64($0) }
        f.cacheReadTokens = values[20].flatMap { Int64($0) }
        f.cacheWriteTokens = values[21].flatMap { Int64($0) }
        f.latencyMs = values[22].flatMap { Int64($0) }
        f.ttfbMs = values[23].flatMap { Int64($0) }
        f.redactions = values[24].flatMap { Int($0) }
        f.bodySHA256 = values[25].flatMap { [UInt8](hexString: $0) }
        f.detail = values[26]
        f.body = body
        return AuditRecord(chainID: chainID, seq: seq, recordedAtMicros: recordedAt, fields: f, prevHash: prevHash, hash: hash)
    }
}
