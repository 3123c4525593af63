#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Address checks for `server.host`.
enum NetworkAddress {
    /// True for addresses only this machine can reach: `localhost`, 127.0.0.0/8, `::1` (in any
    /// spelling, with or without brackets) and IPv4-mapped `::ffff:127.x.x.x`.
    ///
    /// Parsed with `inet_pton` rather than by prefix, so `127.0.0.1.example.com` (a DNS name
    /// anyone can register) and `0:0:0:0:0:0:0:1` are judged correctly.
    static func isLoopback(_ host: String) -> Bool {
        var host = host
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.lowercased() == "localhost" || host.lowercased() == "localhost." { return true }

        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { $0[0] } == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
            let mapped = bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff
            return mapped && bytes[12] == 127
        }
        return false
    }

    /// This machine's host name, the default `audit.chain_id`; "auditgate" if it cannot be had.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "auditgate" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "auditgate" : name
    }
}
