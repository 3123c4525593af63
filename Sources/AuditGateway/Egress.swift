import AuditGateConfig
import Foundation

/// Whether the gateway reaches a provider directly or through the corporate proxy (the connections
/// themselves are `UpstreamConnector`'s).
public enum Egress {
    /// The proxy for one upstream: `egress.proxy`, else `HTTPS_PROXY`/`HTTP_PROXY` (by the upstream's
    /// scheme), unless `NO_PROXY` names the upstream's host.
    public static func proxy(for upstream: URL, configured: String?, environment: [String: String]) -> (host: String, port: Int)? {
        func env(_ name: String) -> String? {
            let value = environment[name] ?? environment[name.lowercased()]
            return value?.isEmpty == false ? value : nil
        }
        let isHTTPS = upstream.scheme?.lowercased() == "https"
        guard let text = configured ?? (isHTTPS ? env("HTTPS_PROXY") : nil) ?? env("HTTP_PROXY") else { return nil }
        if configured == nil, let noProxy = env("NO_PROXY"), let host = upstream.host?.lowercased(), bypasses(host: host, noProxy: noProxy) {
            return nil
        }
        let withScheme = text.contains("://") ? text : "http://" + text
        guard let url = URL(string: withScheme), let host = url.host else { return nil }
        return (host, url.port ?? (url.scheme == "https" ? 443 : 80))
    }

    /// `NO_PROXY` semantics as curl has them: `*`, exact hosts, and domain suffixes (`.corp` or `corp`).
    static func bypasses(host: String, noProxy: String) -> Bool {
        for entry in noProxy.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !entry.isEmpty {
            if entry == "*" { return true }
            let bare = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            let hostOnly = bare.split(separator: ":").first.map(String.init) ?? bare
            if host == hostOnly || host.hasSuffix("." + hostOnly) { return true }
        }
        return false
    }
}
