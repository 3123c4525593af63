/// Which headers cross the gateway. Everything passes except the client's credentials (the provider
/// key replaces them), hop-by-hop headers, and what the gateway sets itself.
public enum HeaderPolicy {
    /// Never forwarded upstream: hop-by-hop (RFC 9110 §7.6.1), the client's credentials, cookies,
    /// headers recomputed for the upstream connection, and `Expect` (the gateway has the whole body
    /// before it calls the provider).
    static let droppedRequestHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authorization", "proxy-authenticate", "host", "content-length", "authorization", "x-api-key",
        "x-goog-api-key", "cookie", "accept-encoding", "expect",
    ]

    /// Not returned to the client: hop-by-hop and framing, which the gateway's server sets itself.
    static let droppedResponseHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "set-cookie",
    ]

    public static func forwardsRequestHeader(_ lowercasedName: String) -> Bool {
        !droppedRequestHeaders.contains(lowercasedName)
    }

    public static func returnsResponseHeader(_ lowercasedName: String) -> Bool {
        !droppedResponseHeaders.contains(lowercasedName)
    }

    /// The client's credential, from any of the four accepted forms.
    public static func clientCredential(authorization: String?, xAPIKey: String?, xGoogAPIKey: String?) -> String? {
        if let authorization, !authorization.isEmpty {
            let trimmed = authorization.trimmingSpaces()
            if trimmed.lowercased().hasPrefix("bearer ") {
                return String(trimmed.dropFirst(7)).trimmingSpaces()
            }
            return trimmed
        }
        if let xAPIKey, !xAPIKey.isEmpty { return xAPIKey.trimmingSpaces() }
        if let xGoogAPIKey, !xGoogAPIKey.isEmpty { return xGoogAPIKey.trimmingSpaces() }
        return nil
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while slice.first == " " || slice.first == "\t" { slice = slice.dropFirst() }
        while slice.last == " " || slice.last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
