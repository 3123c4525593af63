import COpenSSL

/// SHA-256 through the system OpenSSL (libcrypto), so that regulated operators can run it under
/// OpenSSL's FIPS provider, and so the report tool builds in seconds (no crypto package to compile).
public struct SHA256: ~Copyable {
    private let context: OpaquePointer

    /// The algorithm, fetched from OpenSSL's providers once: `EVP_sha256()` makes OpenSSL 3 look it
    /// up again on every initialisation, and the gateway hashes several times per call.
    nonisolated(unsafe) static let algorithm: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil)

    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, Self.algorithm ?? EVP_sha256(), nil) == 1 else {
            fatalError("OpenSSL could not initialise SHA-256")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ string: String) {
        var string = string
        string.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// The 32-byte digest. The hasher is consumed.
    public consuming func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        digest.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        return digest
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    public static func hash(_ string: String) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(string)
        return hasher.finalize()
    }
}

/// SHA-256 of a body seen piece by piece, owned by copyable code (a struct that watches a stream):
/// the digest `SHA256` would give for the concatenated pieces, and how many bytes there were.
public final class IncrementalSHA256 {
    private let context: OpaquePointer
    private var digest: [UInt8]?
    public private(set) var count = 0

    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, SHA256.algorithm ?? EVP_sha256(), nil) == 1 else {
            fatalError("OpenSSL could not initialise SHA-256")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(digest == nil, "update after finalize")
        guard bytes.count > 0 else { return }
        count += bytes.count
        EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
    }

    /// The 32-byte digest; later calls return the same.
    public func finalize() -> [UInt8] {
        if let digest { return digest }
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        digest = out
        return out
    }
}

extension Array<UInt8> {
    /// Lower-case hexadecimal, as `Sequence.hexString`, without the generic path: called from other
    /// modules on a digest, the generic getter went through a protocol iterator byte by byte (a few
    /// µs per call on the gateway's path, where every record's detail holds a digest).
    public var hexString: String {
        withUnsafeBufferPointer { bytes in
            String(unsafeUninitializedCapacity: bytes.count * 2) { out in
                hexDigits.withUnsafeBufferPointer { digits in
                    for (index, byte) in bytes.enumerated() {
                        out[2 * index] = digits[Int(byte >> 4)]
                        out[2 * index + 1] = digits[Int(byte & 0x0f)]
                    }
                }
                return bytes.count * 2
            }
        }
    }
}

extension Sequence<UInt8> {
    /// Lower-case hexadecimal, the form every hash takes in the store, the docs and the packages.
    public var hexString: String {
        let digits = hexDigits
        var out = [UInt8]()
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    /// Parses lower- or upper-case hexadecimal; nil when the text is not an even run of hex digits.
    public init?(hexString: some StringProtocol) {
        let utf8 = Array(hexString.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self = bytes
    }
}

/// The digits of `hexString`, built once.
private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
