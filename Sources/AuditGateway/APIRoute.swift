/// The providers the gateway forwards to.
public enum Provider: String, Sendable {
    case anthropic
    case openai
}

/// One API of the contract's HTTP surface: which provider, which API name in the records, and how
/// the answer is metered.
public struct APIRoute: Sendable, Equatable {
    public var provider: Provider
    /// The name in `audit.exchanges.api`, e.g. `anthropic.messages`.
    public var api: String
    /// The provider's own path (`/v1/messages`), appended to the upstream base URL.
    public var upstreamPath: String
    public var method: String

    /// Resolves a request path (without its query string) to a route. `/anthropic/...` and
    /// `/openai/...` name the provider; plain `/v1/models` goes to Anthropic when the call carries
    /// `anthropic-version`, else to OpenAI. Anything else is not forwarded.
    public static func resolve(method: String, path: String, hasAnthropicVersion: Bool) -> APIRoute? {
        var provider: Provider?
        var rest = Substring(path)
        if rest.hasPrefix("/anthropic/") {
            provider = .anthropic
            rest = rest.dropFirst("/anthropic".count)
        } else if rest.hasPrefix("/openai/") {
            provider = .openai
            rest = rest.dropFirst("/openai".count)
        }
        // Trailing slashes are not part of the providers' paths.
        while rest.count > 1 && rest.hasSuffix("/") { rest = rest.dropLast() }
        switch (method, rest) {
        case ("POST", "/v1/messages") where provider != .openai:
            return APIRoute(provider: .anthropic, api: "anthropic.messages", upstreamPath: "/v1/messages", method: method)
        case ("POST", "/v1/messages/count_tokens") where provider != .openai:
            return APIRoute(provider: .anthropic, api: "anthropic.count_tokens", upstreamPath: "/v1/messages/count_tokens", method: method)
        case ("POST", "/v1/chat/completions") where provider != .anthropic:
            return APIRoute(provider: .openai, api: "openai.chat_completions", upstreamPath: "/v1/chat/completions", method: method)
        case ("POST", "/v1/responses") where provider != .anthropic:
            return APIRoute(provider: .openai, api: "openai.responses", upstreamPath: "/v1/responses", method: method)
        case ("POST", "/v1/embeddings") where provider != .anthropic:
            return APIRoute(provider: .openai, api: "openai.embeddings", upstreamPath: "/v1/embeddings", method: method)
        case ("GET", "/v1/models"):
            let chosen = provider ?? (hasAnthropicVersion ? .anthropic : .openai)
            return APIRoute(provider: chosen, api: "\(chosen.rawValue).models", upstreamPath: "/v1/models", method: method)
        default:
            return nil
        }
    }

    /// The provider whose error shape a refused call gets: the one its path names, else a guess from
    /// the path and headers (Anthropic for `/v1/messages…` or when `anthropic-version` is present).
    public static func errorShape(path: String, hasAnthropicVersion: Bool) -> Provider {
        if path.hasPrefix("/anthropic/") { return .anthropic }
        if path.hasPrefix("/openai/") { return .openai }
        if path.hasPrefix("/v1/messages") || hasAnthropicVersion { return .anthropic }
        return .openai
    }
}
