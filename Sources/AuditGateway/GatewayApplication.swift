import AsyncHTTPClient
import AuditGateConfig
import AuditJournal
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Builds the gateway's application; the test seam too: tests build the same app on port 0.
public enum GatewayApplication {
    public static func build(
        settings: GatewaySettings, journal: Journal, clients: UpstreamClients, metrics: GatewayMetrics = GatewayMetrics(),
        logger: Logger, port: Int? = nil, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: GatewayRequestContext.self)
        let proxy = ProxyHandler(settings: settings, journal: journal, clients: clients, metrics: metrics, logger: logger)
        let auth = settings.configuration.auth

        /// `/healthz` is open under `all_except_health`; under `strict` every path wants a key.
        @Sendable func guarded(_ request: Request, openUnder modes: Set<GatewayConfiguration.Auth.Mode>) -> Response? {
            guard !modes.contains(auth.mode) else { return nil }
            if case .failure(let error) = proxy.identify(request) {
                return proxy.errorResponse(error, shape: .openai, requestID: "-")
            }
            return nil
        }

        router.get("/healthz") { request, _ -> Response in
            if let refusal = guarded(request, openUnder: [.off, .allExceptHealth]) { return refusal }
            return json(.ok, "{\"status\":\"ok\"}")
        }
        router.get("/readyz") { request, _ -> Response in
            if let refusal = guarded(request, openUnder: [.off]) { return refusal }
            let status = journal.status
            if let reason = status.refusalReason {
                return json(.serviceUnavailable, "{\"status\":\"unavailable\",\"reason\":\"\(GatewayError.jsonEscape(reason))\",\"durability\":\"\(status.durability.rawValue)\"}")
            }
            return json(.ok, "{\"status\":\"ready\",\"durability\":\"\(status.durability.rawValue)\",\"store_reachable\":\(status.storeReachable),\"backlog\":\(status.backlog)}")
        }
        router.get("/metrics") { request, _ -> Response in
            if let refusal = guarded(request, openUnder: [.off]) { return refusal }
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.render(journal: journal.status))))
        }
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete, .head, .options] {
            router.on("**", method: method) { request, context in try await proxy.handle(request, context: context) }
        }

        let server = settings.configuration.server
        return Application(
            router: router,
            configuration: .init(address: .hostname(server.host, port: port ?? server.port), serverName: "AuditGate"),
            onServerRunning: onServerRunning,
            logger: logger)
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
