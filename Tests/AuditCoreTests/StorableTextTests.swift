import AuditCore
import Testing

@Suite struct StorableTextTests {
    /// Every text field of a draft, by key path; `everyTextFieldIsCovered` checks none is missing.
    nonisolated(unsafe) static let textFields: [WritableKeyPath<RecordDraft, String?>] = [
        \.userID, \.teamID, \.keyID, \.endUser, \.clientIP, \.api, \.method, \.path, \.provider, \.model, \.detail, \.body,
    ]

    static func poisonedDraft() -> RecordDraft {
        var draft = RecordDraft(kind: .request, requestID: "req\u{0}1")
        for field in textFields { draft[keyPath: field] = "claude\u{0}x\u{0}" }
        return draft
    }

    @Test func nulBecomesTheReplacementCharacter() {
        #expect(StorableText.make("claude\u{0}x") == "claude\u{FFFD}x")
        #expect(StorableText.make("\u{0}\u{0}") == "\u{FFFD}\u{FFFD}")
        #expect(StorableText.make("안녕\u{0}🙂") == "안녕\u{FFFD}🙂")
        #expect(StorableText.make("no zero here") == "no zero here")
        #expect(StorableText.make("") == "")
        #expect(StorableText.make(nil as String?) == nil)
        // Bytes that are not UTF-8 were already replaced when the text was decoded.
        #expect(StorableText.make(String(decoding: [0x61, 0xFF, 0x00, 0xC3], as: UTF8.self)) == "a\u{FFFD}\u{FFFD}\u{FFFD}")
    }

    /// A sealed record holds no zero byte in any field's text, so PostgreSQL takes every one of them;
    /// the hash is that of the storable text, so verification of the stored row agrees.
    @Test func sealedRecordsHoldNoNUL() throws {
        let record = AuditRecord.seal(Self.poisonedDraft(), chainID: "gw-1", seq: 1, recordedAtMicros: 1, prevHash: AuditRecord.genesisHash)
        let values = CanonicalEncoding.fieldValues(record)
        for value in values.compactMap({ $0 }) { #expect(!value.utf8.contains(0), "\(value)") }
        #expect(record.fields.model == "claude\u{FFFD}x\u{FFFD}")
        #expect(record.fields.requestID == "req\u{FFFD}1")
        #expect(record.fields.body == "claude\u{FFFD}x\u{FFFD}")
        #expect(record.fields.bodySHA256 == SHA256.hash("claude\u{FFFD}x\u{FFFD}"))
        // Recomputed from the stored texts, as a verifier does, the hash matches.
        let again = CanonicalEncoding.chainHash(prevHash: AuditRecord.genesisHash, canonical: CanonicalEncoding.encode(values: values))
        #expect(again == record.hash)
    }

    /// A field added to `RecordDraft` without being made storable would bring the stalled store back.
    @Test func everyTextFieldIsCovered() {
        let draft = Self.poisonedDraft()
        let texts = Mirror(reflecting: draft).children.filter {
            type(of: $0.value) == String?.self || type(of: $0.value) == String.self
        }
        #expect(texts.count == Self.textFields.count + 1, "RecordDraft has a text field that storable() may miss")
        for child in Mirror(reflecting: draft.storable()).children {
            if let text = child.value as? String { #expect(!StorableText.containsNUL(text), "\(child.label ?? "?") still holds U+0000") }
        }
    }
}
