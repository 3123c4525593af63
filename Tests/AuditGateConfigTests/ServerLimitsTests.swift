import Testing

@testable import AuditGateConfig

@Suite("Server limits and trusted proxies")
struct ServerLimitsTests {
    @Test("Defaults: no trusted proxy, 10,000 connections, 512 MiB of request bodies")
    func defaults() throws {
        let server = try parse(minimalYAML).server
        #expect(server.trustedProxies.isEmpty)
        #expect(server.maxConnections == 10_000)
        #expect(server.maxInflightRequestBytes == 512 << 20)
        #expect(!server.isTrustedProxy("127.0.0.1"))
    }

    @Test("Trusted proxies are address ranges, IPv4 and IPv6, matched by prefix")
    func trustedProxies() throws {
        let server = try parse(withDatabase("""
            server:
              trusted_proxies: [10.0.0.0/8, "192.168.1.7", "fd00::/8"]
              max_connections: 50
              max_inflight_request_bytes: 1048576
            """)).server
        #expect(server.trustedProxies.map(\.description) == ["10.0.0.0/8", "192.168.1.7", "fd00::/8"])
        #expect(server.isTrustedProxy("10.200.3.4"))
        #expect(server.isTrustedProxy("::ffff:10.1.2.3"), "an IPv4 peer on a dual-stack socket")
        #expect(!server.isTrustedProxy("11.0.0.1"))
        #expect(server.isTrustedProxy("192.168.1.7") && !server.isTrustedProxy("192.168.1.8"))
        #expect(server.isTrustedProxy("fdab::1") && !server.isTrustedProxy("fe80::1"))
        #expect(!server.isTrustedProxy("not an address"))
        #expect(server.maxConnections == 50 && server.maxInflightRequestBytes == 1_048_576)
    }

    @Test("A range that is not one, and limits that are not positive, are named")
    func badValues() {
        let found = issues(withDatabase("""
            server:
              trusted_proxies: [10.0.0.0/33, lb.example.com]
              max_connections: 0
              max_inflight_request_bytes: -1
            """))
        expectIssue(found, at: "server.trusted_proxies[0]", containing: "10.0.0.0/33")
        expectIssue(found, at: "server.trusted_proxies[1]", containing: "must be an IP address or a range")
        expectIssue(found, at: "server.max_connections", containing: "greater than 0")
        expectIssue(found, at: "server.max_inflight_request_bytes", containing: "greater than 0")
    }

    @Test("CIDR prefixes clear the bits past them")
    func cidr() throws {
        let range = try #require(CIDR("10.1.2.3/16"))
        #expect(range.network == [10, 1, 0, 0])
        #expect(range.contains("10.1.255.255") && !range.contains("10.2.0.0"))
        #expect(try #require(CIDR("0.0.0.0/0")).contains("203.0.113.9"))
        #expect(CIDR("2001:db8::/129") == nil && CIDR("1.2.3.4/-1") == nil && CIDR("") == nil)
    }
}
