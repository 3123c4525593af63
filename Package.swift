// swift-tools-version:6.1
import PackageDescription

/// One settings list for every target, as Hummingbird does: stricter existentials and import visibility.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "AuditGate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "auditgate", targets: ["AuditGateCommand"]),
        .executable(name: "auditgate-report", targets: ["AuditReportCommand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
    ],
    targets: [
        // System libraries: libpq for every database call, OpenSSL's libcrypto for hashing and signing.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        /// Records, canonical encoding, hashing, chain verification: no I/O, no dependencies but libcrypto.
        .target(name: "AuditCore", dependencies: ["COpenSSL"], swiftSettings: swiftSettings),
        /// A small Swift wrapper over libpq.
        .target(name: "LibPQ", dependencies: ["CLibPQ"], swiftSettings: swiftSettings),
        /// The audit store: migrations, chain head, COPY of records, reading chains back.
        .target(name: "AuditStore", dependencies: ["AuditCore", "LibPQ"], swiftSettings: swiftSettings),
        /// The journal: spool, group-committed writer, shipper.
        .target(
            name: "AuditJournal",
            dependencies: ["AuditCore", "AuditStore", "LibPQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        /// The YAML configuration of the contract, with validation.
        .target(
            name: "AuditGateConfig",
            dependencies: ["AuditCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        /// The HTTP gateway on NIO: routes, identity, forwarding, streaming with a metering tap, records.
        .target(
            name: "AuditGateway",
            dependencies: [
                "AuditCore", "AuditJournal", "AuditGateConfig", "AuditRedaction", "AuditMetering",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "AuditGateCommand",
            dependencies: [
                "AuditCore", "AuditStore", "AuditJournal", "AuditGateConfig", "AuditGateway", "AuditRedaction",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        /// Evidence packages: export from the store, and offline verification of a package.
        .target(name: "AuditEvidence", dependencies: ["AuditCore", "AuditStore", "LibPQ"], swiftSettings: swiftSettings),
        /// Redaction of personal data and secrets in bodies, before any record is built.
        .target(name: "AuditRedaction", swiftSettings: swiftSettings),
        .target(name: "AuditMetering", swiftSettings: swiftSettings),
        /// The auditors' tool: depends on the core and the libpq wrapper only, never on the HTTP stack.
        .executableTarget(
            name: "AuditReportCommand",
            dependencies: [
                "AuditCore", "AuditStore", "AuditEvidence", "LibPQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        /// Throwaway PostgreSQL clusters and databases for the tests.
        .target(name: "TestSupport", dependencies: ["LibPQ", "AuditStore"], swiftSettings: swiftSettings),
        .testTarget(name: "AuditCoreTests", dependencies: ["AuditCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AuditStoreTests",
            dependencies: ["AuditStore", "AuditCore", "LibPQ", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AuditJournalTests",
            dependencies: ["AuditJournal", "AuditStore", "AuditCore", "LibPQ", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AuditGateConfigTests", dependencies: ["AuditGateConfig"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AuditEvidenceTests",
            dependencies: ["AuditEvidence", "AuditStore", "AuditCore", "LibPQ", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AuditRedactionTests", dependencies: ["AuditRedaction"], swiftSettings: swiftSettings),
        .testTarget(name: "AuditMeteringTests", dependencies: ["AuditMetering"], swiftSettings: swiftSettings),
        /// The gateway's value types (state machines, policies), tested without sockets or threads.
        .testTarget(name: "AuditGatewayTests", dependencies: ["AuditGateway"], swiftSettings: swiftSettings),
    ]
)
