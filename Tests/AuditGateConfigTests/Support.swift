import Foundation
import Testing

@testable import AuditGateConfig

/// The smallest valid file: only the database has no default.
let minimalYAML = """
    database:
      url: postgresql://auditgate_writer@127.0.0.1:5432/auditgate

    """

/// Parses with a fixed host name, so the default chain_id does not depend on the machine.
func parse(_ yaml: String, env: [String: String] = [:]) throws(ConfigurationError) -> GatewayConfiguration {
    try ConfigurationLoader.parse(yaml: yaml, environment: env, hostName: { "test-host" })
}

/// The issues a text raises; empty when it parses.
func issues(_ yaml: String, env: [String: String] = [:]) -> [ConfigurationIssue] {
    do {
        _ = try parse(yaml, env: env)
        return []
    } catch {
        return error.issues
    }
}

/// `minimalYAML` plus more sections.
func withDatabase(_ yaml: String) -> String {
    minimalYAML + yaml
}

/// Expects exactly one issue at `path`, whose message contains every fragment.
func expectIssue(
    _ issues: [ConfigurationIssue],
    at path: String,
    containing fragments: String...,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let atPath = issues.filter { $0.path == path }
    #expect(atPath.count == 1, "expected one issue at '\(path)', got: \(issues)", sourceLocation: sourceLocation)
    guard let issue = atPath.first else { return }
    for fragment in fragments {
        #expect(issue.message.contains(fragment), "'\(issue.message)' lacks '\(fragment)'", sourceLocation: sourceLocation)
    }
}

/// The repository's root, from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A temporary file holding `text`, removed by the caller.
func temporaryFile(_ text: String, suffix: String = ".yaml") throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("auditgate-config-\(UUID().uuidString)\(suffix)").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
