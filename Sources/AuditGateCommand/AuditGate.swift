import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// `auditgate`: the gateway and its operator commands.
@main
struct AuditGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auditgate",
        abstract: "Audit-logging gateway for LLM APIs.",
        subcommands: [Serve.self, Migrate.self, CheckConfig.self, Keys.self, Spool.self]
    )

    /// Swift concurrency runs on NIO's event loops instead of its own thread pool, so a call's
    /// handler, its upstream request and its response need fewer hops between threads (measured in
    /// docs/benchmarks.md: less CPU per call, most with one event loop). `AUDITGATE_EVENT_LOOPS`
    /// sets the number of event loop threads (default: one per core). Both are set first, before any
    /// task exists, as NIO requires. Blocking work (libpq, fdatasync) runs on the journal's own
    /// threads, never on these.
    static func main() async {
        let environment = ProcessInfo.processInfo.environment
        if let loops = environment["AUDITGATE_EVENT_LOOPS"].flatMap(Int.init), loops > 0 {
            NIOSingletons.groupLoopCountSuggestion = loops
        }
        if environment["AUDITGATE_NIO_EXECUTOR"] != "0" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        await main(nil)
    }
}
