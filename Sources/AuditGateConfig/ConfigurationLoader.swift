import Foundation
import Yams

/// Reads and validates the gateway's YAML configuration (see the contract's "Configuration (YAML)").
///
/// Both entry points report every problem at once in a `ConfigurationError`; what is allowed but
/// probably not meant ends up in `GatewayConfiguration.warnings`.
public enum ConfigurationLoader {
    /// Where `serve` and `check-config` look when no `--config` is given: relative to the working
    /// directory, so running from a checkout uses the repository's example.
    public static let defaultPath = "config/auditgate.yaml"

    /// Reads the file at `path` and parses it; `environment` supplies `${NAME}` values.
    public static func load(path: String, environment: [String: String]) throws(ConfigurationError) -> GatewayConfiguration {
        let yaml = try readFile(path)
        return try parse(yaml: yaml, environment: environment)
    }

    /// Parses configuration text; `environment` supplies `${NAME}` values.
    public static func parse(yaml: String, environment: [String: String]) throws(ConfigurationError) -> GatewayConfiguration {
        try parse(yaml: yaml, environment: environment, hostName: NetworkAddress.hostName)
    }

    /// As `parse(yaml:environment:)`, with the host name (the default `audit.chain_id`) supplied,
    /// so tests do not depend on the machine they run on.
    static func parse(
        yaml: String,
        environment: [String: String],
        hostName: () -> String
    ) throws(ConfigurationError) -> GatewayConfiguration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigurationError(issues: [syntaxIssue(error, yaml: yaml)])
        }
        if let root, !NodeReader.isNull(root), root.mapping == nil {
            throw ConfigurationError(
                message: "the configuration must be a YAML mapping of sections (\(topLevelKeys.joined(separator: ", "))); got \(NodeReader.kind(root))"
            )
        }
        let reader = NodeReader(environment: environment)
        let configuration = read(root, reader: reader, hostName: hostName)
        guard reader.issues.isEmpty, var configuration else { throw ConfigurationError(issues: reader.issues) }
        configuration.warnings = reader.warnings
        return configuration
    }

    // MARK: the file

    private static func readFile(_ path: String) throws(ConfigurationError) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigurationError(message: "cannot read config file \(path): no such file (give another with --config PATH)")
        }
        guard !isDirectory.boolValue else {
            throw ConfigurationError(message: "cannot read config file \(path): it is a directory")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.isReadableFile(atPath: path) ? "\(error.localizedDescription)" : "permission denied"
            throw ConfigurationError(message: "cannot read config file \(path): \(reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(message: "cannot read config file \(path): it is not UTF-8 text")
        }
        return text
    }

    /// A YAML syntax error, with its line and column, without the snippet of the file Yams would
    /// print (that line may hold a secret someone wrote into the file).
    static func syntaxIssue(_ error: any Error, yaml: String) -> ConfigurationIssue {
        func located(_ mark: Mark, _ problem: String, _ context: YamlError.Context?) -> String {
            var message = "YAML syntax error at line \(mark.line), column \(mark.column): \(problem)"
            if let context {
                message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
            }
            return message
        }
        let message: String
        switch error as? YamlError {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            message = located(mark, problem, context)
        case .reader(let problem, let offset, _, _):
            if let offset {
                let prefix = yaml.prefix(offset)
                let line = prefix.count(where: { $0 == "\n" }) + 1
                let column = prefix.distance(from: prefix.lastIndex(of: "\n").map { prefix.index(after: $0) } ?? prefix.startIndex, to: prefix.endIndex) + 1
                message = "the file cannot be read as YAML at line \(line), column \(column): \(problem)"
            } else {
                message = "the file cannot be read as YAML: \(problem)"
            }
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            message = "duplicate key \(names) at line \(context.mark.line), column \(context.mark.column): a key may appear only once in a mapping"
        case .some(let other):
            message = "the file is not valid YAML (\(other))"
        case nil:
            message = "the file is not valid YAML (\(error))"
        }
        return ConfigurationIssue(path: "", message: message)
    }
}
