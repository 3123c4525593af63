#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Text that PostgreSQL's `text` type can hold, whatever bytes a client or provider sent.
///
/// A Swift `String` is always valid Unicode: bytes that are not UTF-8 already became U+FFFD when the
/// gateway decoded them. What remains is U+0000, which a UTF-8 PostgreSQL refuses in every text value
/// (SQLSTATE 22021): one `"model":"claude\u0000x"` once made every later COPY of the chain fail. Every
/// text field of a record is therefore made storable before the record is sealed, so the hash covers
/// exactly what the store will hold (`docs/canonical-encoding.md`, "Text the store can hold").
public enum StorableText {
    /// What U+0000 becomes: the Unicode replacement character, as for bytes that are not UTF-8.
    public static let replacement: Unicode.Scalar = "\u{FFFD}"

    /// `text` with every U+0000 replaced by U+FFFD; the same string (no copy) when it has none.
    public static func make(_ text: String) -> String {
        guard containsNUL(text) else { return text }
        var scalars = String.UnicodeScalarView()
        scalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars { scalars.append(scalar == "\u{0}" ? replacement : scalar) }
        return String(scalars)
    }

    public static func make(_ text: String?) -> String? { text.map { make($0) } }

    /// True when the text holds U+0000 (its UTF-8 holds a zero byte, which nothing else encodes to).
    public static func containsNUL(_ text: String) -> Bool {
        if let found = text.utf8.withContiguousStorageIfAvailable({ bytes -> Bool in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return false }
            return memchr(base, 0, bytes.count) != nil
        }) {
            return found
        }
        return text.utf8.contains(0)
    }
}

extension RecordDraft {
    /// The draft with every text field storable (`StorableText`): what `AuditRecord.seal` hashes.
    public func storable() -> RecordDraft {
        var d = self
        d.requestID = StorableText.make(requestID)
        d.userID = StorableText.make(userID)
        d.teamID = StorableText.make(teamID)
        d.keyID = StorableText.make(keyID)
        d.endUser = StorableText.make(endUser)
        d.clientIP = StorableText.make(clientIP)
        d.api = StorableText.make(api)
        d.method = StorableText.make(method)
        d.path = StorableText.make(path)
        d.provider = StorableText.make(provider)
        d.model = StorableText.make(model)
        d.detail = StorableText.make(detail)
        d.body = StorableText.make(body)
        return d
    }
}
