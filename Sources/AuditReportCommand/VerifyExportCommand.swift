import ArgumentParser
import AuditCore
import AuditEvidence
import Foundation

/// `auditgate-report verify-export DIR`: checks an evidence package offline, with no database, so an
/// auditor can run it on their own machine against the package as received.
struct VerifyExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-export",
        abstract: "Verify an evidence package offline: file hashes, signature, row counts, and the link to the previous package.",
        discussion: """
            Exit status: 0 when every check passes, 1 when one fails (the first failure is named), 2 when \
            the arguments cannot be used. Without --public-key the package's consistency is checked but \
            not who made it.
            """)

    @Argument(help: "The package's folder (holding manifest.json).") var directory: String
    @Option(help: "The signer's Ed25519 public key (PEM, the FILE.pub written by keygen).") var publicKey: String?
    @Option(help: "The previous package's folder: its manifest.json must be the one this package links to.")
    var previous: String?

    func run() throws {
        guard isDirectory(directory) else { try unusable("\(directory) is not a directory") }
        if let previous, !isDirectory(previous) { try unusable("--previous \(previous) is not a directory") }
        let key = try publicKey.map(loadPublicKey)

        let result = PackageVerifier.verify(directory: directory, publicKey: key, previousDirectory: previous)
        for check in result.checks {
            print("\(check.passed ? "ok  " : "FAIL") \(check.name): \(check.detail)")
        }
        if let failure = result.firstFailure {
            print("FAILED: \(failure.name): \(failure.detail)")
            throw ExitCode(1)
        }
        print("OK: package \(directory) verified")
        if key == nil {
            FileHandle.standardError.write(
                Data("note: the signature was not checked; pass --public-key FILE to check who made the package\n".utf8))
        }
    }

    private func loadPublicKey(_ path: String) throws -> Ed25519PublicKey {
        guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
            try unusable("cannot read the public key \(path)")
        }
        do {
            return try Ed25519PublicKey(pem: pem)
        } catch {
            // A common slip: the private key file instead of FILE.pub. Say so without echoing it.
            if (try? Ed25519PrivateKey(pem: pem)) != nil {
                try unusable("\(path) is a private key; pass the public key (\(path).pub) and keep the private key to the signer")
            }
            try unusable("\(path) is not an Ed25519 public key: \(error)")
        }
    }

    private func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    private func unusable(_ message: String) throws -> Never {
        FileHandle.standardError.write(Data("auditgate-report verify-export: \(message)\n".utf8))
        throw ExitCode(2)
    }
}
