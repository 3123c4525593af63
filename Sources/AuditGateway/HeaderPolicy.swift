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

    /// Not returned to the client: hop-by-hop and framing, which the gateway's server sets itself, and
    /// credentials a provider might echo (the provider key must never reach a client).
    static let droppedResponseHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "set-cookie", "x-api-key", "authorization", "proxy-authorization", "x-goog-api-key",
    ]

    public static func forwardsRequestHeader(_ lowercasedName: String) -> Bool {
        !droppedRequestHeaders.contains(lowercasedName)
    }

    public static func returnsResponseHeader(_ lowercasedName: String) -> Bool {
        !droppedResponseHeaders.contains(lowercasedName)
    }

    /// The header names a message's `Connection` header lists: hop-by-hop for that message too
    /// (RFC 9110 §7.6.1), so they are dropped in both directions. Lower-cased; empty when there are none.
    public static func connectionListed(_ headers: some Sequence<(name: String, value: String)>) -> Set<String> {
        var names = Set<String>()
        for (name, value) in headers where name.lowercased() == "connection" {
            // The usual case, `keep-alive` or `close` alone: both are dropped anyway.
            if value.utf8.count <= 10, ["keep-alive", "close"].contains(value.lowercased()) { continue }
            for token in value.split(separator: ",") {
                let trimmed = token.trimmingSpaces().lowercased()
                if !trimmed.isEmpty { names.insert(trimmed) }
            }
        }
        return names
    }

    /// The client's credential from the accepted forms, or why none can be used.
    public enum Credential: Equatable {
        case none
        case key(String)
        /// Two forms carry different keys: which one the caller meant cannot be told, so neither is used.
        case conflicting
    }

    /// The client's credential, from any of the four accepted forms. The same key in several forms is
    /// one credential (Claude Code's `apiKeyHelper` sends it as both `x-api-key` and `Authorization`).
    public static func clientCredential(
        authorization: String?, xAPIKey: String?, xGoogAPIKey: String?, query: [String] = []
    ) -> Credential {
        var found: String?
        for candidate in [authorization.map(bearerToken), xAPIKey?.trimmingSpaces(), xGoogAPIKey?.trimmingSpaces()] + query {
            guard let candidate, !candidate.isEmpty else { continue }
            if let found, found != candidate { return .conflicting }
            found = candidate
        }
        return found.map { .key($0) } ?? .none
    }

    static func bearerToken(_ authorization: String) -> String {
        let trimmed = authorization.trimmingSpaces()
        if trimmed.lowercased().hasPrefix("bearer ") { return String(trimmed.dropFirst(7)).trimmingSpaces() }
        return trimmed
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
