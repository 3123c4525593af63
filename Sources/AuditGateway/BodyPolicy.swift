#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
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
    /// The configured provider keys: never stored in any form, whatever the mode (a client that pastes
    /// one into a prompt, a provider that echoes one), so they are replaced wherever a record holds text.
    public var providerKeys: [String]

    public init(mode: Mode, redactor: Redactor, maxRecordedBytes: Int = 1 << 20, providerKeys: [String] = []) {
        self.mode = mode
        self.redactor = redactor
        self.maxRecordedBytes = maxRecordedBytes
        self.providerKeys = providerKeys.filter { $0.utf8.count >= 8 }
    }

    static let providerKeyMarker = "[REDACTED:provider_key]"

    /// `text` without any configured provider key, and how many were replaced.
    func scrubProviderKeys(_ text: String) -> (text: String, count: Int) {
        var text = text
        var count = 0
        for key in providerKeys where Self.containsBytes(text, key) {
            let parts = text.components(separatedBy: key)
            count += parts.count - 1
            text = parts.joined(separator: Self.providerKeyMarker)
        }
        return (text, count)
    }

    /// Whether `needle` occurs in `text`, byte for byte (`memmem`): String's own `contains` compares
    /// characters, which costs tens of microseconds on a body of a few kilobytes.
    static func containsBytes(_ text: String, _ needle: String) -> Bool {
        var text = text
        var needle = needle
        return text.withUTF8 { haystack in
            needle.withUTF8 { pattern in
                guard let first = pattern.first, haystack.count >= pattern.count, let base = haystack.baseAddress else { return false }
                // memchr for the first byte, memcmp for the rest (Glibc's module does not export memmem).
                var offset = 0
                let last = haystack.count - pattern.count
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(first), last - offset + 1) else { return false }
                    let at = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    if memcmp(base + at, pattern.baseAddress!, pattern.count) == 0 { return true }
                    offset = at + 1
                }
                return false
            }
        }
    }

    /// A recorded head value (end user, path and query, model): redacted as bodies are, unless
    /// `audit.bodies` is `full`, and never holding a provider key. Adds what it replaced to the draft's
    /// `redactions`.
    func headValue(_ value: String?, into draft: inout RecordDraft) -> String? {
        guard let value, !value.isEmpty else { return value }
        var (text, replaced) = scrubProviderKeys(value)
        if mode != .full {
            let result = redactor.redact(text)
            text = result.text
            replaced += result.total
        }
        if replaced > 0 { draft.redactions = (draft.redactions ?? 0) + replaced }
        return text
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
            let scrubbed = scrubProviderKeys(String(decoding: bytes, as: UTF8.self))
            let kept = Self.cut(scrubbed.text, limit: maxRecordedBytes)
            draft.body = kept.text
            truncated = truncated || kept.cut
            if scrubbed.count > 0 { draft.redactions = (draft.redactions ?? 0) + scrubbed.count }
        case .redacted:
            let scrubbed = scrubProviderKeys(String(decoding: bytes, as: UTF8.self))
            let result = redactor.redact(scrubbed.text)
            let kept = Self.cut(result.text, limit: maxRecordedBytes)
            draft.body = kept.text
            truncated = truncated || kept.cut
            draft.redactions = (draft.redactions ?? 0) + result.total + scrubbed.count
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
