// nio-relay LISTEN_PORT UPSTREAM_PORT [EVENT_LOOPS]
//
// The least an HTTP/1.1 proxy on SwiftNIO can do per call, to measure what the HTTP stack alone
// costs on this machine: both codecs (server and client side), one keep-alive upstream connection
// per client connection (no pool lookup), the request relayed part by part and the answer streamed
// back part by part. No identity, no journal, no metering, no metrics, no header policy. Anything
// AuditGate adds per call comes on top of this.
import NIOCore
import NIOHTTP1
import NIOPosix

let arguments = CommandLine.arguments
guard arguments.count >= 3, let listenPort = Int(arguments[1]), let upstreamPort = Int(arguments[2]) else {
    print("usage: nio-relay LISTEN_PORT UPSTREAM_PORT [EVENT_LOOPS]")
    exit(2)
}
let loops = arguments.count > 3 ? Int(arguments[3]) ?? System.coreCount : System.coreCount
let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
let upstreamAddress = try SocketAddress(ipAddress: "127.0.0.1", port: upstreamPort)

/// The client side of one client connection: relays the request to its upstream connection,
/// connecting it on first use on the same event loop.
final class RelayServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart

    private var upstream: Channel?
    private var waiting: [HTTPClientRequestPart] = []
    private var connecting = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part: HTTPClientRequestPart
        switch unwrapInboundIn(data) {
        case .head(let head):
            part = .head(HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: head.headers))
        case .body(let body):
            part = .body(.byteBuffer(body))
        case .end(let trailers):
            part = .end(trailers)
        }
        guard let upstream else {
            waiting.append(part)
            if !connecting { connect(context) }
            return
        }
        if case .end = part {
            upstream.writeAndFlush(part, promise: nil)
        } else {
            upstream.write(part, promise: nil)
        }
    }

    private func connect(_ context: ChannelHandlerContext) {
        connecting = true
        let client = context.channel
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(RelayUpstreamHandler(client: client))
                }
            }
            .connect(to: upstreamAddress)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    self.upstream = channel
                    for part in self.waiting { channel.write(part, promise: nil) }
                    self.waiting.removeAll()
                    channel.flush()
                case .failure:
                    client.close(promise: nil)
                }
            }
    }

    func channelInactive(context: ChannelHandlerContext) {
        upstream?.close(promise: nil)
        upstream = nil
        context.fireChannelInactive()
    }
}

/// The upstream side: streams the answer back to the client connection part by part.
final class RelayUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let client: Channel

    init(client: Channel) { self.client = client }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            client.write(HTTPServerResponsePart.head(head), promise: nil)
        case .body(let body):
            client.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil)
        case .end(let trailers):
            client.writeAndFlush(HTTPServerResponsePart.end(trailers), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.close(promise: nil)
        context.fireChannelInactive()
    }
}

let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
            try channel.pipeline.syncOperations.addHandler(RelayServerHandler())
        }
    }
    .bind(host: "127.0.0.1", port: listenPort)
    .wait()
print("nio-relay listening on 127.0.0.1:\(listenPort), upstream 127.0.0.1:\(upstreamPort), \(loops) event loops")
try server.closeFuture.wait()
