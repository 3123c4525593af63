import ArgumentParser
import AuditCore
import AuditGateConfig
import AuditJournal
import Foundation
import Logging

/// `auditgate spool …`: operate on a gateway's journal without serving calls.
struct Spool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ship or exercise the audit spool.",
        subcommands: [Flush.self, Load.self]
    )

    /// Where a journal lives; from the configuration file unless given on the command line.
    struct JournalOptions: ParsableArguments {
        @Option(help: "Configuration file (chain_id, spool_dir, durability, database.url).")
        var config: String?
        @Option(name: .customLong("spool-dir")) var spoolDirectory: String?
        @Option(name: .customLong("chain-id")) var chainID: String?
        @Option(name: .customLong("database-url"), help: "The writer's connection; omit with --no-store.")
        var databaseURL: String?
        @Flag(name: .customLong("no-store"), help: "Run the journal without a store (spool only).")
        var noStore = false
        @Option var durability: String?
        @Option(name: .customLong("spool-max-bytes")) var spoolMaxBytes: Int?

        func journalConfiguration() throws -> JournalConfiguration {
            var base: GatewayConfiguration.Audit?
            var url: String?
            if let config {
                let loaded = try ConfigurationLoader.load(path: config, environment: ProcessInfo.processInfo.environment)
                base = loaded.audit
                url = loaded.database.url
            }
            guard let chainID = chainID ?? base?.chainID, let spool = spoolDirectory ?? base?.spoolDir else {
                throw ValidationError("give --config, or --chain-id and --spool-dir")
            }
            let mode = durability ?? base?.durability.rawValue ?? "spool"
            guard let durability = Durability(rawValue: mode) else {
                throw ValidationError("--durability must be spool or async, got '\(mode)'")
            }
            return JournalConfiguration(
                chainID: chainID, spoolDirectory: spool, durability: durability,
                spoolMaxBytes: spoolMaxBytes ?? base?.spoolMaxBytes ?? 1 << 30,
                databaseURL: noStore ? nil : (databaseURL ?? url))
        }
    }

    /// Ships everything in the spool to the store, then exits: after a crash, or before moving a host.
    struct Flush: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ship every spooled record to the store and exit.")
        @OptionGroup var journal: JournalOptions
        @Option(help: "Give up after this many seconds without progress (the store away or refusing).")
        var timeout = 60

        func run() async throws {
            let configuration = try journal.journalConfiguration()
            let journal = Journal(configuration: configuration, logger: Logger(label: "auditgate.journal"))
            try await journal.start()
            // However large the spool, keep going while records move; stop only after `timeout`
            // seconds in which none did.
            var shipped = false
            var lastProgress = journal.status.shippedSeq
            var idleSince = ContinuousClock.now
            while !shipped && ContinuousClock.now - idleSince < .seconds(timeout) {
                shipped = await journal.waitUntilShipped(timeout: .seconds(1))
                let progress = journal.status.shippedSeq
                if progress != lastProgress {
                    lastProgress = progress
                    idleSince = ContinuousClock.now
                }
            }
            await journal.shutdown(shipTimeout: .seconds(5))
            let status = journal.status
            print("chain \(configuration.chainID): store at seq \(status.shippedSeq), spool at seq \(status.durableSeq)")
            if !shipped {
                printError("auditgate spool flush: the store did not take every record: \(status.lastStoreError ?? "timeout")")
                throw ExitCode(1)
            }
        }
    }

    /// Appends synthetic records as fast as it can: the journal benchmark and the crash drills.
    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append synthetic records (benchmarks and fault drills).", shouldDisplay: false)
        @OptionGroup var journal: JournalOptions
        @Option var records = 10_000
        @Option(help: "Concurrent appenders.") var concurrency = 32
        @Option(name: .customLong("body-bytes")) var bodyBytes = 0
        @Flag(name: .customLong("print-acks"), help: "Print 'ack SEQ' as each append returns.")
        var printAcks = false
        @Flag(name: .customLong("wait-shipped"), help: "Wait until the store has every record before exiting.")
        var waitShipped = false

        func run() async throws {
            let configuration = try journal.journalConfiguration()
            let journal = Journal(configuration: configuration, logger: Logger(label: "auditgate.journal"))
            try await journal.start()
            let body = bodyBytes > 0 ? String(repeating: "x", count: bodyBytes) : nil
            let printAcks = printAcks
            let total = records
            let workers = max(1, concurrency)
            let started = ContinuousClock.now
            let failures = await withTaskGroup(of: Int.self) { group in
                for worker in 0..<workers {
                    group.addTask {
                        var failures = 0
                        var index = worker
                        while index < total {
                            var draft = RecordDraft(kind: index % 2 == 0 ? .request : .response, requestID: "load-\(index / 2)")
                            draft.userID = "load-user-\(worker)"
                            draft.teamID = "load"
                            draft.api = "anthropic.messages"
                            draft.model = "claude-sonnet-4-5"
                            draft.body = body
                            do {
                                let receipt = try await journal.append(draft)
                                if printAcks { AckPrinter.print(receipt.seq) }
                            } catch {
                                failures += 1
                                if failures == 1 { printError("append failed: \(error)") }
                            }
                            index += workers
                        }
                        return failures
                    }
                }
                return await group.reduce(0, +)
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if waitShipped { _ = await journal.waitUntilShipped(timeout: .seconds(600)) }
            let shipDone = ContinuousClock.now - started
            await journal.shutdown()
            let shipSeconds = Double(shipDone.components.seconds) + Double(shipDone.components.attoseconds) / 1e18
            print(
                String(
                    format: "appended %d records (%d failed) in %.3f s: %.0f records/s (%@ mode, %d appenders)%@",
                    total - failures, failures, seconds, Double(total - failures) / seconds,
                    configuration.durability.rawValue, workers,
                    waitShipped ? String(format: "; all in the store after %.3f s", shipSeconds) : ""))
        }
    }
}

/// Writes ack lines straight to stdout, unbuffered, so a drill that kills the process knows exactly
/// which appends had returned.
enum AckPrinter {
    static let lock = NSLock()
    static func print(_ seq: Int64) {
        let line = Array("ack \(seq)\n".utf8)
        lock.lock()
        defer { lock.unlock() }
        line.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
    }
}
