import AuditCore
import Foundation
import Testing
import TestSupport

@testable import AuditEvidence

/// A small package written by hand, in the layout `export` writes, so the verifier is tested
/// without a database.
struct SyntheticPackage {
    struct Row {
        var id: String
        var user: String
        var outcome: String
        var note: String
    }

    static let dataFiles = PackageVerifier.exportFiles

    var rows: [Row] = [
        Row(id: "req-1", user: "alice", outcome: "ok", note: "plain"),
        // A cell with a line break, a comma and a quote: one record over two lines.
        Row(id: "req-2", user: "bob", outcome: "denied", note: "line one\r\nline two, with \"quotes\""),
        Row(id: "req-3", user: "carol", outcome: "ok", note: "=1+2"),
    ]

    static func csvCell(_ text: String) -> String {
        var text = text
        if let first = text.first, "=+-@\t\r".contains(first) { text = "'" + text }
        return text.contains(where: { ",\"\r\n".contains($0) }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    static func jsonString(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    func exchangesCSV() -> String {
        "request_id,user_id,outcome,note\r\n"
            + rows.map { [$0.id, $0.user, $0.outcome, Self.csvCell($0.note)].joined(separator: ",") + "\r\n" }.joined()
    }

    func exchangesJSONL() -> String {
        rows.map {
            "{\"request_id\":\(Self.jsonString($0.id)),\"user_id\":\(Self.jsonString($0.user)),\"outcome\":\(Self.jsonString($0.outcome)),\"note\":\(Self.jsonString($0.note))}\n"
        }.joined()
    }

    static let summaryCSV = "scope,user_id,calls\r\nuser,alice,1\r\nuser,bob,1\r\nuser,carol,1\r\ntotal,,3\r\n"
    static let summaryJSON = """
        [
          {"scope": "user", "user_id": "alice", "calls": 1},
          {"scope": "user", "user_id": "bob", "calls": 1},
          {"scope": "user", "user_id": "carol", "calls": 1},
          {"scope": "total", "user_id": null, "calls": 3}
        ]

        """
    static let integrityJSON = """
        {
          "basis": "synthetic",
          "chains": [
            {"chain_id": "gw-1", "first_seq": 1, "last_seq": 6, "count": 6, "expected_count": 6, "gaps": [], "verified": true, "failure": null}
          ],
          "heads_at_period_end": []
        }

        """

    /// The manifest's rows for each file (a test can lie about them).
    var listedRows: [String: Int] {
        [
            PackageFile.exchangesCSV: rows.count, PackageFile.exchangesJSONL: rows.count, PackageFile.summaryCSV: 4,
            PackageFile.summaryJSON: 4, PackageFile.integrity: 1,
        ]
    }

    /// Writes the data files, then the manifest (and signature) over them.
    @discardableResult
    func write(to directory: String, key: Ed25519PrivateKey?, previous: String? = nil) throws -> EvidenceManifest {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let contents = [
            PackageFile.exchangesCSV: exchangesCSV(), PackageFile.exchangesJSONL: exchangesJSONL(),
            PackageFile.summaryCSV: Self.summaryCSV, PackageFile.summaryJSON: Self.summaryJSON,
            PackageFile.integrity: Self.integrityJSON,
        ]
        for (name, text) in contents { try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/" + name)) }
        var byOutcome = Dictionary(uniqueKeysWithValues: ["ok", "upstream_error", "client_error", "denied", "gateway_error", "incomplete"].map { ($0, 0) })
        for row in rows { byOutcome[row.outcome, default: 0] += 1 }
        let previousHash = try previous.map { SHA256.hash([UInt8](try Data(contentsOf: URL(fileURLWithPath: $0 + "/manifest.json")))).hexString }
        var manifest = EvidenceManifest(
            generator: .init(name: "auditgate-report", version: "test"), generatedAt: "2026-11-01T00:00:00.000Z",
            period: .init(
                label: "2026-10", from: "2026-10-01T00:00:00.000Z", to: "2026-11-01T00:00:00.000Z",
                fromUTC: "2026-10-01T00:00:00.000Z", toUTC: "2026-11-01T00:00:00.000Z", timeZone: "UTC"),
            filters: .init(user: nil, team: nil, includeBodies: false),
            files: [], counts: .init(exchanges: rows.count, byOutcome: byOutcome),
            chains: [.init(chainID: "gw-1", firstSeq: 1, lastSeq: 6, count: 6, gaps: 0, verified: true)],
            previousManifestSHA256: previousHash)
        manifest.files = try Self.dataFiles.map { try Self.entry(directory, $0, rows: listedRows[$0]!) }
        try Self.writeManifest(manifest, to: directory, key: key)
        return manifest
    }

    static func entry(_ directory: String, _ name: String, rows: Int) throws -> EvidenceManifest.FileEntry {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
        return .init(name: name, bytes: data.count, sha256: SHA256.hash([UInt8](data)).hexString, rows: rows)
    }

    /// Writes manifest.json and, with a key, manifest.sig, as the exporter does.
    static func writeManifest(_ manifest: EvidenceManifest, to directory: String, key: Ed25519PrivateKey?) throws {
        var manifest = manifest
        manifest.signature = key.map { .init(publicKeySHA256: $0.publicKey.fingerprint) }
        let bytes = try manifest.encoded()
        try bytes.write(to: URL(fileURLWithPath: directory + "/manifest.json"))
        if let key {
            try Data(try key.signature(for: [UInt8](bytes))).write(to: URL(fileURLWithPath: directory + "/manifest.sig"))
        }
    }
}

/// Replaces a file's text.
func rewrite(_ path: String, _ change: (String) -> String) throws {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    try Data(change(text).utf8).write(to: URL(fileURLWithPath: path))
}

func failureSummary(_ result: PackageVerification) -> String {
    result.firstFailure.map { "\($0.name): \($0.detail)" } ?? "passed"
}

@Suite struct PackageVerifierTests {
    let key = Ed25519PrivateKey.generate()

    @Test func anIntactSignedPackagePassesEveryCheck() throws {
        let directory = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SyntheticPackage().write(to: directory, key: key)

        let result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.passed, "\(failureSummary(result))")
        #expect(result.signatureChecked)
        let names = result.checks.map(\.name)
        #expect(
            names == [
                "manifest", "file exchanges.csv", "file exchanges.jsonl", "file summary.csv", "file summary.json",
                "file integrity.json", "unlisted files", "signature", "rows exchanges.csv", "rows exchanges.jsonl",
                "rows summary.csv", "rows summary.json", "rows integrity.json", "counts", "outcomes", "chains", "previous",
            ])
        let details = Dictionary(uniqueKeysWithValues: result.checks.map { ($0.name, $0.detail) })
        // The multi-line quoted cell is one record: 3 data rows, not 4.
        #expect(details["rows exchanges.csv"] == "3 data rows after the header, as listed")
        #expect(details["signature"]?.contains(key.publicKey.fingerprint) == true)
        #expect(details["outcomes"]?.contains("denied 1") == true)

        // Without a key the package is consistent, and the result says the signature was not checked.
        let unkeyed = PackageVerifier.verify(directory: directory, publicKey: nil, previousDirectory: nil)
        #expect(unkeyed.passed)
        #expect(!unkeyed.signatureChecked)
        #expect(unkeyed.checks.first { $0.name == "signature" }?.detail.hasPrefix("not checked") == true)
    }

    @Test func oneChangedByteInAnyDataFileFailsNamingTheFile() throws {
        for name in SyntheticPackage.dataFiles {
            let directory = temporaryDirectory("package")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try SyntheticPackage().write(to: directory, key: key)
            let path = directory + "/" + name
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[bytes.count / 2] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: path))

            for publicKey in [key.publicKey, nil] {
                let result = PackageVerifier.verify(directory: directory, publicKey: publicKey, previousDirectory: nil)
                #expect(result.firstFailure?.name == "file \(name)", "\(failureSummary(result))")
                #expect(result.firstFailure?.detail.hasPrefix("\(name) has SHA-256") == true, "\(failureSummary(result))")
            }
        }
    }

    @Test func aChangedManifestFailsTheSignature() throws {
        let directory = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SyntheticPackage().write(to: directory, key: key)
        try rewrite(directory + "/manifest.json") { $0.replacingOccurrences(of: "2026-11-01T00:00:00.000Z", with: "2026-11-02T00:00:00.000Z") }
        let result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.firstFailure?.name == "signature")
        #expect(result.firstFailure?.detail.contains("does not verify over manifest.json") == true)
    }

    @Test func theWrongPublicKeyFails() throws {
        let directory = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SyntheticPackage().write(to: directory, key: key)
        let other = Ed25519PrivateKey.generate().publicKey
        let result = PackageVerifier.verify(directory: directory, publicKey: other, previousDirectory: nil)
        #expect(result.firstFailure?.name == "signature")
        #expect(result.firstFailure?.detail.contains(other.fingerprint) == true)
        #expect(result.firstFailure?.detail.contains(key.publicKey.fingerprint) == true)
        #expect(result.checks.filter { !$0.passed }.map(\.name) == ["signature"])
    }

    @Test func aMissingSignatureFailsEvenWithoutAKey() throws {
        let directory = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SyntheticPackage().write(to: directory, key: key)
        try FileManager.default.removeItem(atPath: directory + "/manifest.sig")
        for publicKey in [key.publicKey, nil] {
            let result = PackageVerifier.verify(directory: directory, publicKey: publicKey, previousDirectory: nil)
            #expect(result.firstFailure?.name == "signature")
            #expect(result.firstFailure?.detail.contains("manifest.sig is missing") == true)
        }
        // An unsigned package checked against a key cannot pass: the key vouches for nothing.
        let unsigned = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: unsigned) }
        try SyntheticPackage().write(to: unsigned, key: nil)
        #expect(PackageVerifier.verify(directory: unsigned, publicKey: nil, previousDirectory: nil).passed)
        #expect(PackageVerifier.verify(directory: unsigned, publicKey: key.publicKey, previousDirectory: nil).firstFailure?.name == "signature")
    }

    /// An insider deletes a row from both data files and fixes the hashes: without the signing key
    /// the signature gives it away; with it (re-signed) the row counts still do.
    @Test func aRemovedRowIsCaughtBySignatureThenByRowCounts() throws {
        let directory = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var package = SyntheticPackage()
        var manifest = try package.write(to: directory, key: key)

        package.rows.remove(at: 1)
        try Data(package.exchangesCSV().utf8).write(to: URL(fileURLWithPath: directory + "/exchanges.csv"))
        try Data(package.exchangesJSONL().utf8).write(to: URL(fileURLWithPath: directory + "/exchanges.jsonl"))
        for (index, entry) in manifest.files.enumerated() where entry.name.hasPrefix("exchanges.") {
            manifest.files[index] = try SyntheticPackage.entry(directory, entry.name, rows: entry.rows)
        }
        // Hashes recomputed, manifest rewritten, but the old signature kept.
        let signature = try Data(contentsOf: URL(fileURLWithPath: directory + "/manifest.sig"))
        try SyntheticPackage.writeManifest(manifest, to: directory, key: key)
        try signature.write(to: URL(fileURLWithPath: directory + "/manifest.sig"))
        var result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.firstFailure?.name == "signature", "\(failureSummary(result))")
        #expect(result.checks.filter { $0.name.hasPrefix("file ") }.allSatisfy { $0.passed })

        // Re-signed (the insider holds the key) but the rows and counts left as they were.
        try SyntheticPackage.writeManifest(manifest, to: directory, key: key)
        result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.firstFailure?.name == "rows exchanges.csv", "\(failureSummary(result))")
        #expect(result.firstFailure?.detail == "exchanges.csv has 2 data rows after the header, manifest.json lists 3")
        let failed = result.checks.filter { !$0.passed }.map(\.name)
        #expect(failed == ["rows exchanges.csv", "rows exchanges.jsonl", "counts", "outcomes"])

        // Rows fixed too, but counts.exchanges left: the count check catches it.
        for (index, entry) in manifest.files.enumerated() where entry.name.hasPrefix("exchanges.") {
            manifest.files[index].rows = 2
        }
        try SyntheticPackage.writeManifest(manifest, to: directory, key: key)
        result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.firstFailure?.name == "counts", "\(failureSummary(result))")
    }

    @Test func anUnlistedFileFails() throws {
        let directory = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SyntheticPackage().write(to: directory, key: key)
        try Data("x".utf8).write(to: URL(fileURLWithPath: directory + "/extra.csv"))
        let result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.firstFailure?.name == "unlisted files")
        #expect(result.firstFailure?.detail.hasPrefix("extra.csv is in the package") == true)
    }

    @Test func aMissingFileOrUnsafeNameFails() throws {
        let directory = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var manifest = try SyntheticPackage().write(to: directory, key: key)
        try FileManager.default.removeItem(atPath: directory + "/summary.json")
        var result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.firstFailure?.detail == "summary.json is listed in manifest.json but missing from the package")

        manifest.files.append(.init(name: "../escape.csv", bytes: 0, sha256: "", rows: 0))
        try SyntheticPackage.writeManifest(manifest, to: directory, key: key)
        result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.checks.count == 1)
        #expect(result.firstFailure?.name == "manifest")
        #expect(result.firstFailure?.detail.contains("../escape.csv") == true)

        try Data("{\"format\": \"something-else\"}".utf8).write(to: URL(fileURLWithPath: directory + "/manifest.json"))
        result = PackageVerifier.verify(directory: directory, publicKey: nil, previousDirectory: nil)
        #expect(result.firstFailure?.name == "manifest")
        #expect(result.firstFailure?.detail.contains("does not parse") == true)
    }

    @Test func anUnverifiedChainAtExportFails() throws {
        let directory = temporaryDirectory("package")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var manifest = try SyntheticPackage().write(to: directory, key: key)
        manifest.chains[0].verified = false
        try SyntheticPackage.writeManifest(manifest, to: directory, key: key)
        let result = PackageVerifier.verify(directory: directory, publicKey: key.publicKey, previousDirectory: nil)
        #expect(result.firstFailure?.name == "chains", "\(failureSummary(result))")
        #expect(result.firstFailure?.detail.contains("gw-1 as NOT verified") == true)
        #expect(result.firstFailure?.detail.contains("disagree") == true)
    }

    @Test func linkedPackagesVerifyWithTheirPrevious() throws {
        let first = temporaryDirectory("package-a")
        let second = temporaryDirectory("package-b")
        let unrelated = temporaryDirectory("package-c")
        defer { for d in [first, second, unrelated] { try? FileManager.default.removeItem(atPath: d) } }
        try SyntheticPackage().write(to: first, key: key)
        try SyntheticPackage().write(to: second, key: key, previous: first)
        var other = SyntheticPackage()
        other.rows[0].user = "mallory"
        try other.write(to: unrelated, key: key)

        let linked = PackageVerifier.verify(directory: second, publicKey: key.publicKey, previousDirectory: first)
        #expect(linked.passed, "\(failureSummary(linked))")
        #expect(linked.checks.last?.name == "previous")
        #expect(linked.checks.last?.detail.contains("as manifest.json links") == true)

        let wrong = PackageVerifier.verify(directory: second, publicKey: key.publicKey, previousDirectory: unrelated)
        #expect(wrong.firstFailure?.name == "previous")
        #expect(wrong.firstFailure?.detail.contains(unrelated + "/manifest.json") == true)

        let unchecked = PackageVerifier.verify(directory: second, publicKey: key.publicKey, previousDirectory: nil)
        #expect(unchecked.passed)
        #expect(unchecked.checks.last == .init(name: "previous", passed: true, detail: "not checked (pass --previous DIR)"))

        // The first package names no previous one, so it cannot be linked to anything.
        let unlinked = PackageVerifier.verify(directory: first, publicKey: key.publicKey, previousDirectory: unrelated)
        #expect(unlinked.firstFailure?.name == "previous")
    }

    @Test func theCommandLineToolReportsAndExits() throws {
        let tool = binDirectory + "/auditgate-report"
        let directory = temporaryDirectory("package")
        let keys = temporaryDirectory("keys")
        defer { for d in [directory, keys] { try? FileManager.default.removeItem(atPath: d) } }

        // keygen: the private key 0600, the public key 0644, no silent overwrite.
        let keyPath = keys + "/signing.pem"
        let made = try runCommand(tool, ["keygen", "--out", keyPath])
        let generated = try Ed25519PrivateKey(pem: try String(contentsOfFile: keyPath, encoding: .utf8))
        #expect(made.contains(generated.publicKey.fingerprint))
        #expect(try Ed25519PublicKey(pem: try String(contentsOfFile: keyPath + ".pub", encoding: .utf8)) == generated.publicKey)
        let privateMode = try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int
        let publicMode = try FileManager.default.attributesOfItem(atPath: keyPath + ".pub")[.posixPermissions] as? Int
        #expect(privateMode == 0o600)
        #expect(publicMode == 0o644)
        #expect(throws: CommandFailure.self) { try runCommand(tool, ["keygen", "--out", keyPath]) }
        #expect(try Ed25519PrivateKey(pem: try String(contentsOfFile: keyPath, encoding: .utf8)).publicKey == generated.publicKey)

        try SyntheticPackage().write(to: directory, key: generated)
        let output = try runCommand(tool, ["verify-export", directory, "--public-key", keyPath + ".pub"])
        #expect(output.contains("ok   signature: manifest.sig is a valid Ed25519 signature"))
        #expect(output.hasSuffix("OK: package \(directory) verified\n"))

        try rewrite(directory + "/summary.csv") { $0.replacingOccurrences(of: "carol,1", with: "carol,2") }
        do {
            try runCommand(tool, ["verify-export", directory, "--public-key", keyPath + ".pub"])
            Issue.record("a changed package verified")
        } catch let failure as CommandFailure {
            #expect(failure.status == 1)
            #expect(failure.output.contains("FAIL file summary.csv: summary.csv has SHA-256"))
            #expect(failure.output.contains("\nFAILED: file summary.csv: summary.csv has SHA-256"))
        }

        // Arguments that cannot be used: exit 2, and a private key is not taken for a public one.
        for arguments in [
            ["verify-export", directory + "/nowhere"], ["verify-export", directory, "--public-key", keyPath],
            ["verify-export", directory, "--previous", directory + "/nowhere"],
        ] {
            do {
                try runCommand(tool, arguments)
                Issue.record("\(arguments) succeeded")
            } catch let failure as CommandFailure {
                #expect(failure.status == 2, "\(arguments): \(failure)")
                #expect(!failure.errors.contains("BEGIN PRIVATE KEY"))
            }
        }
    }
}

/// The CSV record counter on its own: RFC 4180 quoting, fed in pieces that split records anywhere.
@Suite struct CSVRecordCounterTests {
    func count(_ text: String, chunk: Int = 1) -> (rows: Int?, error: String?) {
        var counter = CSVRecordCounter()
        let bytes = Array(text.utf8)
        var start = 0
        while start < bytes.count {
            let end = min(start + chunk, bytes.count)
            bytes[start..<end].withUnsafeBytes { counter.consume($0) }
            start = end
        }
        let rows = counter.finish()
        return (rows, counter.error)
    }

    @Test func quotedFieldsHoldLineBreaksCommasAndQuotes() {
        let text = "a,b\r\n\"x\r\ny\",\"1,2\"\r\n\"say \"\"hi\"\"\",\r\nlast,row"
        for chunk in [1, 2, 3, 7, 1000] {
            #expect(count(text, chunk: chunk).rows == 3)
        }
        #expect(count("a,b\r\n").rows == 0)
        #expect(count("a,b\n1,2\n").rows == 1)
        #expect(count("a\r\n\"\"\r\n").rows == 1)
    }

    @Test func malformedCSVIsNamed() {
        #expect(count("").error == "the file is empty: no header line")
        #expect(count("a,b\r\n\"open,1\r\n").error?.contains("not closed") == true)
        #expect(count("a,b\r\n1,2,3\r\n").error == "record 2 (line 2) has 3 fields, the header has 2")
        #expect(count("a,b\r\nx\"y,1\r\n").error?.contains("a quote inside an unquoted field") == true)
        #expect(count("a,b\r\n\"x\"y,1\r\n").error?.contains("text after the closing quote") == true)
        #expect(count("a,b\r1,2\r\n").error?.contains("a CR not followed by LF") == true)
    }

    @Test func jsonLinesAreCountedAndChecked() {
        func lines(_ text: String) -> (Int?, JSONLinesCounter) {
            var counter = JSONLinesCounter()
            Array(text.utf8).withUnsafeBytes { counter.consume($0) }
            return (counter.finish(), counter)
        }
        #expect(lines("{\"outcome\":\"ok\"}\n{\"outcome\":\"denied\"}\n").0 == 2)
        #expect(lines("{\"outcome\":\"ok\"}\n{\"outcome\":\"ok\"}").1.outcomes == ["ok": 2])
        #expect(lines("").0 == 0)
        #expect(lines("{}\n\n{}\n").1.error == "not valid JSON Lines: line 2 is empty")
        #expect(lines("{}\n[1]\n").1.error == "not valid JSON Lines: line 2 is not a JSON object")
        #expect(lines("{\"a\":1}\n{\"a\":").1.error == "not valid JSON Lines: line 2 is not a JSON object")
    }
}
