import Yams

/// Walks the YAML tree and reads typed values out of it, recording every problem it meets
/// instead of stopping at the first, so that `check-config` reports a whole file at once.
///
/// A reading function returns nil when the value is absent (missing, `null`, `~`, empty, or
/// expanding to the empty string) or wrong (an issue has then been recorded); the caller applies
/// its default in the first case, and in the second the configuration is refused anyway.
final class NodeReader {
    let environment: [String: String]
    private(set) var issues: [ConfigurationIssue] = []
    private(set) var warnings: [ConfigurationIssue] = []

    init(environment: [String: String]) {
        self.environment = environment
    }

    func fail(_ path: String, _ message: String) {
        issues.append(ConfigurationIssue(path: path, message: message))
    }

    func warn(_ path: String, _ message: String) {
        warnings.append(ConfigurationIssue(path: path, message: message))
    }

    // MARK: mappings

    /// A mapping's entries by key, at a path in the file.
    struct Section {
        let path: String
        let entries: [String: Node]

        subscript(key: String) -> Node? { entries[key] }

        /// The path of one of this section's keys.
        func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    }

    /// The mapping at `path`, with its keys checked against `keys`. An absent or null node gives an
    /// empty section (every key takes its default); a node that is not a mapping gives nil.
    func section(_ node: Node?, at path: String, keys: [String]) -> Section? {
        guard let node, !Self.isNull(node) else { return Section(path: path, entries: [:]) }
        guard case .mapping(let mapping) = node else {
            fail(path, "must be a mapping with the keys \(keys.joined(separator: ", ")); got \(Self.kind(node))")
            return nil
        }
        var entries = [String: Node]()
        for (keyNode, value) in mapping {
            guard case .scalar(let key) = keyNode else {
                fail(path, "keys must be plain names; found \(Self.kind(keyNode)) used as a key")
                continue
            }
            guard keys.contains(key.string) else {
                let here = path.isEmpty ? key.string : "\(path).\(key.string)"
                fail(here, "unknown key '\(key.string)' (valid keys: \(keys.joined(separator: ", ")))")
                continue
            }
            entries[key.string] = value
        }
        return Section(path: path, entries: entries)
    }

    /// The items of the list under `key`, each with its path (`auth.keys[1]`); nil when absent.
    func list(_ section: Section, _ key: String, of what: String) -> [(node: Node, path: String)]? {
        let path = section.path(key)
        guard let node = section[key], !Self.isNull(node) else { return nil }
        guard case .sequence(let sequence) = node else {
            fail(path, "must be a list of \(what); got \(Self.kind(node))")
            return nil
        }
        return sequence.enumerated().map { (node: $0.element, path: "\(path)[\($0.offset)]") }
    }

    // MARK: scalars

    /// A scalar after `${NAME}` expansion.
    struct Scalar {
        /// The expanded value, never empty.
        var value: String
        /// The value as written in the file, before expansion.
        var raw: String
        /// True when the file wrote `${NAME}` rather than the value itself.
        var fromEnvironment: Bool
    }

    enum Lookup {
        /// Missing, null, or empty after expansion; `unset` names the variables that expanded to nothing.
        case absent(unset: [String])
        case present(Scalar)
        /// Not a scalar, or a broken `${`: an issue has been recorded.
        case invalid
    }

    /// The scalar under `key`, expanded. `what` describes a valid value, for the wrong-type message.
    func scalar(_ section: Section, _ key: String, what: String) -> Lookup {
        scalar(section[key], at: section.path(key), what: what)
    }

    func scalar(_ node: Node?, at path: String, what: String) -> Lookup {
        guard let node, !Self.isNull(node) else { return .absent(unset: []) }
        guard case .scalar(let scalar) = node else {
            fail(path, "must be \(what); got \(Self.kind(node))")
            return .invalid
        }
        switch EnvironmentExpansion.expand(scalar.string, environment: environment) {
        case .failure(let failure):
            fail(path, failure.message)
            return .invalid
        case .success(let expanded):
            if expanded.value.isEmpty { return .absent(unset: expanded.unset) }
            return .present(Scalar(value: expanded.value, raw: scalar.string, fromEnvironment: expanded.referencedEnvironment))
        }
    }

    /// The string under `key`, or nil when absent or invalid.
    func string(_ section: Section, _ key: String, what: String) -> String? {
        if case .present(let scalar) = scalar(section, key, what: what) { return scalar.value }
        return nil
    }

    /// The string under `key`; records "is required" when it is absent.
    func requiredString(_ section: Section, _ key: String, what: String) -> String? {
        requiredString(section[key], at: section.path(key), what: what)
    }

    func requiredString(_ node: Node?, at path: String, what: String) -> String? {
        switch scalar(node, at: path, what: what) {
        case .present(let scalar):
            return scalar.value
        case .absent(let unset):
            fail(path, "is required and must not be empty (\(what))\(Self.unsetHint(unset))")
            return nil
        case .invalid:
            return nil
        }
    }

    /// The integer under `key`, or nil when absent or invalid. Quotes the value when it is not a
    /// number, so never use it for a secret.
    func integer(_ section: Section, _ key: String, what: String) -> Int? {
        guard case .present(let scalar) = scalar(section, key, what: what) else { return nil }
        guard let value = Int(String(scalar.value.filter { $0 != "_" })) else {
            fail(section.path(key), "must be \(what); got '\(scalar.value)'")
            return nil
        }
        return value
    }

    /// The integer under `key` when it is greater than 0, else `fallback` (a value ≤ 0 is reported
    /// as "must be a number of UNIT greater than 0; got N"). `unit` is "bytes", "seconds", …
    func positiveInteger(_ section: Section, _ key: String, unit: String, default fallback: Int) -> Int {
        let value = integer(section, key, what: "a number of \(unit) greater than 0") ?? fallback
        guard value > 0 else {
            fail(section.path(key), "must be a number of \(unit) greater than 0; got \(value)")
            return fallback
        }
        return value
    }

    /// One of an enumeration's raw values, or nil when absent or invalid.
    func choice<Choice: RawRepresentable & CaseIterable>(_ section: Section, _ key: String) -> Choice?
    where Choice.RawValue == String {
        let names = Choice.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .present(let scalar) = scalar(section, key, what: "one of \(names)") else { return nil }
        guard let value = Choice(rawValue: scalar.value) else {
            fail(section.path(key), "must be one of \(names); got '\(scalar.value)'")
            return nil
        }
        return value
    }

    // MARK: helpers

    /// `null`, `~` and an empty plain value all mean "not given" in YAML; a quoted "null" is a string.
    static func isNull(_ node: Node) -> Bool {
        node.tag.rawValue == Tag.Name.null.rawValue
    }

    /// How a wrong value is described: by its YAML kind, never by its content.
    static func kind(_ node: Node) -> String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar: "a single value"
        case .alias: "an alias"
        }
    }

    /// Says which environment variables were unset, when that is why a value is missing.
    static func unsetHint(_ unset: [String]) -> String {
        switch unset.count {
        case 0: ""
        case 1: "; the environment variable \(unset[0]) is not set or is empty"
        default: "; the environment variables \(unset.joined(separator: ", ")) are not set or are empty"
        }
    }
}
