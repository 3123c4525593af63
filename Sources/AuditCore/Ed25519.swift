import COpenSSL

/// Why a key could not be read or a signature could not be made.
///
/// Messages name what was expected and what OpenSSL reported; they never contain key material, so an
/// error can be printed or logged as it is.
public enum CryptoError: Error, Equatable, CustomStringConvertible {
    /// The text is not a PEM block of the expected kind (or is encrypted, which we do not read).
    case invalidPEM(expected: String, reason: String)
    /// The key is well formed but not an Ed25519 key.
    case notEd25519(found: String)
    /// A raw key or signature has the wrong number of bytes.
    case invalidLength(what: String, expected: Int, actual: Int)
    /// An OpenSSL call failed; `reason` is OpenSSL's own error text.
    case openSSL(operation: String, reason: String)

    public var description: String {
        switch self {
        case .invalidPEM(let expected, let reason):
            "not a PEM \(expected) (expected a '-----BEGIN \(expected)-----' block): \(reason)"
        case .notEd25519(let found): "the key is not an Ed25519 key (found \(found))"
        case .invalidLength(let what, let expected, let actual): "\(what) must be \(expected) bytes, not \(actual)"
        case .openSSL(let operation, let reason): "OpenSSL \(operation) failed: \(reason)"
        }
    }
}

/// An Ed25519 public key: what an auditor holds to check a package's `manifest.sig`.
///
/// Stored as its raw 32 bytes (RFC 8032), so it is a plain value; each operation builds and frees
/// its own OpenSSL key object.
public struct Ed25519PublicKey: Sendable, Equatable, CustomStringConvertible {
    public let rawRepresentation: [UInt8]

    /// The raw 32-byte key as RFC 8032 writes it.
    public init(rawRepresentation: [UInt8]) throws {
        guard rawRepresentation.count == Ed25519.keyLength else {
            throw CryptoError.invalidLength(what: "an Ed25519 public key", expected: Ed25519.keyLength, actual: rawRepresentation.count)
        }
        // Let OpenSSL see it once, so a key it would refuse fails here rather than at verification.
        try Ed25519.withPublicKey(rawRepresentation) { _ in }
        self.rawRepresentation = rawRepresentation
    }

    /// A `-----BEGIN PUBLIC KEY-----` block (SubjectPublicKeyInfo), as `openssl pkey -pubout` writes.
    public init(pem: String) throws {
        let key = try Ed25519.readPEM(pem, expected: "PUBLIC KEY") { bio in
            // A pass-phrase callback that supplies none: OpenSSL's default would prompt on the terminal.
            PEM_read_bio_PUBKEY(bio, nil, { _, _, _, _ in -1 }, nil)
        }
        defer { EVP_PKEY_free(key) }
        rawRepresentation = try Ed25519.rawKey(key, private: false)
    }

    /// SubjectPublicKeyInfo PEM, readable by `openssl pkeyutl -verify -pubin`.
    public var pem: String {
        // Writing a valid key to a memory BIO cannot fail short of running out of memory.
        try! Ed25519.withPublicKey(rawRepresentation) { key in
            try Ed25519.writePEM(operation: "PEM_write_bio_PUBKEY") { PEM_write_bio_PUBKEY($0, key) }
        }
    }

    /// Lower-case hex SHA-256 of the raw 32 bytes: the key's name in manifests and on screen.
    public var fingerprint: String { SHA256.hash(rawRepresentation).hexString }

    public var description: String { "Ed25519PublicKey(sha256 \(fingerprint))" }

    /// True only for a 64-byte signature that this key made over exactly these bytes.
    public func isValidSignature(_ signature: [UInt8], for bytes: [UInt8]) -> Bool {
        guard signature.count == Ed25519.signatureLength else { return false }
        let valid = try? Ed25519.withPublicKey(rawRepresentation) { key -> Bool in
            guard let context = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(context) }
            // Ed25519 hashes internally (PureEdDSA): the digest must be NULL and the message one piece.
            guard EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1 else { return false }
            return signature.withUnsafeBufferPointer { sig in
                Ed25519.withNonNullBytes(bytes) { message, count in
                    EVP_DigestVerify(context, sig.baseAddress, sig.count, message, count) == 1
                }
            }
        }
        // A failed verification leaves reasons on OpenSSL's per-thread queue; they are not errors here.
        ERR_clear_error()
        return valid ?? false
    }
}

/// An Ed25519 private key, for signing evidence packages.
///
/// Holds the 32-byte seed. `description` shows only the public key's fingerprint, so printing the
/// value (or interpolating it in a log line) never reveals the key.
public struct Ed25519PrivateKey: Sendable, CustomStringConvertible, CustomReflectable {
    private let seed: [UInt8]
    public let publicKey: Ed25519PublicKey

    /// A new key from OpenSSL's random generator.
    public static func generate() -> Self {
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else {
            fatalError("OpenSSL cannot create an Ed25519 key context: \(Ed25519.openSSLReason())")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_generate(context, &key) == 1, let key else {
            fatalError("OpenSSL cannot generate an Ed25519 key: \(Ed25519.openSSLReason())")
        }
        defer { EVP_PKEY_free(key) }
        do {
            return try Self(key: key)
        } catch {
            fatalError("OpenSSL generated an unreadable Ed25519 key: \(error)")
        }
    }

    /// The raw 32-byte secret key (the seed) as RFC 8032 writes it.
    public init(rawRepresentation: [UInt8]) throws {
        guard rawRepresentation.count == Ed25519.keyLength else {
            throw CryptoError.invalidLength(what: "an Ed25519 private key", expected: Ed25519.keyLength, actual: rawRepresentation.count)
        }
        let key = try rawRepresentation.withUnsafeBufferPointer { raw in
            guard let key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, raw.baseAddress, raw.count) else {
                throw CryptoError.openSSL(operation: "EVP_PKEY_new_raw_private_key", reason: Ed25519.openSSLReason())
            }
            return key
        }
        defer { EVP_PKEY_free(key) }
        try self.init(key: key)
    }

    /// A `-----BEGIN PRIVATE KEY-----` block (PKCS#8), as `openssl genpkey -algorithm ed25519` writes.
    /// Encrypted keys are refused rather than prompting for a pass phrase on the terminal.
    public init(pem: String) throws {
        let key = try Ed25519.readPEM(pem, expected: "PRIVATE KEY") { bio in
            // A pass-phrase callback that supplies none: OpenSSL's default would prompt on the terminal
            // and hang a batch job; an encrypted key fails to decode instead.
            PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in -1 }, nil)
        }
        defer { EVP_PKEY_free(key) }
        try self.init(key: key)
    }

    private init(key: OpaquePointer) throws {
        seed = try Ed25519.rawKey(key, private: true)
        publicKey = try Ed25519PublicKey(rawRepresentation: Ed25519.rawKey(key, private: false))
    }

    /// Unencrypted PKCS#8 PEM: the caller keeps it in a file of mode 0600.
    public var pem: String {
        try! withKey { key in
            try Ed25519.writePEM(operation: "PEM_write_bio_PKCS8PrivateKey") {
                PEM_write_bio_PKCS8PrivateKey($0, key, nil, nil, 0, nil, nil)
            }
        }
    }

    /// The 64-byte Ed25519 signature (deterministic: the same key and bytes give the same signature).
    public func signature(for bytes: [UInt8]) throws -> [UInt8] {
        try withKey { key in
            guard let context = EVP_MD_CTX_new() else {
                throw CryptoError.openSSL(operation: "EVP_MD_CTX_new", reason: Ed25519.openSSLReason())
            }
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestSignInit(context, nil, nil, nil, key) == 1 else {
                throw CryptoError.openSSL(operation: "EVP_DigestSignInit", reason: Ed25519.openSSLReason())
            }
            var signature = [UInt8](repeating: 0, count: Ed25519.signatureLength)
            var length = signature.count
            let status = signature.withUnsafeMutableBufferPointer { sig in
                Ed25519.withNonNullBytes(bytes) { message, count in
                    EVP_DigestSign(context, sig.baseAddress, &length, message, count)
                }
            }
            guard status == 1, length == Ed25519.signatureLength else {
                throw CryptoError.openSSL(operation: "EVP_DigestSign", reason: Ed25519.openSSLReason())
            }
            return signature
        }
    }

    public var description: String { "Ed25519PrivateKey(public key sha256 \(publicKey.fingerprint))" }

    /// `dump` and debuggers show the public key only.
    public var customMirror: Mirror { Mirror(self, children: ["publicKey": publicKey]) }

    private func withKey<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
        let key = try seed.withUnsafeBufferPointer { raw in
            guard let key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, raw.baseAddress, raw.count) else {
                throw CryptoError.openSSL(operation: "EVP_PKEY_new_raw_private_key", reason: Ed25519.openSSLReason())
            }
            return key
        }
        defer { EVP_PKEY_free(key) }
        return try body(key)
    }
}

/// The OpenSSL plumbing shared by both key types.
enum Ed25519 {
    static let keyLength = 32
    static let signatureLength = 64

    /// OpenSSL's first queued error as text (no key material ever appears there), clearing the queue.
    static func openSSLReason() -> String {
        let code = ERR_get_error()
        defer { ERR_clear_error() }
        guard code != 0 else { return "no reason given" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func withPublicKey<T>(_ raw: [UInt8], _ body: (OpaquePointer) throws -> T) throws -> T {
        let key = try raw.withUnsafeBufferPointer { raw in
            guard let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, raw.baseAddress, raw.count) else {
                throw CryptoError.openSSL(operation: "EVP_PKEY_new_raw_public_key", reason: openSSLReason())
            }
            return key
        }
        defer { EVP_PKEY_free(key) }
        return try body(key)
    }

    /// Calls `body` with a pointer that is never NULL, even for an empty message, since not every
    /// OpenSSL code path accepts a NULL buffer of length 0.
    static func withNonNullBytes<T>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>, Int) -> T) -> T {
        if bytes.isEmpty {
            var zero: UInt8 = 0
            return body(&zero, 0)
        }
        return bytes.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
    }

    /// Decodes one PEM block with `read`; the returned key is the caller's to free.
    static func readPEM(_ pem: String, expected: String, _ read: (OpaquePointer) -> OpaquePointer?) throws -> OpaquePointer {
        let text = Array(pem.utf8)
        guard text.count < Int(Int32.max) else {
            throw CryptoError.invalidPEM(expected: expected, reason: "the text is too large")
        }
        let key: OpaquePointer? = text.withUnsafeBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            return read(bio)
        }
        guard let key else {
            throw CryptoError.invalidPEM(expected: expected, reason: openSSLReason())
        }
        ERR_clear_error()
        let type = EVP_PKEY_get_id(key)
        guard type == EVP_PKEY_ED25519 else {
            let name = EVP_PKEY_get0_type_name(key).map { String(cString: $0) } ?? "type \(type)"
            EVP_PKEY_free(key)
            throw CryptoError.notEd25519(found: name)
        }
        return key
    }

    /// The raw 32-byte private seed or public key of an Ed25519 EVP_PKEY.
    static func rawKey(_ key: OpaquePointer, private isPrivate: Bool) throws -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: keyLength)
        var length = raw.count
        let status = raw.withUnsafeMutableBufferPointer { buffer in
            isPrivate
                ? EVP_PKEY_get_raw_private_key(key, buffer.baseAddress, &length)
                : EVP_PKEY_get_raw_public_key(key, buffer.baseAddress, &length)
        }
        guard status == 1 else {
            throw CryptoError.openSSL(
                operation: isPrivate ? "EVP_PKEY_get_raw_private_key" : "EVP_PKEY_get_raw_public_key", reason: openSSLReason())
        }
        guard length == keyLength else {
            throw CryptoError.invalidLength(what: "an Ed25519 key", expected: keyLength, actual: length)
        }
        return raw
    }

    /// Runs a PEM writer against a memory BIO and returns what it wrote.
    static func writePEM(operation: String, _ write: (OpaquePointer) -> Int32) throws -> String {
        guard let bio = BIO_new(BIO_s_mem()) else {
            throw CryptoError.openSSL(operation: "BIO_new", reason: openSSLReason())
        }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else {
            throw CryptoError.openSSL(operation: operation, reason: openSSLReason())
        }
        let pending = BIO_ctrl_pending(bio)
        var text = [UInt8](repeating: 0, count: pending)
        let read = text.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
        guard read == Int32(pending) else {
            throw CryptoError.openSSL(operation: "BIO_read", reason: openSSLReason())
        }
        return String(decoding: text, as: UTF8.self)
    }
}
