import Hummingbird
import NIOCore

/// The request context: Hummingbird's core storage plus the client's address, which every record keeps.
public struct GatewayRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address as text (no port).
    public var clientIP: String? { remoteAddress?.ipAddress }
}
