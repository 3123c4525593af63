import Foundation

/// `${NAME}` substitution in configuration values: secrets live in the environment, not the file.
///
/// Only the braced form is recognised, so a `$` in a regex (`EMP-[0-9]{6}$`) or a password is left
/// alone. An unset variable expands to the empty string; the caller then treats an empty value as
/// absent, which is what makes `proxy: ${HTTPS_PROXY}` mean "no proxy" when the variable is unset.
enum EnvironmentExpansion {
    struct Expanded: Equatable {
        /// The value with every `${NAME}` replaced.
        var value: String
        /// Variables that were referenced but unset or empty, for messages about missing values.
        var unset: [String]
        /// True when the text held at least one `${NAME}`.
        var referencedEnvironment: Bool
    }

    enum Failure: Error, Equatable {
        case unterminated
        case invalidName(String)

        /// Never quotes the value itself, which may be a secret.
        var message: String {
            switch self {
            case .unterminated:
                "has a '${' without its closing '}' (write ${NAME} to use the environment variable NAME)"
            case .invalidName:
                // The text between the braces is not repeated: a key pasted as ${sk-...} would leak.
                "has a ${...} whose content is not an environment variable name (letters, digits and '_', not starting with a digit)"
            }
        }
    }

    static func expand(_ text: String, environment: [String: String]) -> Result<Expanded, Failure> {
        var output = ""
        var unset = [String]()
        var referenced = false
        var rest = text[...]
        while let start = rest.range(of: "${") {
            output += rest[..<start.lowerBound]
            let afterOpen = rest[start.upperBound...]
            guard let close = afterOpen.firstIndex(of: "}") else { return .failure(.unterminated) }
            let name = String(afterOpen[..<close])
            guard isVariableName(name) else { return .failure(.invalidName(name)) }
            referenced = true
            let value = environment[name] ?? ""
            if value.isEmpty { unset.append(name) }
            output += value
            rest = afterOpen[afterOpen.index(after: close)...]
        }
        output += rest
        return .success(Expanded(value: output, unset: unset, referencedEnvironment: referenced))
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic)
        else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }
}
