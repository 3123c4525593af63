import AuditCore
import AuditRedaction
import Testing

@testable import AuditGateway

/// What a record keeps of a body and of the head values, in each `audit.bodies` mode.
@Suite struct BodyRecorderTests {
    static let providerKey = "sk-ant-api03-provider-key-of-the-organisation-0001"

    static func recorder(_ mode: BodyRecorder.Mode, limit: Int = 1 << 20) -> BodyRecorder {
        BodyRecorder(mode: mode, redactor: Redactor(), maxRecordedBytes: limit, providerKeys: [providerKey, "short"])
    }

    @Test func headValuesAreRedactedButModelNamesAndPathsStayAsTheyAre() {
        var draft = RecordDraft(kind: .request, requestID: "r")
        let recorder = Self.recorder(.redacted)
        for value in ["claude-3-5-sonnet-20241022", "gpt-4o-2024-08-06", "/v1/messages?beta=true", "/v1/models?limit=1000", "u-123"] {
            #expect(recorder.headValue(value, into: &draft) == value)
        }
        #expect(draft.redactions == nil)
        let endUser = recorder.headValue("alice@example.com", into: &draft)
        #expect(endUser?.contains("alice@example.com") == false)
        #expect(draft.redactions == 1)
        #expect(recorder.headValue("/v1/messages?note=call 010-1234-5678", into: &draft)?.contains("1234") == false)
    }

    @Test func providerKeysAreNeverKeptInAnyMode() {
        for mode in [BodyRecorder.Mode.full, .redacted] {
            var draft = RecordDraft(kind: .request, requestID: "r")
            let recorder = Self.recorder(mode)
            recorder.record(Array("my key is \(Self.providerKey), twice: \(Self.providerKey)".utf8), into: &draft)
            #expect(draft.body?.contains(Self.providerKey) == false, "\(mode)")
            #expect(draft.body?.contains(BodyRecorder.providerKeyMarker) == true)
            #expect((draft.redactions ?? 0) >= 2)
            #expect(recorder.headValue("x\(Self.providerKey)", into: &draft) == "x" + BodyRecorder.providerKeyMarker)
        }
        // Keys too short to be real are not scrubbed (they would match ordinary words).
        var draft = RecordDraft(kind: .request, requestID: "r")
        Self.recorder(.full).record(Array("a short word".utf8), into: &draft)
        #expect(draft.body == "a short word")
    }

    @Test func redactionRunsBeforeTheCutAndTheWholeBodyIsDescribed() {
        var draft = RecordDraft(kind: .request, requestID: "r")
        let body = Array((String(repeating: "x", count: 90) + " 4111 1111 1111 1111 and more").utf8)
        let facts = Self.recorder(.redacted, limit: 100).record(body, into: &draft)
        #expect(facts.bytes == body.count && facts.sha256 == SHA256.hash(body) && facts.truncated)
        let kept = draft.body ?? ""
        #expect(kept.utf8.count <= 100 && !kept.contains("4111"))
        #expect(facts.detailMembers.contains("\"body_truncated\":true"))
    }

    @Test func byteSearchFindsTheNeedleAnywhere() {
        #expect(BodyRecorder.containsBytes("abcabd", "abd"))
        #expect(BodyRecorder.containsBytes("xxkey", "key") && BodyRecorder.containsBytes("keyxx", "key"))
        #expect(!BodyRecorder.containsBytes("ke", "key") && !BodyRecorder.containsBytes("", "key"))
        #expect(!BodyRecorder.containsBytes("kekekx", "kek" + "ey"))
        #expect(BodyRecorder.containsBytes("안녕 sk-ant-1 끝", "sk-ant-1"))
    }

    @Test func cutsFallOnCharacterBoundaries() {
        let text = "안녕하세요"  // 3 bytes a character
        #expect(BodyRecorder.cut(text, limit: 7) == ("안녕", true))
        #expect(BodyRecorder.cut(text, limit: 15) == (text, false))
    }
}
