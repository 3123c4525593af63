import AuditCore
import Testing

@Suite struct Ed25519Tests {
    /// RFC 8032 §7.1, TEST 1 (the empty message).
    static let rfcSecret = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    static let rfcPublic = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    static let rfcSignature =
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"

    /// The same RFC 8032 key as `openssl pkey` writes it (made from the raw seed with the openssl CLI).
    static let rfcPrivatePEM = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
        -----END PRIVATE KEY-----

        """
    static let rfcPublicPEM = """
        -----BEGIN PUBLIC KEY-----
        MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
        -----END PUBLIC KEY-----

        """
    /// A P-256 public key: well-formed SPKI, but not Ed25519.
    static let p256PublicPEM = """
        -----BEGIN PUBLIC KEY-----
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERiALYQdlnQ6ZPZKM29VoFFXkyg5J
        g93E4e14iPly80su+sEmuamwyKpAhYNc3M+XMBh4+ASFjZqK4o6KFnNJlw==
        -----END PUBLIC KEY-----

        """

    @Test func rfc8032TestVector1() throws {
        let key = try Ed25519PrivateKey(rawRepresentation: [UInt8](hexString: Self.rfcSecret)!)
        #expect(key.publicKey.rawRepresentation.hexString == Self.rfcPublic)
        let signature = try key.signature(for: [])
        #expect(signature.hexString == Self.rfcSignature)
        let publicKey = try Ed25519PublicKey(rawRepresentation: [UInt8](hexString: Self.rfcPublic)!)
        #expect(publicKey.isValidSignature([UInt8](hexString: Self.rfcSignature)!, for: []))
        #expect(!publicKey.isValidSignature([UInt8](hexString: Self.rfcSignature)!, for: [0]))
        #expect(publicKey.fingerprint == SHA256.hash([UInt8](hexString: Self.rfcPublic)!).hexString)
    }

    @Test func pemMatchesOpenSSLsEncodingOfTheRFCKey() throws {
        let key = try Ed25519PrivateKey(rawRepresentation: [UInt8](hexString: Self.rfcSecret)!)
        #expect(key.pem == Self.rfcPrivatePEM)
        #expect(key.publicKey.pem == Self.rfcPublicPEM)
        #expect(try Ed25519PrivateKey(pem: Self.rfcPrivatePEM).publicKey.rawRepresentation.hexString == Self.rfcPublic)
        #expect(try Ed25519PublicKey(pem: Self.rfcPublicPEM).rawRepresentation.hexString == Self.rfcPublic)
    }

    @Test func signAndVerifyRoundTrip() throws {
        let key = Ed25519PrivateKey.generate()
        let message = Array("manifest bytes\r\n{\"a\":1}".utf8)
        let signature = try key.signature(for: message)
        #expect(signature.count == 64)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        #expect(key.publicKey.rawRepresentation.count == 32)
        #expect(key.publicKey.fingerprint.count == 64)
        // Deterministic: the same key and message give the same signature.
        #expect(try key.signature(for: message) == signature)
        // A large message goes through in one piece.
        let large = [UInt8](repeating: 0x5a, count: 3_000_000)
        #expect(key.publicKey.isValidSignature(try key.signature(for: large), for: large))
    }

    @Test func aFlippedBitFails() throws {
        let key = Ed25519PrivateKey.generate()
        let message = Array("evidence".utf8)
        let signature = try key.signature(for: message)
        for index in [0, 31, 32, 63] {
            var bad = signature
            bad[index] ^= 0x01
            #expect(!key.publicKey.isValidSignature(bad, for: message))
        }
        var badMessage = message
        badMessage[3] ^= 0x80
        #expect(!key.publicKey.isValidSignature(signature, for: badMessage))
        #expect(!key.publicKey.isValidSignature(Array(signature.prefix(63)), for: message))
        #expect(!key.publicKey.isValidSignature([], for: message))
    }

    @Test func theWrongKeyFails() throws {
        let key = Ed25519PrivateKey.generate()
        let other = Ed25519PrivateKey.generate()
        #expect(key.publicKey != other.publicKey)
        #expect(key.publicKey.fingerprint != other.publicKey.fingerprint)
        let message = Array("evidence".utf8)
        #expect(!other.publicKey.isValidSignature(try key.signature(for: message), for: message))
    }

    @Test func pemRoundTrip() throws {
        let key = Ed25519PrivateKey.generate()
        #expect(key.pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(key.publicKey.pem.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        let reread = try Ed25519PrivateKey(pem: key.pem)
        #expect(reread.publicKey == key.publicKey)
        #expect(reread.pem == key.pem)
        let message = Array("x".utf8)
        #expect(try reread.signature(for: message) == (try key.signature(for: message)))
        #expect(try Ed25519PublicKey(pem: key.publicKey.pem) == key.publicKey)
        #expect(try Ed25519PublicKey(rawRepresentation: key.publicKey.rawRepresentation) == key.publicKey)
    }

    @Test func unusableInputIsRefusedClearly() throws {
        #expect(throws: CryptoError.self) { try Ed25519PublicKey(pem: "not a key") }
        #expect(throws: CryptoError.self) { try Ed25519PrivateKey(pem: "") }
        // A public key where a private key is expected, and the reverse.
        #expect(throws: CryptoError.self) { try Ed25519PrivateKey(pem: Self.rfcPublicPEM) }
        #expect(throws: CryptoError.self) { try Ed25519PublicKey(pem: Self.rfcPrivatePEM) }
        #expect(throws: CryptoError.notEd25519(found: "EC")) { try Ed25519PublicKey(pem: Self.p256PublicPEM) }
        #expect(throws: CryptoError.invalidLength(what: "an Ed25519 public key", expected: 32, actual: 31)) {
            try Ed25519PublicKey(rawRepresentation: [UInt8](repeating: 1, count: 31))
        }
        #expect(throws: CryptoError.self) { try Ed25519PrivateKey(rawRepresentation: []) }
    }

    @Test func printingAPrivateKeyShowsNoKeyMaterial() throws {
        let key = try Ed25519PrivateKey(rawRepresentation: [UInt8](hexString: Self.rfcSecret)!)
        let shown = "\(key) \(String(reflecting: key))"
        var dumped = ""
        dump(key, to: &dumped)
        for text in [shown, dumped] {
            #expect(!text.contains(Self.rfcSecret))
            #expect(!text.contains("MC4CAQAw"))
            #expect(!text.contains("157, 97"))  // the seed's first bytes as decimal array elements
        }
        #expect(shown.contains(key.publicKey.fingerprint))
        do {
            _ = try Ed25519PrivateKey(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            Issue.record("a broken key was accepted")
        } catch {
            #expect("\(error)".contains("PRIVATE KEY"))
        }
    }
}
