import ArgumentParser
import AuditGateConfig

/// `auditgate keys ...`: client keys.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage client keys.",
        subcommands: [New.self]
    )

    /// `auditgate keys new --user U --team T`: a new key, shown once, and the stanza that holds
    /// only its SHA-256. Nothing is written anywhere: the operator pastes the stanza and hands the
    /// key to its user.
    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new",
            abstract: "Print a new client key once, and the auth.keys stanza holding only its SHA-256."
        )

        @Option(help: ArgumentHelp("The user the key belongs to, as audit rows will name them.", valueName: "user"))
        var user: String

        @Option(help: ArgumentHelp("The user's team, as audit rows will name it.", valueName: "team"))
        var team: String

        func validate() throws {
            if user.allSatisfy(\.isWhitespace) { throw ValidationError("--user must not be empty") }
            if team.allSatisfy(\.isWhitespace) { throw ValidationError("--team must not be empty") }
        }

        func run() {
            let key = ClientKeyGenerator.generate()
            let keyID = String(ClientKeyGenerator.sha256(of: key).prefix(12))
            print("""
                New client key for user \(user), team \(team) (key id \(keyID)):

                \(key)

                It will not be shown again: give it to its user now. Only its SHA-256 is kept.
                Paste this under auth.keys in the configuration, then restart the gateway:

                \(ClientKeyGenerator.configurationStanza(forKey: key, user: user, team: team))
                """)
        }
    }
}
