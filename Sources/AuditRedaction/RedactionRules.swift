/// The built-in detectors, by the names the configuration file uses (`redaction.patterns`).
///
/// The raw values are also the names in the markers (`[REDACTED:kr_rrn]`) and in `Redacted.counts`.
public enum BuiltinPattern: String, Sendable, Hashable, CaseIterable, Codable {
    /// `local@domain.tld`, the practical subset of RFC 5322 that people write.
    case email
    /// E.164 numbers (`+82 10-1234-5678`) and Korean domestic numbers (`010-1234-5678`, `02-123-4567`).
    case phone
    /// Payment card numbers: 13–19 digits, Luhn-valid.
    case card
    /// Korean resident (and foreigner) registration numbers, check digit validated.
    case krRRN = "kr_rrn"
    /// US social security numbers outside the never-issued ranges.
    case usSSN = "us_ssn"
    /// API keys, tokens and private keys.
    case secret
}

/// What a `Redactor` removes: the contract's `redaction:` section.
public struct RedactionRules: Sendable {
    /// The built-in detectors to run. Their order here does not matter: overlaps are settled in the
    /// fixed order secret, card, kr_rrn, us_ssn, email, phone, then the custom patterns.
    public var patterns: [BuiltinPattern]
    /// The operator's own patterns (`NSRegularExpression` syntax), in order of precedence, applied
    /// after the built-ins. A name becomes the marker's label, so it must be `[A-Za-z0-9_.-]+`.
    public var custom: [(name: String, regex: String)]

    public init(patterns: [BuiltinPattern] = BuiltinPattern.allCases, custom: [(name: String, regex: String)] = []) {
        self.patterns = patterns
        self.custom = custom
    }
}

/// The result of redacting one text.
public struct Redacted: Sendable, Equatable {
    /// The text with every match replaced by `[REDACTED:<name>]`.
    public var text: String
    /// Matches replaced, by pattern name (`email`, `kr_rrn`, a custom name, …); names with no match are absent.
    public var counts: [String: Int]
    /// All matches replaced: the sum of `counts`.
    public var total: Int { counts.values.reduce(0, +) }

    public init(text: String, counts: [String: Int]) {
        self.text = text
        self.counts = counts
    }
}

/// Rules a `Redactor` cannot be built from. The message names the pattern but never echoes text.
public struct RedactionRulesError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
}
