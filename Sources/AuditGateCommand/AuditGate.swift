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

    /// `AUDITGATE_EVENT_LOOPS` sets the number of NIO event loop threads, on which every call runs
    /// (default: one per core). Swift concurrency (start-up, shutdown) runs on those loops too, not on
    /// a thread pool of its own. Both are set first, before any task exists, as NIO requires. libpq
    /// runs only on the journal's shipper thread; an `fdatasync` runs on a loop only when that loop
    /// has a single call in flight (`Journal.append(syncInline:)`), else on the writer thread.
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
