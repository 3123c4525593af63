// swift-tools-version:6.1
import PackageDescription

/// A bare HTTP/1.1 relay on SwiftNIO with no audit work at all: the floor of the HTTP stack the
/// gateway is built on, measured beside nginx and AuditGate by bench/gateway.sh (target `nio-relay`).
/// A package of its own so that the product package carries no benchmark code.
let package = Package(
    name: "nio-relay",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
    ],
    targets: [
        .executableTarget(
            name: "nio-relay",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v5]
)
