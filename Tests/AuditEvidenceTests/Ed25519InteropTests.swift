import AuditCore
import Foundation
import Testing
import TestSupport

let opensslCommand: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

/// Our Ed25519 keys and signatures against the `openssl` command, which is what an auditor without
/// AuditGate would use: keys and signatures must pass between the two in both directions.
/// (Here rather than in AuditCoreTests because it runs a subprocess, which needs TestSupport.)
@Suite(.enabled(if: opensslCommand != nil, "needs the openssl command"))
struct Ed25519InteropTests {
    @discardableResult
    func openssl(_ arguments: [String]) throws -> String { try runCommand(opensslCommand!, arguments) }

    func write(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    func read(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test func aKeyWrittenByUsSignsAndVerifiesWithOpenSSL() throws {
        let directory = temporaryDirectory("ed25519")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = Ed25519PrivateKey.generate()
        try write(Array(key.pem.utf8), directory + "/key.pem")
        try write(Array(key.publicKey.pem.utf8), directory + "/key.pub")
        let message = Array("{\n  \"format\" : \"auditgate-evidence-package/1\"\n}\n".utf8)
        try write(message, directory + "/message")

        // openssl signs with our private key; we verify, and get the same (deterministic) signature.
        try openssl(["pkeyutl", "-sign", "-inkey", directory + "/key.pem", "-rawin", "-in", directory + "/message", "-out", directory + "/openssl.sig"])
        let theirs = try read(directory + "/openssl.sig")
        #expect(key.publicKey.isValidSignature(theirs, for: message))
        #expect(try key.signature(for: message) == theirs)

        // openssl verifies our signature with our public key, and rejects a changed one.
        try write(try key.signature(for: message), directory + "/ours.sig")
        let verified = try openssl([
            "pkeyutl", "-verify", "-pubin", "-inkey", directory + "/key.pub", "-rawin", "-in", directory + "/message",
            "-sigfile", directory + "/ours.sig",
        ])
        #expect(verified.contains("Signature Verified Successfully"))
        var changed = try key.signature(for: message)
        changed[10] ^= 0x04
        try write(changed, directory + "/changed.sig")
        #expect(throws: CommandFailure.self) {
            try openssl([
                "pkeyutl", "-verify", "-pubin", "-inkey", directory + "/key.pub", "-rawin", "-in", directory + "/message",
                "-sigfile", directory + "/changed.sig",
            ])
        }

        // The fingerprint is the SHA-256 of the raw key, the last 32 bytes of openssl's DER SPKI.
        try openssl(["pkey", "-pubin", "-in", directory + "/key.pub", "-outform", "DER", "-out", directory + "/key.der"])
        let der = try read(directory + "/key.der")
        #expect(Array(der.suffix(32)) == key.publicKey.rawRepresentation)
        #expect(SHA256.hash(Array(der.suffix(32))).hexString == key.publicKey.fingerprint)
    }

    @Test func aKeyWrittenByOpenSSLSignsAndVerifiesWithUs() throws {
        let directory = temporaryDirectory("ed25519")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try openssl(["genpkey", "-algorithm", "ed25519", "-out", directory + "/key.pem"])
        try openssl(["pkey", "-in", directory + "/key.pem", "-pubout", "-out", directory + "/key.pub"])
        let key = try Ed25519PrivateKey(pem: try String(contentsOfFile: directory + "/key.pem", encoding: .utf8))
        let publicKey = try Ed25519PublicKey(pem: try String(contentsOfFile: directory + "/key.pub", encoding: .utf8))
        #expect(key.publicKey == publicKey)

        let message = [UInt8](repeating: 0xa5, count: 100_000)
        try write(message, directory + "/message")
        try openssl(["pkeyutl", "-sign", "-inkey", directory + "/key.pem", "-rawin", "-in", directory + "/message", "-out", directory + "/openssl.sig"])
        #expect(publicKey.isValidSignature(try read(directory + "/openssl.sig"), for: message))
        #expect(!publicKey.isValidSignature(try read(directory + "/openssl.sig"), for: Array(message.dropLast())))

        try write(try key.signature(for: message), directory + "/ours.sig")
        let verified = try openssl([
            "pkeyutl", "-verify", "-pubin", "-inkey", directory + "/key.pub", "-rawin", "-in", directory + "/message",
            "-sigfile", directory + "/ours.sig",
        ])
        #expect(verified.contains("Signature Verified Successfully"))
    }

    @Test func anEncryptedOrForeignKeyIsRefusedWithoutPrompting() throws {
        let directory = temporaryDirectory("ed25519")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try openssl(["genpkey", "-algorithm", "ed25519", "-aes-256-cbc", "-pass", "pass:secret", "-out", directory + "/encrypted.pem"])
        let encrypted = try String(contentsOfFile: directory + "/encrypted.pem", encoding: .utf8)
        #expect(encrypted.contains("ENCRYPTED PRIVATE KEY"))
        #expect(throws: CryptoError.self) { try Ed25519PrivateKey(pem: encrypted) }

        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", directory + "/ec.pem"])
        let ec = try String(contentsOfFile: directory + "/ec.pem", encoding: .utf8)
        #expect(throws: CryptoError.notEd25519(found: "EC")) { try Ed25519PrivateKey(pem: ec) }
    }
}
