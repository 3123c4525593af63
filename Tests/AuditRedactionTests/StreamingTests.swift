@testable import AuditRedaction
import Testing

/// Feeds `pieces` and returns the concatenated output and counts.
func stream(_ pieces: [String], _ redactor: Redactor, flushThreshold: Int = 0, maxOpenRun: Int = 64 * 1024) -> Redacted {
    var streaming = StreamingRedactor(redactor, flushThreshold: flushThreshold, maxOpenRun: maxOpenRun)
    var out = ""
    for piece in pieces { out += streaming.feed(piece) }
    out += streaming.finish()
    return Redacted(text: out, counts: streaming.counts)
}

/// `text` cut at UTF-8 offset `offset` (a scalar boundary).
func split(_ text: String, at offset: Int) -> [String] {
    let utf8 = Array(text.utf8)
    return [String(decoding: utf8[..<offset], as: UTF8.self), String(decoding: utf8[offset...], as: UTF8.self)]
}

/// The UTF-8 offsets where a piece can end: every scalar boundary.
func scalarBoundaries(_ text: String) -> [Int] {
    var offsets = [0]
    var offset = 0
    for scalar in text.unicodeScalars {
        offset += String(scalar).utf8.count
        offsets.append(offset)
    }
    return offsets
}

/// Deterministic piece sizes (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomPieces(_ text: String, maxPiece: Int, seed: UInt64) -> [String] {
    var generator = SeededGenerator(state: seed)
    let boundaries = scalarBoundaries(text)
    let utf8 = Array(text.utf8)
    var pieces: [String] = []
    var start = 0
    while start < utf8.count {
        let wanted = start + Int.random(in: 1...maxPiece, using: &generator)
        let end = boundaries.first { $0 >= wanted } ?? utf8.count
        pieces.append(String(decoding: utf8[start..<end], as: UTF8.self))
        start = end
    }
    return pieces
}

let longKey = "-----BEGIN PRIVATE KEY-----\\n" + String(repeating: SecretTests.pemBody.joined(separator: "\\n") + "\\n", count: 6)
    + "-----END PRIVATE KEY-----"
let longToken = "eyJhbGciOiJSUzI1NiJ9." + String(repeating: "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU2Nzg5", count: 30) + ".sig"

/// Long enough that settling happens inside it, with matches of every kind around the cuts.
let streamingSample = mixedBody + "\n" + String(repeating: "padding 패딩 text, 4096 tokens; ", count: 8)
    + "mail bob@example.org, 010-9876-5432, 5555 5555 5555 4444, 851231-2345673, 665-12-3456, EMP-777777\n"
    + "Authorization: Bearer \(longToken)\n" + #"{"key":"\#(longKey)"}"# + " 끝 carol@example.net"

@Suite struct RequiredLiteralTests {
    @Test func literalStarts() {
        #expect(Redactor.requiredLiteral("EMP-[0-9]{6}") == Array("EMP-".utf8))
        #expect(Redactor.requiredLiteral("^\\bEMP\\-\\d+") == Array("EMP-".utf8))
        #expect(Redactor.requiredLiteral("PROJ_x?[0-9]") == Array("PROJ_".utf8))
        #expect(Redactor.requiredLiteral("ab+c") == Array("ab".utf8))
        #expect(Redactor.requiredLiteral("(?i)emp-[0-9]+") == nil)
        #expect(Redactor.requiredLiteral("EMP-1|X") == nil)
        #expect(Redactor.requiredLiteral("\\d{6}") == nil)
        #expect(Redactor.requiredLiteral("a.b") == nil)
    }
}

@Suite struct StreamingTests {
    let redactor = try! Redactor(RedactionRules(custom: [(name: "employee_id", regex: "EMP-[0-9]{6}")]))

    @Test func theSampleHasEverythingOnce() {
        let oneShot = redactor.redact(streamingSample)
        #expect(oneShot.counts["secret"] == 3)
        #expect(oneShot.total == 19)
        #expect(!oneShot.text.contains("MIIE"))
        #expect(!oneShot.text.contains("QUJD"))
    }

    @Test func aMatchSplitAtEveryPositionGivesTheOneShotResult() {
        let oneShot = redactor.redact(streamingSample)
        for offset in scalarBoundaries(streamingSample) {
            let streamed = stream(split(streamingSample, at: offset), redactor)
            #expect(streamed == oneShot, "split at \(offset)")
            if streamed != oneShot { break }
        }
    }

    @Test func smallPiecesGiveTheOneShotResult() {
        let oneShot = redactor.redact(streamingSample)
        for seed: UInt64 in 1...20 {
            let pieces = randomPieces(streamingSample, maxPiece: seed % 2 == 0 ? 8 : 200, seed: seed)
            #expect(stream(pieces, redactor) == oneShot, "seed \(seed)")
            #expect(stream(pieces, redactor, flushThreshold: 100) == oneShot, "seed \(seed)")
        }
        #expect(stream(streamingSample.unicodeScalars.map { String($0) }, redactor) == oneShot)
        #expect(stream([streamingSample], redactor, flushThreshold: 4096) == oneShot)
    }

    @Test func longRunsAreSwallowedWithBoundedMemory() {
        // With a small limit, the key and the token are cut off after their marker is out.
        let oneShot = redactor.redact(streamingSample)
        for seed: UInt64 in 1...10 {
            let pieces = randomPieces(streamingSample, maxPiece: 64, seed: seed)
            #expect(stream(pieces, redactor, maxOpenRun: 600) == oneShot, "seed \(seed)")
        }
        for offset in stride(from: 0, through: streamingSample.utf8.count, by: 7) where scalarBoundaries(streamingSample).contains(offset) {
            #expect(stream(split(streamingSample, at: offset), redactor, maxOpenRun: 600) == oneShot, "split at \(offset)")
        }
    }

    @Test func heldBackBytesStayBounded() {
        var streaming = StreamingRedactor(redactor, flushThreshold: 0, maxOpenRun: 2048)
        var out = ""
        out += streaming.feed("Authorization: Bearer ")
        for _ in 0..<1000 {
            out += streaming.feed("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVow")
            #expect(streaming.pending.count <= 2048 + StreamingRedactor.holdBack + 64)
        }
        out += streaming.feed(" done")
        out += streaming.finish()
        #expect(out == "Authorization: Bearer [REDACTED:secret] done")
        #expect(streaming.counts == ["secret": 1])
    }

    @Test func feedReturnsSettledTextEarly() {
        var streaming = StreamingRedactor(redactor, flushThreshold: 0)
        let first = streaming.feed(String(repeating: "plain text ", count: 100) + "alice@exam")
        #expect(first.utf8.count >= 1100 - StreamingRedactor.holdBack - 10)
        #expect(!first.contains("alice"))
        let rest = streaming.feed("ple.com and more") + streaming.finish()
        #expect((first + rest).hasSuffix("plain text [REDACTED:email] and more"))
        #expect(streaming.total == 1)
    }
}

/// Random texts made of fragments of every pattern (and of their look-alikes), cut at random.
@Suite struct StreamingFuzzTests {
    static let fragments = [
        "alice", "@", "example.com", ".", "-", " ", "  ", "\\n", "\\u00e9", "\\", "\"", ":", ",", "{", "}", "[", "]", "\n",
        "010", "1234", "5678", "4111", "1111", "0", "9", "+82 ", "+1 (415) 555-0100", "2026-10-05", "123-45-6789",
        "900101-1234568", "4111 1111 1111 1111", "4111111111111111", "sk-ant-", "sk-", "AbCdEfGhIjKlMnOpQrSt0123",
        "Bearer ", "eyJhbGciOiJIUzI1NiJ9", "AKIA", "IOSFODNN7EXAMPLE", "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi+Wa2Q7Kl", "Proc-Type: 4,ENCRYPTED",
        "aws_secret_access_key = ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "ghp_", "xoxb-", "agk_",
        String(repeating: "0123456789abcdef", count: 4), "EMP-123456", "안녕", "하세요", "🙂", "é", "text", "the",
    ]

    @Test func randomTextsAndPieces() {
        let redactor = try! Redactor(RedactionRules(custom: [(name: "employee_id", regex: "EMP-[0-9]{6}")]))
        var generator = SeededGenerator(state: 42)
        for round in 0..<100 {
            var text = ""
            for _ in 0..<Int.random(in: 20...300, using: &generator) {
                text += Self.fragments.randomElement(using: &generator)!
            }
            let oneShot = redactor.redact(text)
            let pieces = randomPieces(text, maxPiece: [3, 40, 700][round % 3], seed: UInt64(round) + 1)
            let streamed = stream(pieces, redactor)
            #expect(streamed == oneShot, "round \(round)")
            if streamed != oneShot {
                print("round \(round): \(text.debugDescription)")
                break
            }
        }
    }
}
