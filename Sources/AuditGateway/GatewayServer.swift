import AuditCore
import AuditGateConfig
import AuditJournal
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The gateway's HTTP server, built directly on NIO: per connection an HTTP/1.1 codec and a
/// `GatewayConnectionHandler`. A call runs on its connection's event loop from its first byte to its
/// last, without a Swift task per call (docs/benchmarks.md, "Where the time goes").
///
/// As a `Service`: on graceful shutdown it stops accepting, lets every call in flight finish (open
/// streams drain, their records are written), and returns; the journal flushes after it.
public struct GatewayServer: Service {
    public let gateway: Gateway
    public let host: String
    public let port: Int
    public let group: any EventLoopGroup
    /// Longest wait for calls in flight after a shutdown signal; connections still open then are closed.
    public var drainTimeout: TimeAmount = .seconds(60)
    let onListening: @Sendable (SocketAddress?) -> Void

    public init(
        gateway: Gateway, host: String, port: Int, group: any EventLoopGroup,
        onListening: @escaping @Sendable (SocketAddress?) -> Void = { _ in }
    ) {
        self.gateway = gateway
        self.host = host
        self.port = port
        self.group = group
        self.onListening = onListening
    }

    public func run() async throws {
        let connections = OpenConnections()
        let gateway = self.gateway
        let serverChannel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let overCapacity = connections.add(channel) > gateway.configuration.server.maxConnections
                return channel.eventLoop.makeCompletedFuture {
                    // No pipelining handler: it stops and restarts reading around every answer (two
                    // `epoll_ctl` calls per call); the connection handler holds back a pipelined
                    // request itself.
                    // No protocol error handler: its bare 400 has no body and leaves no record; the
                    // connection handler answers parse errors itself (`errorCaught`). The decoder's
                    // limits are stated here: 80 KiB for one header field and for all of them.
                    var limits = NIOHTTPDecoderLimitConfiguration()
                    limits.maxHeaderFieldSize = GatewayConnectionHandler.maxHeaderBytes
                    limits.maxHeaderListSize = GatewayConnectionHandler.maxHeaderBytes
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: false, withErrorHandling: false, withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: limits)
                    try channel.pipeline.syncOperations.addHandler(GatewayConnectionHandler(gateway: gateway, overCapacity: overCapacity))
                }
            }
            .bind(host: host, port: port)
            .get()
        onListening(serverChannel.localAddress)

        try? await gracefulShutdown()
        try? await serverChannel.close()
        // Idle connections close now; busy ones after their answer's end.
        for channel in connections.all {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let deadline = NIODeadline.now() + drainTimeout
        while !connections.all.isEmpty, NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = connections.all
        if !left.isEmpty {
            gateway.logger.warning("closing connections still open after the drain timeout", metadata: ["connections": "\(left.count)"])
            for channel in left { channel.close(promise: nil) }
        }
        // Refusals only counted so far become summary records before the journal flushes.
        gateway.flushRefusals(final: true)
    }
}

/// The client connections currently open, for the drain at shutdown.
final class OpenConnections: Sendable {
    private let channels = NIOLockedValueBox([ObjectIdentifier: any Channel]())

    /// Adds a connection; returns how many are open with it.
    @discardableResult
    func add(_ channel: any Channel) -> Int {
        let id = ObjectIdentifier(channel)
        let count = channels.withLockedValue {
            $0[id] = channel
            return $0.count
        }
        channel.closeFuture.whenComplete { [self] _ in
            _ = channels.withLockedValue { $0.removeValue(forKey: id) }
        }
        return count
    }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }
}

/// One client connection: reads each request whole (within `server.max_body_bytes`), answers the
/// gateway's own endpoints, and hands API calls to a `ProxyCall`. One request is answered at a time:
/// a request that arrives before the current answer has ended (HTTP pipelining) waits, and the
/// connection stops reading meanwhile. At shutdown (`ChannelShouldQuiesceEvent`) an idle connection
/// closes at once, a busy one after its answer.
final class GatewayConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let gateway: Gateway
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyTooLarge = false
    private var call: ProxyCall?
    private var clientIP: String?
    /// A request is being answered (a forwarded call, a refusal being recorded, or a built-in answer
    /// being written).
    private var answering = false
    /// Parts of the next request(s), received while answering.
    private var waiting: [HTTPServerRequestPart] = []
    private var closeAfterAnswer = false
    /// The connection was accepted past `server.max_connections`: its first request gets 503.
    private let overCapacity: Bool
    /// Bytes of this connection's current request body counted against `server.max_inflight_request_bytes`.
    private var reservedBytes = 0
    /// Who the current request's head was admitted as.
    private var admittedCaller: Caller?

    init(gateway: Gateway, overCapacity: Bool = false) {
        self.gateway = gateway
        self.overCapacity = overCapacity
    }

    /// Gives back this connection's share of the in-flight request bytes (its request was answered).
    private func releaseReservedBytes() {
        if reservedBytes > 0 { gateway.inflightRequestBytes.release(reservedBytes) }
        reservedBytes = 0
    }

    /// A client connection that sends nothing for `server.idle_timeout_seconds` while no call of its is
    /// in flight (an idle keep-alive connection, or a request that stopped arriving) is closed, as
    /// nginx's `keepalive_timeout` does. A call in flight keeps its connection however long its answer
    /// takes, and the full timeout starts again after every answer.
    /// One timer per connection, rescheduled only when it fires (not on every read: that would cost a
    /// schedule and a cancel per request); reads and answers just move `lastActivity`.
    private var idleTimer: Scheduled<Void>?
    private var lastActivity = NIODeadline.now()

    private func armIdleTimer(context: ChannelHandlerContext) {
        lastActivity = NIODeadline.now()
        guard idleTimer == nil else { return }
        scheduleIdleCheck(context: context, in: .seconds(Int64(gateway.configuration.server.idleTimeoutSeconds)))
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext, in delay: TimeAmount) {
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            idleTimer = nil
            let timeout = TimeAmount.seconds(Int64(gateway.configuration.server.idleTimeoutSeconds))
            if answering {
                // A call in flight keeps the connection; the full time counts again from its answer.
                return scheduleIdleCheck(context: context, in: timeout)
            }
            let idle = NIODeadline.now() - lastActivity
            if idle >= timeout {
                context.close(promise: nil)
            } else {
                scheduleIdleCheck(context: context, in: timeout - idle)
            }
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        clientIP = context.channel.remoteAddress?.ipAddress
        armIdleTimer(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !answering { armIdleTimer(context: context) }  // bytes of a request still arriving
        if answering || !waiting.isEmpty {
            waiting.append(part)
            try? context.channel.syncOptions?.setOption(.autoRead, value: false)
            return
        }
        receive(part, context: context)
    }

    private func receive(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let received):
            body = nil
            bodyTooLarge = false
            // Admission on the head alone, before a byte of the body is read or `100 Continue` invites
            // it: a caller without a valid key, or with a declared body over the limit, costs no memory.
            let admission = gateway.admit(received)
            if let refusal = admission.refusal {
                refuseBeforeBody(refusal, head: received, context: context)
                return
            }
            admittedCaller = admission.caller
            if overCapacity {
                let limit = gateway.configuration.server.maxConnections
                refuseBeforeBody(
                    .unavailable("AuditGate has its limit of \(limit) connections open; try again shortly", reason: "too_many_connections"),
                    head: received, context: context)
                return
            }
            // A declared body is counted against the in-flight limit before any of it is read.
            if let declared = received.headers.first(name: "content-length").flatMap({ Int($0) }), declared > 0 {
                guard gateway.inflightRequestBytes.reserve(declared) else {
                    refuseBeforeBody(Self.inflightRefusal(gateway), head: received, context: context)
                    return
                }
                reservedBytes = declared
            }
            head = received
            // curl asks before sending a larger body; without an answer it waits a second first.
            if received.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: received.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            guard let head else { return }  // the body of a request refused on its head: not read further
            let total = (body?.readableBytes ?? 0) + chunk.readableBytes
            if total > reservedBytes, total <= gateway.configuration.server.maxBodyBytes {
                // A chunked body (or one longer than declared) is counted as it arrives.
                guard gateway.inflightRequestBytes.reserve(total - reservedBytes) else {
                    self.head = nil
                    body = nil
                    refuseBeforeBody(Self.inflightRefusal(gateway), head: head, context: context, readingStopped: true)
                    return
                }
                reservedBytes = total
            }
            if total > gateway.configuration.server.maxBodyBytes {
                // A chunked body past the limit: refused at once, and not read any further.
                self.head = nil
                body = nil
                answering = true
                closeAfterAnswer = true
                try? context.channel.syncOptions?.setOption(.autoRead, value: false)
                dispatch(gateway.receivedHead(head, bodyTooLarge: true, clientIP: clientIP, caller: admittedCaller), context: context)
            } else if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            answering = true
            dispatch(gateway.receivedHead(head, body: body, bodyTooLarge: bodyTooLarge, clientIP: clientIP, caller: admittedCaller), context: context)
            body = nil
        }
    }

    /// Answers a request refused on its head (`Gateway.admit`), recorded like any refusal. A request
    /// that announced a body is answered with `connection: close` and its body is never read (reading
    /// it only to throw it away is what a flood of keyless uploads would want).
    private static func inflightRefusal(_ gateway: Gateway) -> GatewayError {
        .unavailable(
            "AuditGate holds its limit of \(gateway.configuration.server.maxInflightRequestBytes) bytes of request bodies; try again shortly",
            reason: "too_many_request_bytes")
    }

    private func refuseBeforeBody(
        _ error: GatewayError, head: HTTPRequestHead, context: ChannelHandlerContext, readingStopped: Bool = false
    ) {
        let announcesBody = readingStopped || head.headers.contains(name: "transfer-encoding")
            || (head.headers.first(name: "content-length").flatMap { Int($0) } ?? 0) > 0
        self.head = nil
        answering = true
        if announcesBody {
            closeAfterAnswer = true
            try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        }
        let request = gateway.receivedHead(head, clientIP: clientIP)
        let requestID = Gateway.newRequestID()
        let (draft, shape) = gateway.refusalDraft(request, requestID: requestID)
        let keepAlive = head.isKeepAlive && !announcesBody
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        let gateway = self.gateway
        gateway.recordRefusal(error, draft: draft, started: ContinuousClock.now) {
            loop.executeHere {
                let (status, headers, body) = gateway.errorResponse(error, shape: shape, requestID: requestID)
                bound.value.handler.write(status, headers: headers, body: body, keepAlive: keepAlive, context: bound.value.context)
            }
        }
    }

    /// The answer has been handed to the connection (its end written, or the connection closed).
    private func answered(context: ChannelHandlerContext, endWritten: EventLoopFuture<Void>? = nil) {
        answering = false
        call = nil
        releaseReservedBytes()
        armIdleTimer(context: context)
        guard context.channel.isActive else { return }
        if closeAfterAnswer {
            if let endWritten { context.close(after: endWritten) } else { context.close(promise: nil) }
            return
        }
        while !answering, !waiting.isEmpty {
            receive(waiting.removeFirst(), context: context)
        }
        if !answering { try? context.channel.syncOptions?.setOption(.autoRead, value: true) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        call?.followClientPace()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        releaseReservedBytes()
        call?.clientClosed()
        context.fireChannelInactive()
    }

    /// The request head's limit (one field, and all fields together); past it: 431.
    static let maxHeaderBytes = 80 * 1024

    /// A request NIO's parser refuses (bad framing, a header past the limit) is answered in an API's
    /// error shape (400, or 431 for headers), with `connection: close`, and recorded as a
    /// `client_error` exchange. The decoder closes the connection right after this returns, so the
    /// answer is written at once and the record follows (nothing is forwarded either way).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        if !answering {
            answering = true
            let failure: GatewayError =
                parseError == .headerOverflow
                ? .headersTooLarge(Self.maxHeaderBytes)
                : .badRequest("the request is not valid HTTP/1.1 (\(parseError))", reason: "unparseable_http")
            let requestID = Gateway.newRequestID()
            let (status, headers, body) = gateway.errorResponse(failure, shape: .openai, requestID: requestID)
            context.writeWholeAnswer(version: .http1_1, status: status, headers: headers, body: body, close: true)
            var draft = RecordDraft(kind: .request, requestID: requestID)
            draft.clientIP = clientIP
            draft.api = "unknown"
            if let head {
                draft.method = head.method.rawValue
                draft.path = gateway.settings.bodies.headValue(BodyRecorder.cut(head.uri, limit: RecordedValue.maxPathBytes).text, into: &draft)
            }
            gateway.recordRefusal(failure, draft: draft, started: ContinuousClock.now) {}
        } else {
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            if answering || head != nil {
                closeAfterAnswer = true
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func dispatch(_ request: ReceivedRequest, context: ChannelHandlerContext) {
        // An HTTP/1.0 client cannot be sent a chunked stream: its answer is close-delimited, so the
        // connection closes after it even if the client asked to keep it alive.
        let keepAlive = request.head.isKeepAlive && (request.head.version.major, request.head.version.minor) >= (1, 1)
        if request.head.method == .GET, let answer = builtinAnswer(request) {
            write(answer.status, headers: answer.headers, body: answer.body, keepAlive: keepAlive, context: context)
            return
        }
        if request.head.method == .HEAD, Self.connectivityProbes.contains(request.path) {
            // Claude Code's start-up probes, sent without a key: an empty 200 and no record. It tells
            // nothing a TCP connect does not, and a refusal would be retried and counted as a denial.
            var headers = HTTPHeaders()
            headers.add(name: "content-length", value: "0")
            write(.ok, headers: headers, body: ByteBuffer(), keepAlive: keepAlive, context: context)
            return
        }
        let started = ContinuousClock.now
        let requestID = Gateway.newRequestID()
        switch gateway.decide(request, requestID: requestID) {
        case .refuse(let error, let draft, let shape):
            let loop = context.eventLoop
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
            let gateway = self.gateway
            gateway.recordRefusal(error, draft: draft, started: started) {
                loop.executeHere {
                    let (status, headers, body) = gateway.errorResponse(error, shape: shape, requestID: requestID)
                    bound.value.handler.write(status, headers: headers, body: body, keepAlive: keepAlive, context: bound.value.context)
                }
            }
        case .forward(let plan):
            let call = ProxyCall(
                gateway: gateway, plan: plan, started: started, context: context, clientVersion: request.head.version,
                keepAlive: keepAlive
            ) { [weak self] endWritten in self?.answered(context: context, endWritten: endWritten) }
            self.call = call
            call.start()
        }
    }

    /// `HEAD` paths answered 200 without a key or a record (`llm-wire-formats.md`, Claude Code).
    static let connectivityProbes: Set<Substring> = ["/", "/api/hello"]

    private func write(_ status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer, keepAlive: Bool, context: ChannelHandlerContext) {
        let closing = !keepAlive || closeAfterAnswer
        context.writeWholeAnswer(version: .http1_1, status: status, headers: headers, body: body, close: closing)
        if !closing { answered(context: context) }
    }

    // MARK: - The gateway's own endpoints

    private func builtinAnswer(_ request: ReceivedRequest) -> (status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer)? {
        let auth = gateway.configuration.auth
        let journal = gateway.journal
        /// `/healthz` is open under `all_except_health`; under `strict` every path wants a key.
        func guarded(openUnder modes: Set<GatewayConfiguration.Auth.Mode>) -> (HTTPResponseStatus, HTTPHeaders, ByteBuffer)? {
            guard !modes.contains(auth.mode) else { return nil }
            if case .failure(let error) = gateway.identify(request.head.headers, queryCredentials: request.queryCredentials) {
                return gateway.errorResponse(error, shape: .openai, requestID: "-")
            }
            return nil
        }
        switch request.path {
        case "/healthz":
            if let refusal = guarded(openUnder: [.off, .allExceptHealth]) { return refusal }
            return Self.json(.ok, "{\"status\":\"ok\"}")
        case "/readyz":
            if let refusal = guarded(openUnder: [.off]) { return refusal }
            let status = journal.status
            if let reason = status.refusalReason {
                return Self.json(
                    .serviceUnavailable,
                    "{\"status\":\"unavailable\",\"reason\":\"\(GatewayError.jsonEscape(reason))\",\"durability\":\"\(status.durability.rawValue)\"}")
            }
            if let reason = status.notReadyReason {
                // Calls are still taken (their records are durable in the spool), but a load balancer
                // should know that nothing reaches the store.
                return Self.json(
                    .serviceUnavailable,
                    "{\"status\":\"store_stalled\",\"reason\":\"\(GatewayError.jsonEscape(reason))\",\"durability\":\"\(status.durability.rawValue)\",\"backlog\":\(status.backlog)}")
            }
            return Self.json(
                .ok,
                "{\"status\":\"ready\",\"durability\":\"\(status.durability.rawValue)\",\"store_reachable\":\(status.storeReachable),\"backlog\":\(status.backlog)}")
        case "/metrics":
            if let refusal = guarded(openUnder: [.off]) { return refusal }
            let body = ByteBuffer(bytes: gateway.metrics.render(journal: journal.status))
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain; version=0.0.4")
            headers.add(name: "content-length", value: String(body.readableBytes))
            return (.ok, headers, body)
        default:
            return nil
        }
    }

    static func json(_ status: HTTPResponseStatus, _ text: String) -> (status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer) {
        let body = ByteBuffer(string: text)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        return (status, headers, body)
    }
}

extension ChannelHandlerContext {
    /// Closes the connection once `written` is out (closing at once would drop writes still queued).
    func close(after written: EventLoopFuture<Void>) {
        written.assumeIsolated().whenComplete { _ in self.close(promise: nil) }
    }

    /// A whole answer (head, body, end) in one flush; with `close`, says `connection: close` and closes
    /// once it is written. Returns the end's write.
    @discardableResult
    func writeWholeAnswer(
        version: HTTPVersion, status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer, close: Bool
    ) -> EventLoopFuture<Void> {
        var head = HTTPResponseHead(version: version, status: status, headers: headers)
        if close { head.headers.add(name: "connection", value: "close") }
        write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        let written = writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
        if close { self.close(after: written) }
        return written
    }
}

extension EventLoop {
    /// Runs `work` on this loop: at once when already on it (the journal answered inline or in `async`
    /// mode), else queued from the journal's thread.
    func executeHere(_ work: @escaping @Sendable () -> Void) {
        if inEventLoop { work() } else { execute(work) }
    }
}
