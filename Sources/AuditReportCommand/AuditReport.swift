import ArgumentParser

/// `auditgate-report`: the auditors' tool. Reads the store with a read-only role; never needs the gateway.
@main
struct AuditReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auditgate-report",
        abstract: "Verify the audit store and produce evidence packages.",
        subcommands: [Verify.self, Export.self, VerifyExport.self, Summary.self, Run.self, Keygen.self]
    )
}
