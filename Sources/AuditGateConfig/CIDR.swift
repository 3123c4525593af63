#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An address range (`10.0.0.0/8`, `2001:db8::/32`, or one address), as `server.trusted_proxies` lists
/// them. IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`) match IPv4 ranges, since a dual-stack socket
/// reports IPv4 peers that way.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 (IPv6), with the bits past the prefix cleared.
    public let network: [UInt8]
    public let prefixLength: Int
    public let description: String

    /// Parses `ADDRESS` or `ADDRESS/PREFIX`; nil when it is neither.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = CIDR.addressBytes(String(parts[0])) else { return nil }
        let bits = bytes.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...bits).contains(parsed) else { return nil }
            prefix = parsed
        }
        network = CIDR.masked(bytes, prefix)
        prefixLength = prefix
        description = text
    }

    /// True when `address` (an IP address in text form) lies in the range.
    public func contains(_ address: String) -> Bool {
        guard var bytes = CIDR.addressBytes(address) else { return false }
        if bytes.count == 16, network.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            bytes = Array(bytes[12...])
        }
        guard bytes.count == network.count else { return false }
        return CIDR.masked(bytes, prefixLength) == network
    }

    /// The 4 or 16 bytes of an IP address (brackets and an IPv6 zone allowed), or nil.
    public static func addressBytes(_ text: String) -> [UInt8]? {
        var host = text.trimmingCharacters(in: " \t")
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if let zone = host.firstIndex(of: "%") { host = String(host[..<zone]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func masked(_ bytes: [UInt8], _ prefix: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let keep = max(0, min(8, prefix - index * 8))
            return keep == 8 ? byte : byte & ~UInt8(truncatingIfNeeded: 0xFF >> keep)
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
