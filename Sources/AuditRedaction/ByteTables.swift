/// Per-byte character classes for the scanner, as bit flags in one 256-entry table, so that every
/// "is this byte in set X" test is one load and one AND.
enum CharClass {
    static let word: UInt16 = 1 << 0  // [A-Za-z0-9_]
    static let digit: UInt16 = 1 << 1  // [0-9]
    static let alpha: UInt16 = 1 << 2  // [A-Za-z]
    static let hex: UInt16 = 1 << 3  // [0-9A-Fa-f]
    static let sk: UInt16 = 1 << 4  // [A-Za-z0-9_-]: sk-… keys
    static let bearer: UInt16 = 1 << 5  // [A-Za-z0-9._~+/=-]: RFC 6750 b64token
    static let upperAlnum: UInt16 = 1 << 6  // [A-Z0-9]: AWS key ids
    static let slack: UInt16 = 1 << 7  // [A-Za-z0-9-]
    static let pemBody: UInt16 = 1 << 8  // base64, CR, LF, tab, and \ : , - (JSON escapes, RFC 1421 headers)
    static let local: UInt16 = 1 << 9  // [A-Za-z0-9._%+-]: e-mail local part
    static let domain: UInt16 = 1 << 10  // [A-Za-z0-9.-]
    static let awsValue: UInt16 = 1 << 11  // [A-Za-z0-9/+=]
    static let alnum: UInt16 = 1 << 12  // [A-Za-z0-9]
    static let space: UInt16 = 1 << 13  // space, tab, CR, LF
    static let upper: UInt16 = 1 << 14  // [A-Z]

    static let table: [UInt16] = {
        var t = [UInt16](repeating: 0, count: 256)
        func add(_ bytes: some Sequence<UInt8>, _ flags: UInt16) { for b in bytes { t[Int(b)] |= flags } }
        let digits = UInt8(ascii: "0")...UInt8(ascii: "9")
        let upperCase = UInt8(ascii: "A")...UInt8(ascii: "Z")
        let lowerCase = UInt8(ascii: "a")...UInt8(ascii: "z")
        let alnumAll: UInt16 = word | alnum | sk | bearer | slack | pemBody | local | domain | awsValue
        add(digits, alnumAll | digit | hex | upperAlnum)
        add(upperCase, alnumAll | alpha | upperAlnum | upper)
        add(lowerCase, alnumAll | alpha)
        add(UInt8(ascii: "a")...UInt8(ascii: "f"), hex)
        add(UInt8(ascii: "A")...UInt8(ascii: "F"), hex)
        add("_".utf8, word | sk | bearer | local)
        add("-".utf8, sk | bearer | slack | pemBody | local | domain)
        add(".".utf8, bearer | local | domain)
        add("~".utf8, bearer)
        add("+".utf8, bearer | pemBody | local | awsValue)
        add("/".utf8, bearer | pemBody | awsValue)
        add("=".utf8, bearer | pemBody | awsValue)
        add("%".utf8, local)
        add("\r\n\t".utf8, pemBody | space)
        add(" ".utf8, space)
        add("\\:,".utf8, pemBody)
        return t
    }()
}

/// The scanner's dispatch classes: what to try at a byte. Built per `Redactor`, so that disabled
/// patterns cost nothing (with only `email`, every byte but `@` is `none` or `word`).
enum Trigger {
    static let none: UInt8 = 0
    /// A word byte that starts nothing: the rest of its word is skipped.
    static let word: UInt8 = 1
    /// A digit at a word start: card, kr_rrn, us_ssn, Korean phone numbers.
    static let digit: UInt8 = 2
    /// A letter that may start a secret (`sk-`, `Bearer`, `AKIA`, `ghp_`, …) at a word start.
    static let letter: UInt8 = 3
    static let at: UInt8 = 4
    static let plus: UInt8 = 5
    static let dash: UInt8 = 6

    static func table(_ enabled: Enabled) -> [UInt8] {
        var t = [UInt8](repeating: none, count: 256)
        for (b, flags) in CharClass.table.enumerated() where flags & CharClass.word != 0 { t[b] = word }
        if enabled.card || enabled.krRRN || enabled.usSSN || enabled.phone {
            for b in UInt8(ascii: "0")...UInt8(ascii: "9") { t[Int(b)] = digit }
        }
        if enabled.secret {
            for c in "asxbgASB".utf8 { t[Int(c)] = letter }
            t[Int(UInt8(ascii: "-"))] = dash
        }
        if enabled.email { t[Int(UInt8(ascii: "@"))] = at }
        if enabled.phone { t[Int(UInt8(ascii: "+"))] = plus }
        return t
    }
}

/// Which built-in detectors run.
struct Enabled: Sendable {
    var secret = false, card = false, krRRN = false, usSSN = false, email = false, phone = false

    init(_ patterns: [BuiltinPattern]) {
        for p in patterns {
            switch p {
            case .secret: secret = true
            case .card: card = true
            case .krRRN: krRRN = true
            case .usSSN: usSSN = true
            case .email: email = true
            case .phone: phone = true
            }
        }
    }
}

/// Rule ids: the precedence order of the contract (lower wins an overlap), and the index of the
/// rule's name and marker. Custom patterns follow, in the order given.
enum RuleID {
    static let secret = 0
    static let card = 1
    static let krRRN = 2
    static let usSSN = 3
    static let email = 4
    static let phone = 5
    static let firstCustom = 6
    static let builtinNames = ["secret", "card", "kr_rrn", "us_ssn", "email", "phone"]
}
