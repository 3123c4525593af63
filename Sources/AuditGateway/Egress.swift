import AsyncHTTPClient
import AuditGateConfig
import Foundation
import NIOCore
import NIOSSL

/// How the gateway reaches a provider: directly or through the corporate proxy (HTTP CONNECT), with
/// the corporate root CA added to the system's trust roots when `egress.ca_file` is set.
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

    /// An HTTP client for one upstream. Decompression stays off (bytes pass unchanged); the read
    /// timeout bounds the idle time between chunks, not a stream's length.
    public static func makeClient(
        for upstream: URL, configuration: GatewayConfiguration, environment: [String: String], idleTimeout: TimeAmount
    ) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile = configuration.egress.caFile {
            tls.additionalTrustRoots = [.file(caFile)]
        }
        var clientConfiguration = HTTPClient.Configuration(
            tlsConfiguration: tls, timeout: .init(connect: .seconds(10), read: idleTimeout), decompression: .disabled)
        if let proxy = proxy(for: upstream, configured: configuration.egress.proxy, environment: environment) {
            clientConfiguration.proxy = .server(host: proxy.host, port: proxy.port)
        }
        // AsyncHTTPClient queues a request once this many HTTP/1 connections to the provider are busy.
        // A stream holds its connection for minutes, so a low limit would make callers wait behind
        // other callers' streams (bench/streams.sh holds 2,000 open); the provider's own limits apply.
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16_384)
        // No request spans: with no tracer bootstrapped, the no-op spans still cost each call an
        // attribute pass over its URL and headers (about 2 % of the gateway's CPU, docs/benchmarks.md).
        clientConfiguration.tracing.tracer = nil
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }
}
