import ArgumentParser
import AuditCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `auditgate-report keygen --out FILE`: an Ed25519 key pair for signing evidence packages.
///
/// The private key is created with mode 0600 from the first byte (never written world-readable and
/// then narrowed), and an existing key is never replaced by accident: losing a signing key orphans
/// the trust in every package it signed.
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make an Ed25519 key pair for signing packages: FILE (private, mode 0600) and FILE.pub.")

    @Option(help: "Where to write the private key; the public key goes to FILE.pub.") var out: String
    @Flag(help: "Replace FILE and FILE.pub if they exist.") var force = false

    func run() throws {
        let publicPath = out + ".pub"
        if !force {
            for path in [out, publicPath] where FileManager.default.fileExists(atPath: path) {
                fail("\(path) already exists; pass --force to replace it (packages signed with the old key will no longer verify against the new one)")
            }
        }
        let key = Ed25519PrivateKey.generate()
        let privateTarget: String
        let publicTarget: String
        do {
            privateTarget = try create(key.pem, for: out, mode: 0o600)
        } catch {
            fail("\(error)")
        }
        do {
            publicTarget = try create(key.publicKey.pem, for: publicPath, mode: 0o644)
        } catch {
            // Half a pair is worse than none: the private key would have no published counterpart.
            unlink(privateTarget)
            fail("\(error)")
        }
        if force {
            for (target, path) in [(privateTarget, out), (publicTarget, publicPath)] where rename(target, path) != 0 {
                let reason = String(cString: strerror(errno))
                unlink(privateTarget)
                unlink(publicTarget)
                fail("cannot replace \(path): \(reason)")
            }
        }
        print("wrote \(out) (private key, mode 0600; keep it to the signer) and \(publicPath) (public key, give it to auditors)")
        print("fingerprint (SHA-256 of the raw public key): \(key.publicKey.fingerprint)")
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("auditgate-report keygen: \(message)\n".utf8))
        Keygen.exit(withError: ExitCode(1))
    }

    /// Writes a new file with exactly `mode` and returns its path. Without --force it is `path`
    /// itself, created with O_EXCL so a key that appeared since the check is not overwritten; with
    /// --force it is a temporary file beside it, renamed over the old one only once both halves of
    /// the pair are written, so a failed run never leaves the old key destroyed.
    private func create(_ text: String, for path: String, mode: mode_t) throws -> String {
        let target = force ? path + ".tmp-\(getpid())" : path
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw KeygenError("cannot create \(target): \(String(cString: strerror(errno)))") }
        var ok = fchmod(fd, mode) == 0  // the umask may have narrowed the public key's mode
        let bytes = Array(text.utf8)
        var done = 0
        while ok && done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            ok = n > 0
            if ok { done += n }
        }
        ok = ok && fsync(fd) == 0
        let reason = String(cString: strerror(errno))
        close(fd)
        guard ok else {
            unlink(target)
            throw KeygenError("cannot write \(target): \(reason)")
        }
        return target
    }
}

private struct KeygenError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
