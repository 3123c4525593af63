import ArgumentParser
import AuditGateConfig
import AuditGateway
import AuditJournal
import AuditRedaction
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// `auditgate serve`: the gateway.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway.")

    @Option(help: "Configuration file.") var config = "config/auditgate.yaml"

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "auditgate")
        logger.logLevel = environment["AUDITGATE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let configuration: GatewayConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: config, environment: environment)
        } catch {
            printError("auditgate serve: the configuration is not usable:\n\(error)")
            throw ExitCode(1)
        }
        for warning in configuration.warnings { logger.warning("configuration: \(warning)") }

        let audit = configuration.audit
        let journal = Journal(
            configuration: {
                var journal = JournalConfiguration(
                    chainID: audit.chainID, spoolDirectory: audit.spoolDir,
                    durability: audit.durability == .spool ? .spool : .async, spoolMaxBytes: audit.spoolMaxBytes,
                    databaseURL: configuration.database.url)
                journal.shipperStallAfter = .seconds(audit.shipperStallSeconds)
                return journal
            }(),
            logger: Logger(label: "auditgate.journal"))
        do {
            try await journal.start()
        } catch {
            printError("auditgate serve: the audit journal cannot start: \(error)")
            throw ExitCode(1)
        }

        let redactor: Redactor
        do {
            redactor = try Redactor(
                RedactionRules(
                    patterns: configuration.redaction.patterns.compactMap { BuiltinPattern(rawValue: $0.rawValue) },
                    custom: configuration.redaction.custom.map { (name: $0.name, regex: $0.regex) }))
        } catch {
            printError("auditgate serve: a redaction pattern is not usable: \(error)")
            throw ExitCode(1)
        }
        let settings = GatewaySettings(
            configuration: configuration,
            bodies: BodyRecorder(
                mode: BodyRecorder.Mode(rawValue: audit.bodies.rawValue) ?? .redacted, redactor: redactor,
                providerKeys: [configuration.upstreams.anthropic.apiKey, configuration.upstreams.openai.apiKey].compactMap { $0 }),
            firstByteTimeout: .seconds(Int64(configuration.upstreams.firstByteTimeoutSeconds)))
        let loops = MultiThreadedEventLoopGroup.singleton
        let upstreams: Upstreams
        do {
            upstreams = try Upstreams.make(configuration: configuration, environment: environment, group: loops)
        } catch {
            printError("auditgate serve: the upstreams are not usable: \(error)")
            throw ExitCode(1)
        }
        let gateway = Gateway(
            settings: settings, journal: journal, upstreams: upstreams, metrics: GatewayMetrics(), logger: logger, loops: loops)
        let serverLogger = logger
        let server = GatewayServer(
            gateway: gateway, host: configuration.server.host, port: configuration.server.port, group: loops,
            onListening: { address in
                serverLogger.info("AuditGate listening", metadata: ["address": "\(address?.description ?? "?")"])
            })
        // Shutdown runs in reverse: the server drains its streams first, the journal flushes last.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: JournalService(journal: journal)), .init(service: server)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
