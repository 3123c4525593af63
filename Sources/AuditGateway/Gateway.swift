#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AuditCore
import AuditGateConfig
import AuditJournal
import AuditMetering
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Everything the per-call path needs, built once at start.
public struct GatewaySettings: Sendable {
    public var configuration: GatewayConfiguration
    public var bodies: BodyRecorder
    /// Longest wait for the provider's response head.
    public var firstByteTimeout: TimeAmount
    /// Assembled answer text kept for redaction, at most: more than the body recorder keeps, so that
    /// redaction sees past the edge where the kept copy is cut (a card number across it is still found).
    public var maxAssembledText: Int = (1 << 20) + (64 << 10)

    /// After the client left, how long the provider's answer is still read (`upstreams.drain_timeout_seconds`).
    public var drainTimeout: TimeAmount

    public init(configuration: GatewayConfiguration, bodies: BodyRecorder, firstByteTimeout: TimeAmount) {
        self.configuration = configuration
        self.bodies = bodies
        self.firstByteTimeout = firstByteTimeout
        drainTimeout = .seconds(Int64(configuration.upstreams.drainTimeoutSeconds))
    }
}

/// A request read whole (head and a body within `server.max_body_bytes`), as the server hands it over.
struct ReceivedRequest {
    var head: HTTPRequestHead
    /// The path without its query string, and the query string without its `?`.
    var path: Substring
    var query: Substring?
    var body: ByteBuffer?
    /// The body passed `server.max_body_bytes` (it was read and dropped).
    var bodyTooLarge: Bool
    var clientIP: String?

    /// Credentials given in the query string (`key=`, `api_key=`, or any value equal to a client key),
    /// already removed from `query`: they are neither forwarded nor recorded.
    var queryCredentials: [String] = []
    /// Who the head was admitted as (`Gateway.admit`), so the call is not identified twice.
    var admittedCaller: Caller?

    init(head: HTTPRequestHead, body: ByteBuffer?, bodyTooLarge: Bool, clientIP: String?, isClientKey: (String) -> Bool = { _ in false }) {
        self.head = head
        let uri = Substring(head.uri)
        if let mark = uri.firstIndex(of: "?") {
            path = uri[..<mark]
            let split = QueryCredentials.split(uri[uri.index(after: mark)...], isClientKey: isClientKey)
            query = split.query
            queryCredentials = split.credentials
        } else {
            path = uri
            query = nil
        }
        self.body = body
        self.bodyTooLarge = bodyTooLarge
        self.clientIP = clientIP
    }
}

/// Head values a record keeps (model, end user), at most `maxBytes` each: a 20 MB model name is
/// forwarded as sent, but recorded as its first 256 bytes and a marker with the length it had.
enum RecordedValue {
    static let maxBytes = 256
    /// The path with its query string: NIO's parser already bounds the head (80 KiB).
    static let maxPathBytes = 8192

    static func capped(_ value: String?) -> String? {
        guard let value, value.utf8.count > maxBytes else { return value }
        let kept = BodyRecorder.cut(value, limit: maxBytes).text
        return kept + "…[\(value.utf8.count) bytes]"
    }
}

/// Credentials in a query string (`?key=…`, as Google's API clients send them): accepted as a
/// credential form, and removed from what is forwarded and recorded, so a key never reaches the
/// provider or the store through the URL.
enum QueryCredentials {
    /// Parameter names that carry a key whatever their value.
    static let names: Set<Substring> = ["key", "api_key", "api-key", "apikey"]

    /// The query without its credential parameters (nil when nothing is left), and their values.
    static func split(_ query: Substring, isClientKey: (String) -> Bool) -> (query: Substring?, credentials: [String]) {
        guard !query.isEmpty else { return (query, []) }
        var kept: [Substring] = []
        var credentials: [String] = []
        for parameter in query.split(separator: "&", omittingEmptySubsequences: false) {
            let equals = parameter.firstIndex(of: "=")
            let name = equals.map { parameter[..<$0] } ?? parameter
            let rawValue = equals.map { parameter[parameter.index(after: $0)...] } ?? ""
            let value = percentDecoded(rawValue)
            if names.contains(Substring(percentDecoded(name).lowercased())) || (!value.isEmpty && isClientKey(value)) {
                if !value.isEmpty { credentials.append(value) }
            } else {
                kept.append(parameter)
            }
        }
        guard !credentials.isEmpty || kept.count != query.split(separator: "&", omittingEmptySubsequences: false).count else {
            return (query, [])
        }
        return (kept.isEmpty ? nil : Substring(kept.joined(separator: "&")), credentials)
    }

    static func percentDecoded(_ text: Substring) -> String {
        guard text.contains(where: { $0 == "%" || $0 == "+" }) else { return String(text) }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Who called: resolved from the credential, or anonymous when auth is off.
struct Caller {
    var userID: String?
    var teamID: String?
    var keyID: String?
}

/// A number of bytes shared by every connection on every loop, taken and given back under a lock.
final class ByteBudget: Sendable {
    let limit: Int
    private let used = NIOLockedValueBox(0)

    init(limit: Int) { self.limit = limit }

    /// Takes `bytes` if they fit under the limit.
    func reserve(_ bytes: Int) -> Bool {
        used.withLockedValue { used in
            guard used + bytes <= limit else { return false }
            used += bytes
            return true
        }
    }

    func release(_ bytes: Int) { used.withLockedValue { $0 -= bytes } }

    var inUse: Int { used.withLockedValue { $0 } }
}

/// A call the gateway will forward, once its request record is durable.
struct ForwardPlan {
    /// The request record.
    var draft: RecordDraft
    var route: APIRoute
    var caller: Caller
    var upstreamHead: HTTPRequestHead
    var upstreamBody: ByteBuffer?
    /// The gateway added `stream_options.include_usage`, so the extra usage chunk is not the client's.
    var dropUsageChunk: Bool
}

/// What the gateway does with a request.
enum CallDecision {
    /// Answered by the gateway itself, in `shape`'s error format; `draft` is its request record.
    case refuse(GatewayError, draft: RecordDraft, shape: Provider)
    case forward(ForwardPlan)
}

/// The gateway's per-call policy, independent of the sockets: who called, which route, what is
/// recorded, what goes upstream, and how refusals look. Shared by every connection on every loop.
public final class Gateway: Sendable {
    public let settings: GatewaySettings
    public let journal: Journal
    public let upstreams: Upstreams
    public let metrics: GatewayMetrics
    public let logger: Logger

    /// Request-body bytes held by all connections (`server.max_inflight_request_bytes`).
    let inflightRequestBytes: ByteBudget

    /// Forwarded calls in flight per event loop (each counter touched only on its loop).
    private let callsInFlight: [ObjectIdentifier: CallCounter]

    public init(
        settings: GatewaySettings, journal: Journal, upstreams: Upstreams, metrics: GatewayMetrics, logger: Logger,
        loops: any EventLoopGroup
    ) {
        self.settings = settings
        self.journal = journal
        self.upstreams = upstreams
        self.metrics = metrics
        self.logger = logger
        inflightRequestBytes = ByteBudget(limit: settings.configuration.server.maxInflightRequestBytes)
        var counters: [ObjectIdentifier: CallCounter] = [:]
        for loop in loops.makeIterator() { counters[ObjectIdentifier(loop)] = CallCounter() }
        callsInFlight = counters
        refusalTimer = NIOLockedValueBox(nil)
        // Summaries of a window are written when it closes, even if no refusal comes after it.
        let timer = loops.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in
            self?.flushRefusals()
        }
        refusalTimer.withLockedValue { $0 = timer }
    }

    /// Which refusals are recorded one by one and which only counted (`RefusalLedger`).
    private let refusals = NIOLockedValueBox(RefusalLedger())
    private let refusalTimer: NIOLockedValueBox<RepeatedTask?>

    /// Writes the summaries of refusal windows that have closed; with `final`, of every count (at
    /// shutdown, after the last call), and stops the timer.
    public func flushRefusals(final: Bool = false) {
        if final { refusalTimer.withLockedValue { $0?.cancel(); $0 = nil } }
        writeSummaries(refusals.withLockedValue { $0.flush(now: Self.wallSeconds(), force: final) })
    }

    static func wallSeconds() -> Int64 { Int64(time(nil)) }

    /// One exchange per summary: `api = 'refusals'`, its client address and status, and in the
    /// response record's detail the reason and how many refusals it stands for.
    private func writeSummaries(_ summaries: [RefusalLedger.Summary]) {
        for summary in summaries {
            var opening = RecordDraft(kind: .request, requestID: Self.newRequestID())
            opening.api = "refusals"
            opening.clientIP = summary.key.clientIP
            var closing = RecordDraft(kind: .response, requestID: opening.requestID)
            closing.statusCode = summary.key.status
            closing.outcome = Outcome(rawValue: summary.key.outcome)
            closing.detail =
                "{\"reason\":\"\(GatewayError.jsonEscape(summary.key.reason))\",\"refusals\":\(summary.count),"
                + "\"window_start\":\"\(Timestamp.rfc3339UTC(micros: summary.windowStart * 1_000_000))\",\"window_seconds\":\(summary.windowSeconds)}"
            journal.append(opening) { [self, closing] result in
                guard case .success = result else { return metrics.storeFailure() }
                journal.append(closing) { _ in }
            }
        }
    }

    private final class CallCounter: @unchecked Sendable {
        var value = 0
    }

    func callStarted(on loop: any EventLoop) { callsInFlight[ObjectIdentifier(loop)]?.value += 1 }
    func callEnded(on loop: any EventLoop) { callsInFlight[ObjectIdentifier(loop)]?.value -= 1 }

    /// The loop has no other call in flight: blocking it for a spool sync delays no other call, so
    /// the call syncs its record itself instead of handing it to the writer thread and back.
    func mayBlockForSync(_ loop: any EventLoop) -> Bool { (callsInFlight[ObjectIdentifier(loop)]?.value ?? 2) <= 1 }

    var configuration: GatewayConfiguration { settings.configuration }

    /// What can be refused on the request head alone, before its body is read: no valid key (unless the
    /// path is one of the gateway's own endpoints, which check keys by their own rules, or a
    /// connectivity probe), and a declared `Content-Length` over `server.max_body_bytes`.
    /// The caller it found comes back too, so the call is identified once, not again when it is decided.
    func admit(_ head: HTTPRequestHead) -> (refusal: GatewayError?, caller: Caller?) {
        let request = receivedHead(head, clientIP: nil)
        let path = request.path
        let ownEndpoint =
            (head.method == .GET && ["/healthz", "/readyz", "/metrics"].contains(path))
            || (head.method == .HEAD && GatewayConnectionHandler.connectivityProbes.contains(path))
        var caller: Caller?
        if !ownEndpoint {
            switch identify(head.headers, queryCredentials: request.queryCredentials) {
            case .failure(let error): return (error, nil)
            case .success(let found): caller = found
            }
        }
        let limit = configuration.server.maxBodyBytes
        if let declared = head.headers.first(name: "content-length").flatMap({ Int($0) }), declared > limit {
            return (.tooLarge(limit), caller)
        }
        return (nil, caller)
    }

    /// A request as received, its query's credentials split off (`QueryCredentials`).
    func receivedHead(
        _ head: HTTPRequestHead, body: ByteBuffer? = nil, bodyTooLarge: Bool = false, clientIP: String?, caller: Caller? = nil
    ) -> ReceivedRequest {
        let auth = configuration.auth
        var request = ReceivedRequest(head: head, body: body, bodyTooLarge: bodyTooLarge, clientIP: clientIP) {
            auth.clientKey(forCredential: $0) != nil
        }
        request.admittedCaller = caller
        return request
    }

    /// The request record of a refused call as far as its head tells (who, if known; which route), and
    /// the error shape of the API it called.
    func refusalDraft(_ request: ReceivedRequest, requestID: String) -> (RecordDraft, Provider) {
        let (draft, shape) = requestDraft(request, requestID: requestID)
        var opening = draft
        if case .success(let caller) = identify(request.head.headers, queryCredentials: request.queryCredentials) {
            opening.userID = caller.userID
            opening.teamID = caller.teamID
            opening.keyID = caller.keyID
        }
        let path = String(request.path)
        if let route = APIRoute.resolve(
            method: request.head.method.rawValue, path: path, hasAnthropicVersion: request.head.headers.contains(name: "anthropic-version"))
        {
            opening.api = route.api
            opening.provider = route.provider.rawValue
            return (opening, route.provider)
        }
        return (opening, shape)
    }

    /// The request record's head fields, and the error shape of the path.
    private func requestDraft(_ request: ReceivedRequest, requestID: String) -> (RecordDraft, Provider) {
        let head = request.head
        let path = String(request.path)
        let shape = APIRoute.errorShape(path: path, hasAnthropicVersion: head.headers.contains(name: "anthropic-version"))
        var draft = RecordDraft(kind: .request, requestID: requestID)
        draft.clientIP = ForwardedFor.clientAddress(peer: request.clientIP, headers: head.headers, server: configuration.server)
        draft.method = head.method.rawValue
        let query = request.query.map { recordedQuery($0, into: &draft) }
        let fullPath = BodyRecorder.cut(query.map { path + "?" + $0 } ?? path, limit: RecordedValue.maxPathBytes).text
        draft.path = settings.bodies.headValue(fullPath, into: &draft)
        return (draft, shape)
    }

    /// The query string as recorded: each parameter's value redacted as the text it decodes to
    /// (`bob%40example.com` is an e-mail address); a value redaction changed is kept decoded and
    /// redacted, any other exactly as sent.
    private func recordedQuery(_ query: Substring, into draft: inout RecordDraft) -> String {
        guard settings.bodies.mode != .full, query.contains(where: { $0 == "%" || $0 == "+" }) else { return String(query) }
        var parameters: [String] = []
        for parameter in query.split(separator: "&", omittingEmptySubsequences: false) {
            guard let equals = parameter.firstIndex(of: "=") else {
                parameters.append(String(parameter))
                continue
            }
            let decoded = QueryCredentials.percentDecoded(parameter[parameter.index(after: equals)...])
            var probe = RecordDraft(kind: .request, requestID: "")
            let redacted = settings.bodies.headValue(decoded, into: &probe) ?? decoded
            if let count = probe.redactions, count > 0 {
                draft.redactions = (draft.redactions ?? 0) + count
                parameters.append(String(parameter[...equals]) + redacted)
            } else {
                parameters.append(String(parameter))
            }
        }
        return parameters.joined(separator: "&")
    }

    /// Identity, route, size, classification and the request record's contents, in that order: an
    /// unknown key is refused before anything about the call is looked at.
    func decide(_ request: ReceivedRequest, requestID: String) -> CallDecision {
        let head = request.head
        let hasAnthropicVersion = head.headers.contains(name: "anthropic-version")
        let path = String(request.path)
        var (draft, shape) = requestDraft(request, requestID: requestID)

        // 1. Identity. An unknown key is refused and audited, never forwarded.
        let caller: Caller
        switch request.admittedCaller.map({ .success($0) }) ?? identify(head.headers, queryCredentials: request.queryCredentials) {
        case .success(let found): caller = found
        case .failure(let error): return .refuse(error, draft: draft, shape: shape)
        }
        draft.userID = caller.userID
        draft.teamID = caller.teamID
        draft.keyID = caller.keyID

        // 2. Route: any other path is not forwarded.
        guard let route = APIRoute.resolve(method: head.method.rawValue, path: path, hasAnthropicVersion: hasAnthropicVersion) else {
            return .refuse(.notFound(path), draft: draft, shape: shape)
        }
        draft.api = route.api
        draft.provider = route.provider.rawValue

        // 3. The body, bounded.
        if request.bodyTooLarge {
            return .refuse(.tooLarge(configuration.server.maxBodyBytes), draft: draft, shape: route.provider)
        }
        let body: [UInt8] = request.body.map { Array($0.readableBytesView) } ?? []

        // 4. Classify: model, stream, end user. Malformed JSON is the caller's error.
        var facts = RequestFacts()
        if head.method == .POST {
            guard let parsed = RequestFacts(requestBody: body) else {
                return .refuse(.badRequest("the request body is not valid JSON", reason: "body_not_json"), draft: draft, shape: route.provider)
            }
            facts = parsed
        }
        draft.model = settings.bodies.headValue(RecordedValue.capped(facts.model), into: &draft)
        draft.stream = facts.stream
        draft.endUser = settings.bodies.headValue(RecordedValue.capped(facts.endUser), into: &draft)
        if !body.isEmpty {
            draft.detail = "{" + settings.bodies.record(body, into: &draft).detailMembers.joined(separator: ",") + "}"
        }

        // 5. What goes upstream.
        var upstreamBody = request.body
        var dropUsageChunk = false
        if route.api == "openai.chat_completions", facts.stream == true, !facts.includeUsage,
            let rewritten = IncludeUsageRewriter.addIncludeUsage(toRequestBody: body)
        {
            upstreamBody = ByteBuffer(bytes: rewritten)
            dropUsageChunk = true
        }
        if head.method != .POST { upstreamBody = nil }
        let upstreamHead = upstreams.connector(for: route.provider).requestHead(
            method: head.method, path: route.upstreamPath, query: request.query, clientHeaders: head.headers,
            bodyLength: upstreamBody?.readableBytes,
            forwardedFor: ForwardedFor.upstreamValue(peer: request.clientIP, headers: head.headers, server: configuration.server))
        return .forward(
            ForwardPlan(
                draft: draft, route: route, caller: caller, upstreamHead: upstreamHead, upstreamBody: upstreamBody,
                dropUsageChunk: dropUsageChunk))
    }

    func identify(_ headers: HTTPHeaders, queryCredentials: [String] = []) -> Result<Caller, GatewayError> {
        let auth = configuration.auth
        if auth.mode == .off { return .success(Caller()) }
        let credential: String
        switch HeaderPolicy.clientCredential(
            authorization: headers.first(name: "authorization"), xAPIKey: headers.first(name: "x-api-key"),
            xGoogAPIKey: headers.first(name: "x-goog-api-key"), query: queryCredentials)
        {
        case .none:
            return .failure(.unauthorized("no API key: send your AuditGate key as x-api-key or Authorization: Bearer", reason: "no_key"))
        case .conflicting:
            return .failure(
                .unauthorized("conflicting credentials: the request carries two different API keys; send one", reason: "conflicting_credentials"))
        case .key(let key): credential = key
        }
        guard let key = auth.clientKey(forCredential: credential) else {
            return .failure(.unauthorized("invalid API key for this AuditGate gateway", reason: "unknown_key"))
        }
        return .success(Caller(userID: key.user, teamID: key.team, keyID: key.keyID))
    }

    /// Records a refused call (request and response records), then calls `done` on any thread.
    func recordRefusal(
        _ error: GatewayError, draft: RecordDraft, started: ContinuousClock.Instant, done: @escaping @Sendable () -> Void
    ) {
        var opening = draft
        opening.api = opening.api ?? "unknown"
        let closing = Self.errorRecord(error, requestID: draft.requestID, started: started)
        metrics.call(api: opening.api ?? "unknown", status: error.status, outcome: error.outcome)
        let key = RefusalLedger.Key(reason: error.reason, clientIP: draft.clientIP ?? "unknown", status: error.status, outcome: error.outcome)
        let (decision, closed) = refusals.withLockedValue { $0.refusal(key, now: Self.wallSeconds()) }
        writeSummaries(closed)
        guard decision == .record else { return done() }
        let failed: @Sendable (any Error) -> Void = { [self] failure in
            metrics.storeFailure()
            logger.error("could not record a refused call", metadata: ["request_id": "\(draft.requestID)", "reason": "\(failure)"])
            done()
        }
        // The response record only once the request record is in: a response without its request
        // would be a broken exchange.
        journal.append(opening) { [self] result in
            if case .failure(let failure) = result { return failed(failure) }
            journal.append(closing) { result in
                if case .failure(let failure) = result { return failed(failure) }
                done()
            }
        }
    }

    /// The response record of a call the gateway answered itself with `error`.
    static func errorRecord(_ error: GatewayError, requestID: String, started: ContinuousClock.Instant) -> RecordDraft {
        var record = RecordDraft(kind: .response, requestID: requestID)
        record.statusCode = error.status
        record.outcome = Outcome(rawValue: error.outcome)
        record.latencyMs = milliseconds(since: started)
        record.detail = "{\"error\":\"\(GatewayError.jsonEscape(error.message))\",\"reason\":\"\(error.reason)\"}"
        return record
    }

    /// Appends a call's response record, counts it, and calls `done` on any thread.
    func recordResponse(
        _ closing: RecordDraft, api: String, team: String? = nil, usage: MeteredUsage? = nil, syncInline: Bool = false,
        done: @escaping @Sendable () -> Void
    ) {
        metrics.call(api: api, status: closing.statusCode ?? 0, outcome: closing.outcome?.rawValue ?? "ok")
        if let latency = closing.latencyMs { metrics.latency(api: api, milliseconds: latency, ttfb: closing.ttfbMs) }
        if let usage { metrics.tokens(team: team, model: closing.model, input: usage.inputTokens, output: usage.outputTokens) }
        journal.append(closing, syncInline: syncInline) { [self] result in
            if case .failure(let failure) = result {
                metrics.storeFailure()
                logger.error("could not record a response", metadata: ["request_id": "\(closing.requestID)", "reason": "\(failure)"])
            }
            done()
        }
    }

    /// A refusal's head and body in the provider's error shape.
    func errorResponse(_ error: GatewayError, shape: Provider, requestID: String) -> (HTTPResponseStatus, HTTPHeaders, ByteBuffer) {
        let body = ByteBuffer(string: error.body(for: shape))
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        headers.add(name: "x-auditgate-request-id", value: requestID)
        // The SDKs and Claude Code obey these: a wrong key or a bad request is not worth a retry (Claude
        // Code otherwise retries a 401 with backoff for minutes, each try a denied row); an overloaded
        // gateway says when to come back.
        switch error.status {
        case 400, 401, 403, 404, 413, 431: headers.add(name: "x-should-retry", value: "false")
        case 429, 503: headers.add(name: "retry-after", value: "5")
        default: break
        }
        return (HTTPResponseStatus(statusCode: error.status), headers, body)
    }

    static func outcome(status: Int, upstreamFailure: String?, streamError: String?) -> Outcome {
        if upstreamFailure != nil || streamError != nil { return .upstreamError }
        switch status {
        case 200..<300: return .ok
        case 400..<500 where status != 408 && status != 429: return .clientError
        default: return .upstreamError
        }
    }

    /// `agw_` and 32 random hex digits (128 bits, as a UUID has), from OpenSSL's generator (the
    /// standard one made a `getrandom` system call per 64 bits).
    static func newRequestID() -> String {
        var random: (UInt64, UInt64)
        if let words = SecureRandom.words() {
            random = words
        } else {
            var generator = SystemRandomNumberGenerator()
            random = (generator.next(), generator.next())
        }
        return "agw_" + withUnsafeBytes(of: &random) { $0.hexString }
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = ContinuousClock.now - start
        return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    }
}
