/// One thing wrong (or worth a warning) in a configuration, named by where it is.
///
/// `path` spells the place the way the YAML file nests it (`server.port`,
/// `auth.keys[1].key_sha256`), so an operator can find the line without knowing AuditGate's types.
/// It is empty for problems with the file as a whole (cannot be read, YAML syntax, not a mapping).
/// `message` says what is wrong and what would be valid. It never quotes a secret: values of
/// `api_key`, `url`, `proxy` and `key_sha256` (where a client key is often pasted by mistake) are
/// described, never repeated.
public struct ConfigurationIssue: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `path: message`, or the message alone for issues with the file as a whole.
    public var description: String {
        path.isEmpty ? message : "\(path): \(message)"
    }
}

/// Every issue found in a configuration, not only the first, so that one run of
/// `auditgate check-config` is enough to fix a file.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// In the order the file was read: file-level problems first, then section by section.
    public var issues: [ConfigurationIssue]

    public init(issues: [ConfigurationIssue]) {
        self.issues = issues
    }

    public init(path: String = "", message: String) {
        self.issues = [ConfigurationIssue(path: path, message: message)]
    }

    /// One issue per line, as `path: message`.
    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }
}
