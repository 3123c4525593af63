import ArgumentParser
import AuditGateConfig
import Foundation

/// `auditgate check-config [--config PATH]`: validates the configuration as `serve` would read it,
/// with the same environment, and reports every problem at once.
struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration file and report every problem in it.",
        discussion: """
            Reads the file as `auditgate serve` would, expanding ${NAME} from this environment, \
            and prints "configuration OK: PATH" and any warnings (exit 0), or every problem found \
            on standard error (exit 1). Secrets are never printed.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The configuration file.", valueName: "path"))
    var config: String = ConfigurationLoader.defaultPath

    func run() throws {
        let configuration: GatewayConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: config, environment: ProcessInfo.processInfo.environment)
        } catch {
            let count = error.issues.count
            var report = "configuration invalid: \(config) (\(count) \(count == 1 ? "problem" : "problems"))\n"
            for issue in error.issues { report += "error: \(issue)\n" }
            FileHandle.standardError.write(Data(report.utf8))
            throw ExitCode(1)
        }
        print("configuration OK: \(config)")
        for warning in configuration.warnings {
            print("warning: \(warning)")
        }
    }
}
