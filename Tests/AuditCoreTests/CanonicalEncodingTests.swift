import AuditCore
import Testing

@Suite struct PrimitiveTests {
    @Test func sha256MatchesTheStandardVector() {
        #expect(SHA256.hash("abc").hexString == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func crc32cMatchesTheStandardVector() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    /// The eight-bytes-at-a-time path agrees with the textbook bit-by-bit CRC-32C at every length and
    /// alignment (spool frames written by older builds must still check).
    @Test func crc32cAgreesWithTheBitwiseDefinition() {
        func bitwise(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return crc ^ 0xFFFF_FFFF
        }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<9 {
            for end in stride(from: start, through: bytes.count, by: 7) {
                let slice = bytes[start..<end]
                #expect(slice.withUnsafeBytes { CRC32C.checksum($0) } == bitwise(slice))
            }
        }
    }

    /// Request ids come from these words: a generator stuck on one value would give calls one id.
    @Test func secureRandomWordsDiffer() throws {
        let words = try (0..<1000).map { _ in try #require(SecureRandom.words()) }
        #expect(Set(words.map { "\($0.0)-\($0.1)" }).count == 1000)
    }

    @Test func hexRoundTrips() {
        let bytes: [UInt8] = [0, 1, 0xab, 0xff]
        #expect(bytes.hexString == "0001abff")
        #expect([UInt8](hexString: "0001ABff") == bytes)
        #expect([UInt8](hexString: "abc") == nil)
    }

    @Test func timestampsAreExactToTheMicrosecond() {
        #expect(Timestamp.postgresText(micros: 0) == "1970-01-01 00:00:00.000000+00")
        #expect(Timestamp.postgresText(micros: 1_795_568_400_123_456) == "2026-11-25 01:00:00.123456+00")  // date -u -d @1795568400
        #expect(Timestamp.postgresText(micros: -1) == "1969-12-31 23:59:59.999999+00")
        #expect(Timestamp.rfc3339UTC(micros: 951_782_400_000_001) == "2000-02-29T00:00:00.000001Z")
        for days: Int64 in [-800_000, -1, 0, 59, 60, 11_016, 20_779, 2_932_896] {
            let (y, m, d) = Timestamp.civil(fromDays: days)
            #expect(Timestamp.days(year: y, month: m, day: d) == days)
        }
    }
}

@Suite struct CanonicalEncodingTests {
    func sampleDraft() -> RecordDraft {
        var draft = RecordDraft(kind: .response, requestID: "req-1")
        draft.userID = "alice"
        draft.teamID = "risk"
        draft.stream = true
        draft.statusCode = 200
        draft.outcome = .ok
        draft.inputTokens = 12
        draft.body = "{\"text\":\"héllo\"}"
        return draft
    }

    @Test func encodingRoundTripsThroughDecode() throws {
        let record = AuditRecord.seal(sampleDraft(), chainID: "gw-1", seq: 7, recordedAtMicros: 1_000_000, prevHash: AuditRecord.genesisHash)
        let values = try #require(CanonicalEncoding.decode(CanonicalEncoding.encode(record)[...]))
        let back = try #require(CanonicalEncoding.record(values: values, prevHash: record.prevHash, hash: record.hash, body: record.fields.body))
        #expect(back == record)
        #expect(record.fields.bodySHA256 == SHA256.hash("{\"text\":\"héllo\"}"))
    }

    @Test func nullAndEmptyAreDifferent() {
        var a = sampleDraft()
        a.endUser = nil
        var b = sampleDraft()
        b.endUser = ""
        let ra = AuditRecord.seal(a, chainID: "c", seq: 1, recordedAtMicros: 0, prevHash: AuditRecord.genesisHash)
        let rb = AuditRecord.seal(b, chainID: "c", seq: 1, recordedAtMicros: 0, prevHash: AuditRecord.genesisHash)
        #expect(ra.hash != rb.hash)
    }

    @Test func shiftingTextBetweenFieldsChangesTheHash() {
        var a = sampleDraft()
        a.userID = "ab"
        a.teamID = "c"
        var b = sampleDraft()
        b.userID = "a"
        b.teamID = "bc"
        let ra = AuditRecord.seal(a, chainID: "c", seq: 1, recordedAtMicros: 0, prevHash: AuditRecord.genesisHash)
        let rb = AuditRecord.seal(b, chainID: "c", seq: 1, recordedAtMicros: 0, prevHash: AuditRecord.genesisHash)
        #expect(ra.hash != rb.hash)
    }

    @Test func hashIsSHA256OfPrevHashAndCanonicalBytes() {
        let prev = [UInt8](repeating: 7, count: 32)
        let record = AuditRecord.seal(sampleDraft(), chainID: "gw-1", seq: 2, recordedAtMicros: 5, prevHash: prev)
        #expect(record.hash == SHA256.hash(prev + CanonicalEncoding.encode(record)))
    }
}

@Suite struct ChainVerifierTests {
    /// A chain of `count` records as the store would return them.
    func chain(_ count: Int, id: String = "gw-1") -> [StoredRecord] {
        var prev = AuditRecord.genesisHash
        return (1...count).map { seq in
            var draft = RecordDraft(kind: seq % 2 == 1 ? .request : .response, requestID: "r\((seq + 1) / 2)")
            draft.model = "m"
            draft.body = "body \(seq)"
            let record = AuditRecord.seal(draft, chainID: id, seq: Int64(seq), recordedAtMicros: Int64(seq), prevHash: prev)
            prev = record.hash
            return StoredRecord(
                chainID: id, seq: record.seq, prevHash: record.prevHash, hash: record.hash,
                values: CanonicalEncoding.fieldValues(record), body: record.fields.body)
        }
    }

    func verify(_ records: [StoredRecord]) -> ChainFailure? {
        var verifier = ChainVerifier()
        records.forEach { verifier.consume($0) }
        _ = verifier.finish()
        return verifier.firstFailure
    }

    @Test func anIntactChainPasses() {
        var verifier = ChainVerifier()
        for record in chain(10) + chain(3, id: "gw-2") { #expect(verifier.consume(record) == nil) }
        let summaries = verifier.finish()
        #expect(summaries.map(\.count) == [10, 3])
        #expect(summaries[0].leavingHash == chain(10).last!.hash)
        #expect(verifier.firstFailure == nil)
    }

    @Test func anEditedFieldIsAHashMismatchAtThatRecord() {
        var records = chain(10)
        records[4].values[14] = "other-model"
        #expect(verify(records) == ChainFailure(chainID: "gw-1", seq: 5, fault: .hashMismatch))
    }

    @Test func aRemovedRecordIsAGap() {
        var records = chain(10)
        records.remove(at: 6)
        #expect(verify(records) == ChainFailure(chainID: "gw-1", seq: 8, fault: .gap(expected: 7, found: 8)))
    }

    @Test func aRemovedFirstRecordIsAGap() {
        #expect(verify(Array(chain(5).dropFirst()))?.fault == .gap(expected: 1, found: 2))
    }

    @Test func aDuplicatedRecordIsAReorder() {
        var records = chain(6)
        records.insert(records[2], at: 4)
        #expect(verify(records)?.fault == .reorder(expected: 5, found: 3))
    }

    @Test func swappedRecordsAreCaughtAtTheFirstOne() {
        var records = chain(8)
        // Swap the contents of seq 3 and 4 but keep the seq column in order, as a superuser's UPDATE would.
        let third = records[2]
        records[2] = records[3]
        records[2].seq = 3
        records[3] = third
        records[3].seq = 4
        #expect(verify(records) == ChainFailure(chainID: "gw-1", seq: 3, fault: .hashMismatch))
    }

    @Test func aRecordRehashedByAnAttackerBreaksTheNextLink() {
        var records = chain(6)
        // The attacker edits seq 3 and recomputes its hash, but cannot fix seq 4's prev_hash without
        // rewriting the rest of the chain.
        records[2].values[14] = "forged"
        records[2].hash = CanonicalEncoding.chainHash(prevHash: records[2].prevHash, canonical: CanonicalEncoding.encode(values: records[2].values))
        #expect(verify(records) == ChainFailure(chainID: "gw-1", seq: 4, fault: .brokenLink))
    }

    @Test func anEditedBodyIsABodyMismatch() {
        var records = chain(4)
        records[1].body = "changed"
        #expect(verify(records) == ChainFailure(chainID: "gw-1", seq: 2, fault: .bodyMismatch))
    }

    @Test func aRemovedBodyIsAllowed() {
        var records = chain(4)
        records[1].body = nil
        #expect(verify(records) == nil)
    }

    @Test func aPeriodStartsWhereverItsFirstRecordIs() {
        var verifier = ChainVerifier(anchoredAtGenesis: false)
        for record in chain(10)[4...] { verifier.consume(record) }
        let summary = verifier.finish()[0]
        #expect(verifier.firstFailure == nil)
        #expect(summary.firstSeq == 5 && summary.lastSeq == 10 && summary.count == 6)
        #expect(summary.enteringHash == chain(10)[3].hash)
    }
}
