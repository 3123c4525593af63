import AuditGateConfig
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// Connections to the two providers.
public struct Upstreams: Sendable {
    public let anthropic: UpstreamConnector
    public let openai: UpstreamConnector

    public init(anthropic: UpstreamConnector, openai: UpstreamConnector) {
        self.anthropic = anthropic
        self.openai = openai
    }

    func connector(for provider: Provider) -> UpstreamConnector { provider == .anthropic ? anthropic : openai }

    /// Connectors for both providers, each with its own egress decision (a `NO_PROXY` entry may cover
    /// one provider and not the other).
    public static func make(
        configuration: GatewayConfiguration, environment: [String: String], group: any EventLoopGroup
    ) throws -> Upstreams {
        let timeouts = configuration.upstreams
        func connector(_ upstream: URL, credential: (name: String, value: String)?) throws -> UpstreamConnector {
            try UpstreamConnector(
                baseURL: upstream, proxy: Egress.proxy(for: upstream, configured: configuration.egress.proxy, environment: environment),
                caFile: configuration.egress.caFile, credential: credential,
                idleTimeout: .seconds(Int64(timeouts.idleTimeoutSeconds)), group: group,
                connectTimeout: .seconds(Int64(timeouts.connectTimeoutSeconds)), tlsTimeout: .seconds(Int64(timeouts.tlsTimeoutSeconds)))
        }
        let anthropic = configuration.upstreams.anthropic
        let openai = configuration.upstreams.openai
        return Upstreams(
            anthropic: try connector(anthropic.baseURL, credential: anthropic.apiKey.map { ("x-api-key", $0) }),
            openai: try connector(openai.baseURL, credential: openai.apiKey.map { ("authorization", "Bearer \($0)") }))
    }
}

/// An upstream that cannot be set up as configured (said at start, before any call).
public struct UpstreamSetupError: Error, CustomStringConvertible {
    public var description: String
}

/// An open HTTP/1.1 connection to a provider, and the handler that hands its answer to a call.
/// Sendable only to travel in its channel's futures: it is used on its channel's event loop alone.
final class UpstreamConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: UpstreamHandler

    init(channel: any Channel, handler: UpstreamHandler) {
        self.channel = channel
        self.handler = handler
    }
}

/// How the gateway reaches one provider: its address, TLS, the corporate proxy (absolute-form
/// requests for `http://` upstreams, a `CONNECT` tunnel for `https://` ones), and an idle-connection
/// pool per event loop, so a call's upstream connection lives on the same thread as its client's.
public final class UpstreamConnector: Sendable {
    let host: String
    let port: Int
    let isTLS: Bool
    /// The Host header: the host, with the port when the base URL names one.
    let authority: String
    /// `host:port`, what a CONNECT through the proxy asks for.
    let tunnelTarget: String
    /// What every request target starts with: the base URL's path, after `http://authority` when a
    /// proxy gets absolute-form targets (plain `http://` upstreams behind a proxy).
    let targetPrefix: String
    /// The provider key as its header (`x-api-key`, or `authorization: Bearer …`), built once.
    let credential: (name: String, value: String)?
    let proxy: (host: String, port: Int)?
    let sslContext: NIOSSLContext?
    /// The TLS server name (SNI, and what the certificate must name); nil for an IP address, whose
    /// certificate is then checked against the connected address.
    let serverName: String?
    let idleTimeout: TimeAmount
    /// The TCP connection (and an egress proxy's CONNECT tunnel), then the TLS handshake: each has a
    /// limit of its own, and neither counts against the first-byte timeout, which starts once the
    /// request is sent.
    let connectTimeout: TimeAmount
    let tlsTimeout: TimeAmount
    private let pools: [ObjectIdentifier: LoopPool]

    /// Idle connections kept per event loop, at most; more are closed when their call ends.
    static let maxIdlePerLoop = 1024

    public init(
        baseURL: URL, proxy: (host: String, port: Int)?, caFile: String?, credential: (name: String, value: String)?,
        idleTimeout: TimeAmount, group: any EventLoopGroup, connectTimeout: TimeAmount = .seconds(10),
        tlsTimeout: TimeAmount = .seconds(10)
    ) throws {
        self.connectTimeout = connectTimeout
        self.tlsTimeout = tlsTimeout
        guard let host = baseURL.host, !host.isEmpty else { throw UpstreamSetupError(description: "no host in \(baseURL)") }
        isTLS = baseURL.scheme?.lowercased() == "https"
        let hostIsAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        // Without a name, TLS checks the certificate against the peer's address, which through a
        // tunnel is the proxy's: the check would test the wrong thing, so the setup is refused.
        if isTLS, hostIsAddress, proxy != nil {
            throw UpstreamSetupError(
                description: "\(baseURL): an https upstream given as an IP address cannot be reached through the egress proxy "
                    + "(its certificate could not be checked against that address); use the provider's host name, or NO_PROXY")
        }
        serverName = hostIsAddress ? nil : host
        self.host = host
        port = baseURL.port ?? (isTLS ? 443 : 80)
        var basePath = baseURL.path
        while basePath.hasSuffix("/") { basePath.removeLast() }
        let hostText = host.contains(":") ? "[\(host)]" : host
        authority = baseURL.port == nil ? hostText : "\(hostText):\(port)"
        tunnelTarget = "\(hostText):\(port)"
        targetPrefix = proxy != nil && !isTLS ? "http://\(authority)\(basePath)" : basePath
        self.credential = credential
        self.proxy = proxy
        self.idleTimeout = idleTimeout
        if isTLS {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile { tls.additionalTrustRoots = [.file(caFile)] }
            sslContext = try NIOSSLContext(configuration: tls)
        } else {
            sslContext = nil
        }
        var pools: [ObjectIdentifier: LoopPool] = [:]
        for loop in group.makeIterator() { pools[ObjectIdentifier(loop)] = LoopPool(eventLoop: loop) }
        self.pools = pools
    }

    /// The upstream request head: the client's headers minus credentials and hop-by-hop ones, the
    /// provider key, identity encoding so the tap can read usage.
    func requestHead(
        method: HTTPMethod, path: String, query: Substring?, clientHeaders: HTTPHeaders, bodyLength: Int?,
        forwardedFor: String? = nil
    ) -> HTTPRequestHead {
        var target = targetPrefix + path
        if let query, !query.isEmpty { target += "?" + query }
        var headers = HTTPHeaders()
        headers.reserveCapacity(clientHeaders.count + 4)
        headers.add(name: "host", value: authority)
        let listed = clientHeaders.contains(name: "connection") ? HeaderPolicy.connectionListed(clientHeaders) : []
        for (name, value) in clientHeaders {
            let lowercased = name.lowercased()
            guard HeaderPolicy.forwardsRequestHeader(lowercased), listed.isEmpty || !listed.contains(lowercased),
                !ForwardedFor.claimHeaders.contains(lowercased)
            else { continue }
            headers.add(name: name, value: value)
        }
        if let forwardedFor { headers.add(name: "x-forwarded-for", value: forwardedFor) }
        if let credential { headers.add(name: credential.name, value: credential.value) }
        headers.add(name: "accept-encoding", value: "identity")
        if let bodyLength { headers.add(name: "content-length", value: String(bodyLength)) }
        return HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: headers)
    }

    /// An idle pooled connection on `eventLoop` (`reused` true), or a new one.
    func connection(on eventLoop: any EventLoop) -> (reused: Bool, future: EventLoopFuture<UpstreamConnection>) {
        if let idle = pools[ObjectIdentifier(eventLoop)]?.take() {
            return (true, eventLoop.makeSucceededFuture(idle))
        }
        return (false, connect(on: eventLoop))
    }

    /// Back into the pool after a complete keep-alive answer. A provider closing it while idle is
    /// noticed without a pending read (NIO watches every socket for the peer's close), so the pool
    /// never hands out a connection it knows is closed
    /// (`test_provider_closing_idle_connections_costs_no_call`).
    func release(_ connection: UpstreamConnection) {
        guard let pool = pools[ObjectIdentifier(connection.channel.eventLoop)], pool.put(connection) else {
            connection.channel.close(promise: nil)
            return
        }
    }

    func connect(on eventLoop: any EventLoop) -> EventLoopFuture<UpstreamConnection> {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
        let connectHost = proxy?.host ?? host
        let connectPort = proxy?.port ?? port
        guard let proxy, isTLS else {
            return bootstrap.channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try addProtocolHandlers(to: channel) }
            }
            .connect(host: connectHost, port: connectPort)
            .flatMapErrorThrowing { [self] error in throw UpstreamTimeout.connect(error, connectTimeout) }
            .flatMap { [self] channel in handshaken(channel) }
        }
        // Through a CONNECT tunnel: TLS and HTTP are added once the proxy has opened it.
        let target = tunnelTarget
        return bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ConnectTunnelHandler(target: target))
            }
        }
        .connect(host: proxy.host, port: proxy.port)
        .flatMapErrorThrowing { [self] error in throw UpstreamTimeout.connect(error, connectTimeout) }
        .flatMap { [self] channel in
            let established: EventLoopFuture<Void>
            let tunnel: NIOLoopBound<ConnectTunnelHandler>
            do {
                let handler = try channel.pipeline.syncOperations.handler(type: ConnectTunnelHandler.self)
                established = handler.established
                tunnel = NIOLoopBound(handler, eventLoop: channel.eventLoop)
            } catch {
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(error)
            }
            return Self.deadline(established, after: connectTimeout, on: channel, UpstreamTimeout(what: "the egress proxy's CONNECT tunnel", limit: connectTimeout))
            .flatMapThrowing { [self] in
                channel.pipeline.syncOperations.removeHandler(tunnel.value, promise: nil)
                try addProtocolHandlers(to: channel)
            }
            .flatMap { [self] in handshaken(channel) }
            .flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }
        }
    }

    /// The connection once its TLS handshake is done (at once for plain HTTP), within `tlsTimeout`.
    private func handshaken(_ channel: any Channel) -> EventLoopFuture<UpstreamConnection> {
        guard sslContext != nil, let waiter = try? channel.pipeline.syncOperations.handler(type: TLSHandshakeWaiter.self) else {
            return channel.eventLoop.makeCompletedFuture { try ready(channel) }
        }
        return Self.deadline(waiter.done.futureResult, after: tlsTimeout, on: channel, UpstreamTimeout(what: "the TLS handshake", limit: tlsTimeout))
            .flatMapThrowing { [self] in try ready(channel) }
    }

    /// `future`, or a failure with `error` (and the channel closed) if it has not completed `after` from now.
    static func deadline(
        _ future: EventLoopFuture<Void>, after: TimeAmount, on channel: any Channel, _ error: UpstreamTimeout
    ) -> EventLoopFuture<Void> {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let timer = channel.eventLoop.scheduleTask(in: after) {
            promise.fail(error)
            channel.close(promise: nil)
        }
        future.whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }

    private func addProtocolHandlers(to channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        if let sslContext {
            try pipeline.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
            try pipeline.addHandler(TLSHandshakeWaiter(promise: channel.eventLoop.makePromise()))
        }
        try pipeline.addHTTPClientHandlers()
        try pipeline.addHandler(IdleStateHandler(readTimeout: idleTimeout))
        try pipeline.addHandler(UpstreamHandler())
    }

    /// The connection reads on its own (so a provider's close or stray bytes are seen while it idles in
    /// the pool); a call pauses it while its client is slow (`ProxyCall.readMore`).
    private func ready(_ channel: any Channel) throws -> UpstreamConnection {
        UpstreamConnection(channel: channel, handler: try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self))
    }
}

/// The idle connections of one event loop; touched only on that loop.
private final class LoopPool: @unchecked Sendable {
    let eventLoop: any EventLoop
    private var idle: [UpstreamConnection] = []

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func take() -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        while let connection = idle.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    func put(_ connection: UpstreamConnection) -> Bool {
        eventLoop.preconditionInEventLoop()
        guard connection.channel.isActive else { return false }
        if idle.count >= UpstreamConnector.maxIdlePerLoop { idle.removeAll { !$0.channel.isActive } }
        guard idle.count < UpstreamConnector.maxIdlePerLoop else { return false }
        idle.append(connection)
        return true
    }
}

/// Receives a call's answer from the provider.
protocol UpstreamDelegate: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead)
    func upstreamBody(_ buffer: ByteBuffer)
    func upstreamEnd(keepAlive: Bool)
    /// The connection closed or failed before the answer's end, or went idle past `idle_timeout_seconds`.
    func upstreamFailed(_ reason: String)
}

/// The last handler on an upstream connection: passes the answer to the call that owns the
/// connection, and closes the connection when it idles in the pool.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    var delegate: (any UpstreamDelegate)?
    private var keepAlive = true
    /// A request is out and its response head has not come: the first-byte timeout is in charge, so
    /// the idle timeout (silence between chunks of an answer) does not apply yet.
    var awaitingHead = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate else {
            // Bytes on an idle connection answer nothing that was asked: the connection is not reusable.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 1xx answers (100 Continue) are not the answer.
            if head.status.code < 200 { return }
            awaitingHead = false
            keepAlive = head.isKeepAlive
            delegate.upstreamHead(head)
        case .body(let buffer):
            delegate.upstreamBody(buffer)
        case .end:
            self.delegate = nil
            delegate.upstreamEnd(keepAlive: keepAlive)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail("the provider closed the connection")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(Self.describe(error))
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            if delegate != nil, awaitingHead { return }
            if delegate == nil {
                context.close(promise: nil)
            } else {
                fail("no data from the provider for the idle timeout")
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func fail(_ reason: String) {
        let owner = delegate
        delegate = nil
        owner?.upstreamFailed(reason)
    }

    /// A short, secret-free description of a connection error (never a URL's credentials or headers).
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as IOError: return "I/O error: \(error.description)"
        case NIOSSLError.handshakeFailed(let reason): return "TLS handshake failed: \(tlsReason(reason))"
        case let error as NIOSSLError: return "TLS: \(error)"
        case let error as BoringSSLError: return "TLS: \(tlsReason(error))"
        case let error as NIOSSLExtraError: return "TLS: \(error.description)"
        case let error as ChannelError: return "\(error)"
        case let error as UpstreamTimeout: return error.description
        default: return String(describing: type(of: error))
        }
    }

    /// BoringSSL's reason codes (`CERTIFICATE_VERIFY_FAILED`), without the source paths its
    /// descriptions carry.
    static func tlsReason(_ error: BoringSSLError) -> String {
        let codes = "\(error)".split(whereSeparator: { !($0.isUppercase || $0.isNumber || $0 == "_") })
            .filter { $0.count >= 6 && $0.contains("_") }
        return codes.isEmpty ? "certificate or protocol error" : Array(Set(codes.map(String.init))).sorted().joined(separator: ", ")
    }
}

/// A connection step that took longer than its limit (or a connect that failed: its error as is).
struct UpstreamTimeout: Error, CustomStringConvertible {
    var what: String
    var limit: TimeAmount

    var description: String { "\(what) took longer than \(limit.nanoseconds / 1_000_000_000) s" }

    /// NIO's connect timeout in these words; any other connect error unchanged.
    static func connect(_ error: any Error, _ limit: TimeAmount) -> any Error {
        if case ChannelError.connectTimeout = error { return UpstreamTimeout(what: "connecting", limit: limit) }
        return error
    }
}

/// Completes `done` when the TLS handshake has completed, fails it when the connection fails first.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let done: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) { done = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            done.succeed(())
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        done.fail(ChannelError.ioOnClosedChannel)  // no-op once succeeded
    }
}

/// Opens a `CONNECT` tunnel through the corporate proxy, then steps aside for TLS and HTTP.
final class ConnectTunnelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Refused: Error, CustomStringConvertible {
        var description: String
    }

    let target: String
    private var promise: EventLoopPromise<Void>?
    private var received = ByteBuffer()

    init(target: String) { self.target = target }

    /// Succeeds once the proxy answered 200 to `CONNECT`.
    private(set) var established: EventLoopFuture<Void>!

    func handlerAdded(context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        self.promise = promise
        established = promise.futureResult
    }

    func channelActive(context: ChannelHandlerContext) {
        let request = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received.writeBuffer(&buffer)
        let text = String(buffer: received)
        guard let end = text.range(of: "\r\n\r\n") else {
            if received.readableBytes > 16 * 1024 { finish(Refused(description: "the proxy's CONNECT answer is too long")) }
            return
        }
        let statusLine = text[..<end.lowerBound].split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        if parts.count >= 2, parts[1] == "200" {
            finish(nil)
        } else {
            finish(Refused(description: "the proxy refused CONNECT \(target): \(statusLine)"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(Refused(description: "the proxy closed the connection before CONNECT \(target) was answered"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(error)
        context.close(promise: nil)
    }

    private func finish(_ error: (any Error)?) {
        guard let promise else { return }
        self.promise = nil
        if let error { promise.fail(error) } else { promise.succeed(()) }
    }
}
