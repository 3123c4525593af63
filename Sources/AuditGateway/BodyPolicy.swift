import AuditCore
import AuditRedaction

/// What of a body goes into a record, as `audit.bodies` says: `full`, `redacted`, `hashed` or `none`.
/// Redaction happens here, before the record is built, so raw personal data never reaches the spool.
public struct BodyRecorder: Sendable {
    public enum Mode: String, Sendable {
        case full, redacted, hashed, none
    }

    public var mode: Mode
    public var redactor: Redactor
    /// Longest body text kept in a record; longer ones are cut (the digest covers what is kept).
    public var maxRecordedBytes: Int

    public init(mode: Mode, redactor: Redactor, maxRecordedBytes: Int = 1 << 20) {
        self.mode = mode
        self.redactor = redactor
        self.maxRecordedBytes = maxRecordedBytes
    }

    /// Fills `body`, `bodySHA256` and `redactions` of a draft from raw body bytes.
    public func record(_ bytes: [UInt8], into draft: inout RecordDraft) {
        switch mode {
        case .none:
            draft.body = nil
        case .hashed:
            draft.bodySHA256 = SHA256.hash(bytes)
        case .full:
            draft.body = Self.storable(bytes, limit: maxRecordedBytes)
        case .redacted:
            let result = redactor.redact(Self.storable(bytes, limit: maxRecordedBytes))
            draft.body = result.text
            draft.redactions = (draft.redactions ?? 0) + result.total
        }
    }

    /// Fills the body of a response record from assembled (streamed) text.
    public func record(text: String, into draft: inout RecordDraft) {
        record(Array(text.utf8), into: &draft)
    }

    /// Text that PostgreSQL can hold: valid UTF-8 (invalid bytes replaced), no NUL, at most `limit` bytes.
    static func storable(_ bytes: [UInt8], limit: Int) -> String {
        let slice = bytes.count > limit ? Array(bytes[0..<limit]) : bytes
        var text = String(decoding: slice, as: UTF8.self)
        if text.utf8.contains(0) { text = text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") }
        return text
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
