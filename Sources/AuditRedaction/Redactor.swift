import Foundation

/// A compiled custom pattern. `NSRegularExpression` is immutable once built and documented as safe
/// to use from several threads at once.
struct CompiledPattern: @unchecked Sendable {
    let name: String
    let regex: NSRegularExpression
    /// Bytes every match starts with (`EMP-` for `EMP-[0-9]{6}`): text without them skips the regex.
    let literal: [UInt8]?
}

/// Replaces personal data and secrets in text with typed markers such as `[REDACTED:email]`.
///
/// Pure (no I/O) and cheap to copy: build one from the configuration at start-up and share it.
/// Bodies are redacted as raw JSON text. Markers hold no quote or backslash, and every match
/// starts and ends outside JSON escapes, so a valid JSON document stays valid; a match that is a
/// whole bare JSON number (a card number in a number field) is replaced by a quoted marker.
///
/// Built-in patterns are found by one hand-written pass over the UTF-8 bytes (see `Scanner`);
/// only custom patterns use `NSRegularExpression`. Where matches overlap, the first in the order
/// secret, card, kr_rrn, us_ssn, email, phone, custom (in their order) wins, and a region already
/// taken is not matched again.
///
/// Known limits: JSON-escaped text is not unescaped (`alice\u0040example.com` is not seen as an
/// e-mail); custom patterns run on the original text, and a custom match overlapping a built-in
/// match is dropped rather than searched for again after it.
public struct Redactor: Sendable {
    /// The built-in patterns this redactor runs.
    public let patterns: [BuiltinPattern]
    let enabled: Enabled
    let triggers: [UInt8]
    /// By rule id: the six built-in names, then the custom names.
    let names: [String]
    let markers: [[UInt8]]
    let markerStrings: [String]
    let custom: [CompiledPattern]

    /// Compiles `rules`. Throws when a custom regex does not compile or a custom name is not
    /// `[A-Za-z0-9_.-]+` (it is printed inside markers, which must stay free of quotes).
    public init(_ rules: RedactionRules) throws(RedactionRulesError) {
        var compiled: [CompiledPattern] = []
        for (index, pattern) in rules.custom.enumerated() {
            let nameIsSafe = !pattern.name.isEmpty && pattern.name.utf8.allSatisfy {
                CharClass.table[Int($0)] & CharClass.word != 0 || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
            }
            guard nameIsSafe else {
                throw RedactionRulesError(description: "custom pattern \(index + 1): the name must be letters, digits, '_', '.' or '-'")
            }
            guard let regex = try? NSRegularExpression(pattern: pattern.regex) else {
                throw RedactionRulesError(description: "custom pattern '\(pattern.name)': the regex does not compile")
            }
            compiled.append(CompiledPattern(name: pattern.name, regex: regex, literal: Self.requiredLiteral(pattern.regex)))
        }
        self.patterns = rules.patterns
        self.enabled = Enabled(rules.patterns)
        self.triggers = Trigger.table(enabled)
        self.custom = compiled
        self.names = RuleID.builtinNames + compiled.map(\.name)
        self.markerStrings = names.map { "[REDACTED:\($0)]" }
        self.markers = markerStrings.map { Array($0.utf8) }
    }

    /// All six built-in patterns, no custom ones.
    public init() {
        self.patterns = BuiltinPattern.allCases
        self.enabled = Enabled(BuiltinPattern.allCases)
        self.triggers = Trigger.table(enabled)
        self.custom = []
        self.names = RuleID.builtinNames
        self.markerStrings = names.map { "[REDACTED:\($0)]" }
        self.markers = markerStrings.map { Array($0.utf8) }
    }

    /// `text` with every match replaced, and the counts. Text with no match comes back as it was
    /// given (the same storage, no copy).
    public func redact(_ text: String) -> Redacted {
        var text = text
        var found = text.withUTF8 { self.candidates(in: $0, final: true, keepingFrom: 0) }
        if !custom.isEmpty { found += customCandidates(in: text, keepingFrom: 0) }
        if found.isEmpty { return Redacted(text: text, counts: [:]) }
        let accepted = Self.resolve(found)
        let quoted = text.withUTF8 { buffer in accepted.map { Self.isBareJSONNumber(buffer, $0.start, $0.end) } }
        // Built from slices of `text`, which are known to be valid UTF-8: no second validation pass.
        var out = ""
        out.reserveCapacity(text.utf8.count + accepted.count * 24)
        var counts: [String: Int] = [:]
        let utf8 = text.utf8
        var last = utf8.startIndex
        var lastOffset = 0
        for (c, q) in zip(accepted, quoted) {
            let start = utf8.index(last, offsetBy: c.start - lastOffset)
            out.append(contentsOf: text[last..<start])
            if q { out.append("\"") }
            out.append(markerStrings[c.rule])
            if q { out.append("\"") }
            last = utf8.index(start, offsetBy: c.end - c.start)
            lastOffset = c.end
            counts[names[c.rule], default: 0] += 1
        }
        out.append(contentsOf: text[last...])
        return Redacted(text: out, counts: counts)
    }

    // MARK: internals shared with StreamingRedactor

    /// Built-in candidates in `buffer`, keeping those that start at or after `keepingFrom`.
    func candidates(in buffer: UnsafeBufferPointer<UInt8>, final: Bool, keepingFrom: Int) -> [Candidate] {
        guard enabled.secret || enabled.card || enabled.krRRN || enabled.usSSN || enabled.email || enabled.phone,
            buffer.count > 0
        else { return [] }
        return CharClass.table.withUnsafeBufferPointer { cls in
            triggers.withUnsafeBufferPointer { trig in
                var scanner = Scanner(buffer, cls: cls, triggers: trig, enabled: enabled, final: final)
                scanner.scan()
                if keepingFrom > 0 { scanner.found.removeAll { $0.start < keepingFrom } }
                return scanner.found
            }
        }
    }

    /// Matches of the custom patterns in `text`, as UTF-8 offsets, keeping those that start at or
    /// after `keepingFrom`. Empty matches are ignored; a match starting or ending inside a JSON
    /// escape is shrunk to outside it.
    func customCandidates(in text: String, keepingFrom: Int) -> [Candidate] {
        var found: [Candidate] = []
        let whole = NSRange(location: 0, length: text.utf16.count)
        var text = text
        for (k, pattern) in custom.enumerated() {
            if let literal = pattern.literal, !text.withUTF8({ Self.contains($0, literal) }) { continue }
            for match in pattern.regex.matches(in: text, range: whole) where match.range.length > 0 {
                guard let range = Range(match.range, in: text) else { continue }
                let start = text.utf8.distance(from: text.startIndex, to: range.lowerBound)
                let end = start + text.utf8.distance(from: range.lowerBound, to: range.upperBound)
                guard end > keepingFrom, let (s, e) = text.withUTF8({ Scanner.escapeSafe($0, start, end) }), s >= keepingFrom
                else { continue }
                found.append(Candidate(start: s, end: e, rule: RuleID.firstCustom + k))
            }
        }
        return found
    }

    /// Whether `needle` occurs in `haystack`.
    static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count, let base = haystack.baseAddress else { return false }
        return needle.withUnsafeBufferPointer { n in
            var i = 0
            let last = haystack.count - n.count
            while i <= last {
                // memchr for the first byte, then compare the rest.
                guard let hit = memchr(base + i, Int32(first), last - i + 1) else { return false }
                i = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                if memcmp(base + i, n.baseAddress!, n.count) == 0 { return true }
                i += 1
            }
            return false
        }
    }

    /// The literal bytes every match of `pattern` begins with, when there are at least two and
    /// the pattern has no alternation: leading `^` and `\b` are skipped, then plain ASCII
    /// characters and escaped punctuation are taken up to the first other construct (a
    /// quantifier on the last one drops it). Conservative: nil whenever unsure.
    static func requiredLiteral(_ pattern: String) -> [UInt8]? {
        let p = Array(pattern.utf8)
        guard !p.contains(UInt8(ascii: "|")) else { return nil }
        func isPlain(_ b: UInt8) -> Bool {
            CharClass.table[Int(b)] & CharClass.alnum != 0 || "-_:=/@#%&,;'\"<>~` !".utf8.contains(b)
        }
        func isEscapedPunctuation(_ b: UInt8) -> Bool { b < 0x80 && CharClass.table[Int(b)] & CharClass.alnum == 0 && b > 0x20 }
        var k = 0
        while true {
            if k < p.count && p[k] == UInt8(ascii: "^") {
                k += 1
            } else if k + 1 < p.count && p[k] == UInt8(ascii: "\\") && p[k + 1] == UInt8(ascii: "b") {
                k += 2
            } else {
                break
            }
        }
        var literal: [UInt8] = []
        while k < p.count {
            if isPlain(p[k]) {
                literal.append(p[k])
                k += 1
            } else if p[k] == UInt8(ascii: "\\") && k + 1 < p.count && isEscapedPunctuation(p[k + 1]) {
                literal.append(p[k + 1])
                k += 2
            } else {
                break
            }
        }
        if k < p.count && "?*{".utf8.contains(p[k]) && !literal.isEmpty { literal.removeLast() }
        return literal.count >= 2 ? literal : nil
    }

    /// Settles overlaps: rule by rule in precedence order, a candidate is kept when it overlaps
    /// nothing kept so far (within a rule, the leftmost, then the longest). Sorted by start.
    static func resolve(_ candidates: [Candidate]) -> [Candidate] {
        if candidates.count <= 1 { return candidates }
        let sorted = candidates.sorted { a, b in
            if a.rule != b.rule { return a.rule < b.rule }
            if a.start != b.start { return a.start < b.start }
            return a.end > b.end
        }
        var accepted: [Candidate] = []
        var g = 0
        while g < sorted.count {
            var h = g
            while h < sorted.count && sorted[h].rule == sorted[g].rule { h += 1 }
            var mine: [Candidate] = []
            var a = 0
            var lastEnd = Int.min
            for c in sorted[g..<h] where c.start >= lastEnd {
                while a < accepted.count && accepted[a].end <= c.start { a += 1 }
                if a < accepted.count && accepted[a].start < c.end { continue }
                mine.append(c)
                lastEnd = c.end
            }
            if accepted.isEmpty {
                accepted = mine
            } else if !mine.isEmpty {
                var merged: [Candidate] = []
                merged.reserveCapacity(accepted.count + mine.count)
                var x = 0
                var y = 0
                while x < accepted.count || y < mine.count {
                    if y == mine.count || (x < accepted.count && accepted[x].start < mine[y].start) {
                        merged.append(accepted[x])
                        x += 1
                    } else {
                        merged.append(mine[y])
                        y += 1
                    }
                }
                accepted = merged
            }
            g = h
        }
        return accepted
    }

    /// `buffer[from..<to]` with the accepted candidates (sorted, inside the range) replaced.
    func render(
        _ buffer: UnsafeBufferPointer<UInt8>, from: Int, to: Int, _ accepted: [Candidate], counts: inout [String: Int]
    ) -> String {
        var length = to - from
        var quoted: [Bool] = []
        quoted.reserveCapacity(accepted.count)
        for c in accepted {
            let q = Self.isBareJSONNumber(buffer, c.start, c.end)
            quoted.append(q)
            length += markers[c.rule].count + (q ? 2 : 0) - (c.end - c.start)
            counts[names[c.rule], default: 0] += 1
        }
        guard length > 0 else { return "" }
        return String(unsafeUninitializedCapacity: length) { out in
            guard let dst = out.baseAddress, let src = buffer.baseAddress else { return 0 }
            var o = 0
            var last = from
            for (k, c) in accepted.enumerated() {
                (dst + o).initialize(from: src + last, count: c.start - last)
                o += c.start - last
                if quoted[k] {
                    dst[o] = UInt8(ascii: "\"")
                    o += 1
                }
                markers[c.rule].withUnsafeBufferPointer { m in (dst + o).initialize(from: m.baseAddress!, count: m.count) }
                o += markers[c.rule].count
                if quoted[k] {
                    dst[o] = UInt8(ascii: "\"")
                    o += 1
                }
                last = c.end
            }
            (dst + o).initialize(from: src + last, count: to - last)
            return o + (to - last)
        }
    }

    /// Digits only, not starting with 0, after `":`, `,` or `[` and before `,`, `}` or `]`
    /// (whitespace aside): a JSON number, which a bare marker would turn into invalid JSON.
    /// (`card: 4111111111111111, exp` in prose is not one: no quote before the colon.)
    static func isBareJSONNumber(_ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        guard end > start, p[start] != UInt8(ascii: "0") else { return false }
        for k in start..<end where p[k] < UInt8(ascii: "0") || p[k] > UInt8(ascii: "9") { return false }
        func isSpace(_ b: UInt8) -> Bool { CharClass.table[Int(b)] & CharClass.space != 0 }
        var b = start - 1
        while b >= 0 && start - b <= 16 && isSpace(p[b]) { b -= 1 }
        guard b >= 0 else { return false }
        if p[b] == UInt8(ascii: ":") {
            let colon = b
            b -= 1
            while b >= 0 && colon - b <= 16 && isSpace(p[b]) { b -= 1 }
            guard b >= 0, p[b] == UInt8(ascii: "\"") else { return false }
        } else if p[b] != UInt8(ascii: ",") && p[b] != UInt8(ascii: "[") {
            return false
        }
        var a = end
        while a < p.count && a - end < 16 && isSpace(p[a]) { a += 1 }
        return a < p.count && (p[a] == UInt8(ascii: ",") || p[a] == UInt8(ascii: "}") || p[a] == UInt8(ascii: "]"))
    }
}
