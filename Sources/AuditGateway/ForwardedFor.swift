import AuditGateConfig
import NIOHTTP1

/// Who the client is behind a load balancer, and what the provider is told about it.
///
/// `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are whatever a client writes, so they are believed
/// only from a peer in `server.trusted_proxies`; then the chain is read from the right, past every
/// trusted hop, to the first address no trusted proxy is (RFC 7239 §7.4; nginx's `real_ip_recursive`).
/// Upstream, the client's own versions are never passed on: the gateway sends one `X-Forwarded-For`,
/// the believed chain with the peer appended, or just the peer.
enum ForwardedFor {
    /// The headers a client may use to claim an address; never forwarded as received.
    static let claimHeaders: Set<String> = ["x-forwarded-for", "forwarded", "x-real-ip"]

    /// The address to record as `client_ip`.
    static func clientAddress(peer: String?, headers: HTTPHeaders, server: GatewayConfiguration.Server) -> String? {
        guard let peer, server.isTrustedProxy(peer) else { return peer }
        var current = peer
        for hop in chain(headers).reversed() {
            guard CIDR.addressBytes(hop) != nil else { return current }  // garbage: stop at the last hop that is known
            current = hop
            if !server.isTrustedProxy(hop) { return hop }
        }
        return current
    }

    /// The `X-Forwarded-For` value to send upstream.
    static func upstreamValue(peer: String?, headers: HTTPHeaders, server: GatewayConfiguration.Server) -> String? {
        guard let peer else { return nil }
        guard server.isTrustedProxy(peer) else { return peer }
        let believed = chain(headers).filter { CIDR.addressBytes($0) != nil }
        return (believed + [peer]).joined(separator: ", ")
    }

    /// The addresses a request claims, leftmost (the original client) first: `X-Forwarded-For`, else
    /// the `for=` of `Forwarded`, else `X-Real-IP`. Ports and brackets removed.
    static func chain(_ headers: HTTPHeaders) -> [String] {
        let forwardedFor = headers[canonicalForm: "x-forwarded-for"].map { String($0) }
        if !forwardedFor.isEmpty { return forwardedFor.map { strip($0) } }
        var hops: [String] = []
        for element in headers[canonicalForm: "forwarded"] {
            for pair in element.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, parts[0].trimmingSpaces().lowercased() == "for" else { continue }
                hops.append(strip(String(parts[1])))
            }
        }
        if !hops.isEmpty { return hops }
        return headers.first(name: "x-real-ip").map { [strip($0)] } ?? []
    }

    /// `"[2001:db8::1]:4711"` → `2001:db8::1`, `192.0.2.1:80` → `192.0.2.1`.
    static func strip(_ hop: String) -> String {
        var text = hop.trimmingSpaces()
        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = String(text.dropFirst().dropLast()) }
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") { return String(text[text.index(after: text.startIndex)..<close]) }
        if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") { return String(text[..<colon]) }
        return text
    }
}
