import COpenSSL

/// Random bytes from OpenSSL's generator (a DRBG seeded from the kernel: no system call per use, and
/// under OpenSSL's FIPS provider when the operator runs one).
public enum SecureRandom {
    /// Two random 64-bit words; nil only if OpenSSL's generator is not seeded.
    public static func words() -> (UInt64, UInt64)? {
        var random = (UInt64(0), UInt64(0))
        let ok = withUnsafeMutableBytes(of: &random) { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), 16) }
        return ok == 1 ? random : nil
    }
}
