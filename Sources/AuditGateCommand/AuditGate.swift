import ArgumentParser

/// `auditgate`: the gateway and its operator commands.
@main
struct AuditGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auditgate",
        abstract: "Audit-logging gateway for LLM APIs.",
        subcommands: [Serve.self, Migrate.self, CheckConfig.self, Keys.self, Spool.self]
    )
}
