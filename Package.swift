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
            dependencies: ["AuditCore", "AuditStore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        /// The YAML configuration of the contract, with validation.
        .target(
            name: "AuditGateConfig",
            dependencies: ["AuditCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "AuditGateCommand",
            dependencies: [
                "AuditCore", "AuditStore", "AuditJournal", "AuditGateConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        /// Evidence packages: export from the store, and offline verification of a package.
        .target(name: "AuditEvidence", dependencies: ["AuditCore", "AuditStore", "LibPQ"], swiftSettings: swiftSettings),
        /// Redaction of personal data and secrets in bodies, before any record is built.
        .target(name: "AuditRedaction", swiftSettings: swiftSettings),
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
    ]
)
