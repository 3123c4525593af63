import AsyncHTTPClient
import AuditCore
import AuditGateConfig
import AuditJournal
import AuditMetering
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// Everything the per-call path needs, built once at start.
public struct GatewaySettings: Sendable {
    public var configuration: GatewayConfiguration
    public var bodies: BodyRecorder
    /// Longest wait for the provider's response head.
    public var firstByteTimeout: TimeAmount
    /// Assembled answer text kept for the record, at most.
    public var maxAssembledText: Int = 1 << 20

    public init(configuration: GatewayConfiguration, bodies: BodyRecorder, firstByteTimeout: TimeAmount) {
        self.configuration = configuration
        self.bodies = bodies
        self.firstByteTimeout = firstByteTimeout
    }
}

/// Thrown from a response body when the provider's answer broke off: the server then aborts the
/// client's connection instead of ending the body cleanly.
struct UpstreamBrokeOff: Error {
    var reason: String
}

/// One HTTP client per provider, each with its own egress decision (a `NO_PROXY` entry may cover one
/// provider and not the other).
public struct UpstreamClients: Sendable {
    public let anthropic: HTTPClient
    public let openai: HTTPClient

    public init(anthropic: HTTPClient, openai: HTTPClient) {
        self.anthropic = anthropic
        self.openai = openai
    }

    func client(for provider: Provider) -> HTTPClient { provider == .anthropic ? anthropic : openai }

    public func shutdown() async {
        try? await anthropic.shutdown()
        try? await openai.shutdown()
    }
}

/// One proxied call: identify, classify, record, forward, stream back with a metering tap, record.
public struct ProxyHandler: Sendable {
    public let settings: GatewaySettings
    public let journal: Journal
    public let clients: UpstreamClients
    public let metrics: GatewayMetrics
    public let logger: Logger

    public init(settings: GatewaySettings, journal: Journal, clients: UpstreamClients, metrics: GatewayMetrics, logger: Logger) {
        self.settings = settings
        self.journal = journal
        self.clients = clients
        self.metrics = metrics
        self.logger = logger
    }

    var configuration: GatewayConfiguration { settings.configuration }

    /// Who called: resolved from the credential, or anonymous when auth is off.
    struct Caller {
        var userID: String?
        var teamID: String?
        var keyID: String?
    }

    public func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let requestID = Self.newRequestID()
        let path = request.uri.path
        let hasAnthropicVersion = request.headers[HTTPField.Name("anthropic-version")!] != nil
        let shape = APIRoute.errorShape(path: path, hasAnthropicVersion: hasAnthropicVersion)
        var draft = RecordDraft(kind: .request, requestID: requestID)
        draft.clientIP = context.clientIP
        draft.method = request.method.rawValue
        draft.path = request.uri.query.map { path + "?" + $0 } ?? path

        // 1. Identity. An unknown key is refused and audited, never forwarded.
        let caller: Caller
        switch identify(request) {
        case .success(let found):
            caller = found
        case .failure(let error):
            return await refuse(error, draft: draft, shape: shape, started: started)
        }
        draft.userID = caller.userID
        draft.teamID = caller.teamID
        draft.keyID = caller.keyID

        // 2. Route: any other path is not forwarded.
        guard let route = APIRoute.resolve(method: request.method.rawValue, path: path, hasAnthropicVersion: hasAnthropicVersion)
        else {
            return await refuse(.notFound(path), draft: draft, shape: shape, started: started)
        }
        draft.api = route.api
        draft.provider = route.provider.rawValue

        // 3. The body, bounded.
        let limit = configuration.server.maxBodyBytes
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            return await refuse(.tooLarge(limit), draft: draft, shape: route.provider, started: started)
        }
        var body: [UInt8] = []
        do {
            var buffer = try await request.body.collect(upTo: limit)
            body = buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch is NIOTooManyBytesError {
            return await refuse(.tooLarge(limit), draft: draft, shape: route.provider, started: started)
        } catch {
            return await refuse(.badRequest("the request body could not be read"), draft: draft, shape: route.provider, started: started)
        }

        // 4. Classify: model, stream, end user. Malformed JSON is the caller's error.
        var facts = RequestFacts()
        if request.method == .post {
            guard let parsed = RequestFacts(requestBody: body) else {
                return await refuse(.badRequest("the request body is not valid JSON"), draft: draft, shape: route.provider, started: started)
            }
            facts = parsed
        }
        draft.model = facts.model
        draft.stream = facts.stream
        draft.endUser = facts.endUser
        if !body.isEmpty { settings.bodies.record(body, into: &draft) }

        // 5. The request record is durable before anything goes upstream.
        do {
            try await journal.append(draft)
        } catch {
            metrics.storeFailure()
            if configuration.audit.onStoreFailure == .reject {
                logger.error("call refused: no durable record possible", metadata: ["request_id": "\(requestID)", "reason": "\(error)"])
                metrics.call(api: route.api, status: 503, outcome: "gateway_error")
                return errorResponse(.unavailable("AuditGate cannot record this call right now, so it was not forwarded: \(error)"), shape: route.provider, requestID: requestID)
            }
            logger.critical("forwarding WITHOUT a durable record (on_store_failure: continue)", metadata: ["request_id": "\(requestID)", "reason": "\(error)"])
        }

        // 6. Forward.
        var upstreamBody = body
        var dropUsageChunk = false
        if route.api == "openai.chat_completions", facts.stream == true, !facts.includeUsage,
            let rewritten = IncludeUsageRewriter.addIncludeUsage(toRequestBody: body)
        {
            upstreamBody = rewritten
            dropUsageChunk = true
        }
        let upstreamRequest = makeUpstreamRequest(request, route: route, body: upstreamBody)
        let response: HTTPClientResponse
        do {
            // No logger: AsyncHTTPClient's own logs are debug-level detail, and a logger passed in is
            // given per-request metadata on every call.
            response = try await clients.client(for: route.provider).execute(upstreamRequest, timeout: settings.firstByteTimeout)
        } catch {
            let gatewayError: GatewayError =
                (error as? HTTPClientError) == .deadlineExceeded || (error as? HTTPClientError) == .readTimeout
                ? .gatewayTimeout("the provider did not answer within \(settings.firstByteTimeout.nanoseconds / 1_000_000_000) s")
                : .badGateway("the provider could not be reached (\(Self.describe(error)))")
            var closing = RecordDraft(kind: .response, requestID: requestID)
            closing.statusCode = gatewayError.status
            closing.outcome = Outcome(rawValue: gatewayError.outcome)
            closing.latencyMs = Self.milliseconds(since: started)
            closing.detail = "{\"error\":\"\(GatewayError.jsonEscape(gatewayError.message))\"}"
            await appendResponse(closing, api: route.api)
            return errorResponse(gatewayError, shape: route.provider, requestID: requestID)
        }
        let ttfb = Self.milliseconds(since: started)

        // 7. Stream the answer back as it arrives; the tap meters on the side.
        var headers = HTTPFields()
        for header in response.headers where HeaderPolicy.returnsResponseHeader(header.name.lowercased()) {
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
        }
        headers.append(HTTPField(name: HTTPField.Name("x-auditgate-request-id")!, value: requestID))
        let status = Int(response.status.code)
        let isStream = response.headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
        let meteredAPI = MeteredAPI(rawValue: route.api.hasSuffix(".models") ? "models" : route.api) ?? .models
        let settings = self.settings
        let handler = self
        let model = facts.model
        let dropsUsageChunk = dropUsageChunk
        let team = caller.teamID
        let responseBody = ResponseBody { writer in
            var tap = ResponseTap(api: meteredAPI, isStream: isStream, dropUsageChunk: dropsUsageChunk, maxText: settings.maxAssembledText)
            var clientGone = false
            var upstreamFailure: String?
            // The last bytes of an answer are held until its response record is durable, so a client never
            // holds a complete answer whose record a crash could still lose. A stream's events go out as
            // they come (only the end of the chunked body waits); a plain answer is held back by one chunk,
            // since with a Content-Length its last chunk already completes it for the client.
            var heldBack: ByteBuffer?
            func send(_ buffer: ByteBuffer) async {
                guard !clientGone, buffer.readableBytes > 0 else { return }
                do { try await writer.write(buffer) } catch { clientGone = true }
            }
            do {
                for try await chunk in response.body {
                    let out = chunk.readableBytesView.withContiguousStorageIfAvailable { tap.feed(UnsafeRawBufferPointer($0)) }
                        ?? tap.feed(Array(chunk.readableBytesView))
                    let outgoing: ByteBuffer
                    switch out {
                    case .same: outgoing = chunk
                    case .bytes(let bytes): outgoing = ByteBuffer(bytes: bytes)
                    }
                    // Nothing to send (a dropped usage chunk): an empty buffer must not release the held one.
                    guard outgoing.readableBytes > 0 else { continue }
                    if isStream {
                        await send(outgoing)
                        continue
                    }
                    if let previous = heldBack { await send(previous) }
                    heldBack = outgoing
                }
            } catch {
                upstreamFailure = Self.describe(error)
            }
            let tail = tap.finish()

            var closing = RecordDraft(kind: .response, requestID: requestID)
            let usage = tap.usage
            closing.statusCode = status
            closing.model = usage.model ?? model
            closing.inputTokens = usage.inputTokens
            closing.outputTokens = usage.outputTokens
            closing.cacheReadTokens = usage.cacheReadTokens
            closing.cacheWriteTokens = usage.cacheWriteTokens
            closing.latencyMs = Self.milliseconds(since: started)
            closing.ttfbMs = ttfb
            closing.outcome = Self.outcome(status: status, upstreamFailure: upstreamFailure, streamError: usage.streamError, clientGone: clientGone)
            var detail: [String] = []
            if let upstreamFailure { detail.append("\"upstream_failure\":\"\(GatewayError.jsonEscape(upstreamFailure))\"") }
            if let streamError = usage.streamError { detail.append("\"stream_error\":\"\(GatewayError.jsonEscape(streamError))\"") }
            if clientGone { detail.append("\"client_disconnected\":true") }
            if let providerRequestID = response.headers.first(name: "request-id") ?? response.headers.first(name: "x-request-id") {
                detail.append("\"provider_request_id\":\"\(GatewayError.jsonEscape(providerRequestID))\"")
            }
            if !detail.isEmpty { closing.detail = "{" + detail.joined(separator: ",") + "}" }
            if isStream {
                settings.bodies.record(text: usage.text, into: &closing)
            } else {
                settings.bodies.record(tap.collectedBody, into: &closing)
            }
            await handler.appendResponse(closing, api: route.api, team: team, usage: usage)

            if let heldBack { await send(heldBack) }
            if !tail.isEmpty { await send(ByteBuffer(bytes: tail)) }
            // A clean end only for a clean answer: when the provider broke off, the client's connection
            // is broken off too, so its SDK raises instead of taking a truncated answer as whole.
            if let upstreamFailure {
                if !clientGone { throw UpstreamBrokeOff(reason: upstreamFailure) }
            } else if !clientGone {
                try? await writer.finish(nil)
            }
        }
        return Response(status: .init(code: status), headers: headers, body: responseBody)
    }

    // MARK: - Pieces

    func identify(_ request: Request) -> Result<Caller, GatewayError> {
        let auth = configuration.auth
        if auth.mode == .off { return .success(Caller()) }
        let credential = HeaderPolicy.clientCredential(
            authorization: request.headers[.authorization], xAPIKey: request.headers[HTTPField.Name("x-api-key")!],
            xGoogAPIKey: request.headers[HTTPField.Name("x-goog-api-key")!])
        guard let credential else {
            return .failure(.unauthorized("no API key: send your AuditGate key as x-api-key or Authorization: Bearer"))
        }
        guard let key = auth.clientKey(forCredential: credential) else {
            return .failure(.unauthorized("invalid API key for this AuditGate gateway"))
        }
        return .success(Caller(userID: key.user, teamID: key.team, keyID: key.keyID))
    }

    func makeUpstreamRequest(_ request: Request, route: APIRoute, body: [UInt8]) -> HTTPClientRequest {
        let upstream = route.provider == .anthropic ? configuration.upstreams.anthropic : configuration.upstreams.openai
        var base = upstream.baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        var url = base + route.upstreamPath
        if let query = request.uri.query, !query.isEmpty { url += "?" + query }
        var outgoing = HTTPClientRequest(url: url)
        outgoing.method = HTTPMethod(rawValue: route.method)
        for field in request.headers where HeaderPolicy.forwardsRequestHeader(field.name.canonicalName) {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        if let key = upstream.apiKey {
            switch route.provider {
            case .anthropic: outgoing.headers.replaceOrAdd(name: "x-api-key", value: key)
            case .openai: outgoing.headers.replaceOrAdd(name: "authorization", value: "Bearer \(key)")
            }
        }
        // Identity encoding, so the tap can read usage; the client gets the bytes unchanged.
        outgoing.headers.replaceOrAdd(name: "accept-encoding", value: "identity")
        if request.method == .post {
            outgoing.body = .bytes(ByteBuffer(bytes: body))
        }
        return outgoing
    }

    /// Records a refused call (request and response records) and answers it in the provider's shape.
    func refuse(_ error: GatewayError, draft: RecordDraft, shape: Provider, started: ContinuousClock.Instant) async -> Response {
        var opening = draft
        opening.api = opening.api ?? "unknown"
        var closing = RecordDraft(kind: .response, requestID: draft.requestID)
        closing.statusCode = error.status
        closing.outcome = Outcome(rawValue: error.outcome)
        closing.latencyMs = Self.milliseconds(since: started)
        closing.detail = "{\"error\":\"\(GatewayError.jsonEscape(error.message))\"}"
        do {
            try await journal.append(opening)
            try await journal.append(closing)
        } catch {
            metrics.storeFailure()
            logger.error("could not record a refused call", metadata: ["request_id": "\(draft.requestID)", "reason": "\(error)"])
        }
        metrics.call(api: opening.api ?? "unknown", status: error.status, outcome: error.outcome)
        return errorResponse(error, shape: shape, requestID: draft.requestID)
    }

    func appendResponse(_ closing: RecordDraft, api: String, team: String? = nil, usage: MeteredUsage? = nil) async {
        do {
            try await journal.append(closing)
        } catch {
            metrics.storeFailure()
            logger.error("could not record a response", metadata: ["request_id": "\(closing.requestID)", "reason": "\(error)"])
        }
        metrics.call(api: api, status: closing.statusCode ?? 0, outcome: closing.outcome?.rawValue ?? "ok")
        if let latency = closing.latencyMs { metrics.latency(api: api, milliseconds: latency, ttfb: closing.ttfbMs) }
        if let usage { metrics.tokens(team: team, model: closing.model, input: usage.inputTokens, output: usage.outputTokens) }
    }

    func errorResponse(_ error: GatewayError, shape: Provider, requestID: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers.append(HTTPField(name: HTTPField.Name("x-auditgate-request-id")!, value: requestID))
        if error.status == 503 { headers.append(HTTPField(name: HTTPField.Name("retry-after")!, value: "5")) }
        return Response(
            status: .init(code: error.status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: error.body(for: shape))))
    }

    static func outcome(status: Int, upstreamFailure: String?, streamError: String?, clientGone: Bool) -> Outcome {
        if upstreamFailure != nil || streamError != nil { return .upstreamError }
        switch status {
        case 200..<300: return .ok
        case 400..<500 where status != 408 && status != 429: return .clientError
        default: return .upstreamError
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// `agw_` and 32 random hex digits (128 bits, as a UUID has), formatted without Foundation's
    /// string replacing, which cost 2.5 % of the gateway's CPU under load.
    static func newRequestID() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = hexDigits
        var bytes = Array("agw_".utf8)
        bytes.reserveCapacity(36)
        for _ in 0..<2 {
            var word = generator.next() as UInt64
            for _ in 0..<16 {
                bytes.append(digits[Int(word >> 60)])
                word <<= 4
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = ContinuousClock.now - start
        return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    }

    /// A short, secret-free description of a client error (never the URL's credentials or headers).
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return String(describing: type(of: error))
    }
}
