import AuditCore
import AuditRedaction

/// What a record says about the whole body as it crossed the gateway, whatever of it is kept: its
/// length and SHA-256, and whether the kept copy was cut. Goes into the record's `detail`, so a body
/// stored in part (or not at all) can still be matched against the bytes the client or provider holds.
struct BodyFacts: Equatable {
    var bytes: Int
    var sha256: [UInt8]
    /// The kept copy is shorter than the body (`audit.exchanges.request_body_truncated` / `response_…`).
    var truncated: Bool

    /// `"body_bytes":N,"body_sha256":"…","body_truncated":B` — members for a detail object.
    var detailMembers: [String] {
        ["\"body_bytes\":\(bytes)", "\"body_sha256\":\"\(sha256.hexString)\"", "\"body_truncated\":\(truncated)"]
    }
}

/// What of a body goes into a record, as `audit.bodies` says: `full`, `redacted`, `hashed` or `none`.
/// Redaction happens here, before the record is built, so raw personal data never reaches the spool;
/// it runs over the whole text before any cut, so nothing at the edge of the cut escapes it.
public struct BodyRecorder: Sendable {
    public enum Mode: String, Sendable {
        case full, redacted, hashed, none
    }

    public var mode: Mode
    public var redactor: Redactor
    /// Longest body text kept in a record; longer ones are cut (the digest covers what is kept, and the
    /// record's detail holds the whole body's length and digest).
    public var maxRecordedBytes: Int

    public init(mode: Mode, redactor: Redactor, maxRecordedBytes: Int = 1 << 20) {
        self.mode = mode
        self.redactor = redactor
        self.maxRecordedBytes = maxRecordedBytes
    }

    /// Fills `body`, `bodySHA256` and `redactions` of a draft from body bytes. `whole` is the length
    /// and digest of the body as received when `bytes` is not all of it or another form of it (a long
    /// answer's first part, a stream's assembled text); `partial` says that `bytes` was already cut.
    @discardableResult
    func record(
        _ bytes: [UInt8], into draft: inout RecordDraft, whole: (count: Int, sha256: [UInt8])? = nil, partial: Bool = false
    ) -> BodyFacts {
        let count = whole?.count ?? bytes.count
        let digest = whole?.sha256 ?? SHA256.hash(bytes)
        var truncated = partial
        switch mode {
        case .none:
            draft.body = nil
        case .hashed:
            draft.bodySHA256 = digest
        case .full:
            let kept = Self.cut(String(decoding: bytes, as: UTF8.self), limit: maxRecordedBytes)
            draft.body = kept.text
            truncated = truncated || kept.cut
        case .redacted:
            let result = redactor.redact(String(decoding: bytes, as: UTF8.self))
            let kept = Self.cut(result.text, limit: maxRecordedBytes)
            draft.body = kept.text
            truncated = truncated || kept.cut
            draft.redactions = (draft.redactions ?? 0) + result.total
        }
        return BodyFacts(bytes: count, sha256: digest, truncated: truncated)
    }

    /// Fills the body of a response record from assembled (streamed) text.
    @discardableResult
    func record(
        text: String, into draft: inout RecordDraft, whole: (count: Int, sha256: [UInt8])? = nil, partial: Bool = false
    ) -> BodyFacts {
        record(Array(text.utf8), into: &draft, whole: whole, partial: partial)
    }

    /// At most `limit` bytes of `text`, cut at a character boundary.
    static func cut(_ text: String, limit: Int) -> (text: String, cut: Bool) {
        guard text.utf8.count > limit else { return (text, false) }
        var end = text.utf8.index(text.utf8.startIndex, offsetBy: limit)
        while end > text.startIndex, !end.isCharacterBoundary(in: text) { end = text.utf8.index(before: end) }
        return (String(text[..<end]), true)
    }
}

extension String.Index {
    fileprivate func isCharacterBoundary(in text: String) -> Bool { samePosition(in: text.unicodeScalars) != nil }
}
