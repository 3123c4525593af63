import AuditCore

/// New client keys, for `auditgate keys new`.
///
/// A key is `agk_` and 32 random bytes in lower-case hex: 256 bits, so hashing it once with
/// SHA-256 (no salt, no stretching) is safe, and the prefix lets secret scanners recognise a
/// leaked key. The configuration holds only the SHA-256; the key itself is shown once.
public enum ClientKeyGenerator {
    /// Every client key starts with this.
    public static let prefix = "agk_"

    /// A new key from the system's cryptographically secure generator.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return generate(using: &generator)
    }

    /// A new key from `generator`; tests pass a seeded one, everything else uses `generate()`.
    public static func generate(using generator: inout some RandomNumberGenerator) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        for _ in 0..<4 {
            let word = generator.next()
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return prefix + bytes.hexString
    }

    /// The SHA-256 of a key as the configuration stores it: 64 lower-case hex characters.
    public static func sha256(of key: String) -> String {
        SHA256.hash(key).hexString
    }

    /// The list item to paste under `auth.keys`, indented for the layout of the example
    /// configuration (`auth:` at column 1, `keys:` at 3, items at 5). It holds only the key's
    /// SHA-256, user and team; user and team are double-quoted so any name is valid YAML.
    public static func configurationStanza(forKey key: String, user: String, team: String) -> String {
        """
            - key_sha256: "\(sha256(of: key))"
              user: \(yamlQuoted(user))
              team: \(yamlQuoted(team))
        """
    }

    /// A YAML double-quoted scalar: backslash, quote and control characters escaped.
    static func yamlQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
