/// A region the scanner proposes to redact, before overlaps are settled.
struct Candidate: Sendable {
    /// UTF-8 offsets in the scanned buffer: `start..<end`.
    var start: Int
    var end: Int
    /// `RuleID`: precedence and name.
    var rule: Int
    /// Set when the candidate is a run (a token, a private-key body) that reached the end of a
    /// buffer that is not the end of the text: where it ends is not known yet.
    var open: OpenRun? = nil
}

/// The unbounded parts of secrets: runs whose end is only known when a byte outside the run
/// arrives. The streaming redactor holds them back, and past a limit swallows the rest.
enum RunKind: Sendable, Equatable {
    /// A run of bytes of one `CharClass` set (`sk-…`, a bearer token, …).
    case token(UInt16)
    /// A private-key body, up to and including its `-----END … -----` line.
    case pem
}

struct OpenRun: Sendable, Equatable {
    var kind: RunKind
    /// Bytes before this offset surely belong to the run (a PEM footer may be half-arrived after it).
    var safeEnd: Int
    /// The run's last byte before `safeEnd` (a PEM body allows a space only after `:`).
    var last: UInt8
}

/// How far a run goes.
enum RunExtent {
    case done(Int)
    case open(safeEnd: Int, last: UInt8)
}

private let backslash = UInt8(ascii: "\\")

/// One pass over UTF-8 bytes that proposes candidates for the built-in patterns.
///
/// Cheap bytes are dismissed with one table load; words are skipped whole, since every letter and
/// digit detector needs a word start; the detectors themselves only run at `@`, `+`, `-----BEGIN`,
/// digits and a few letters at word starts, and look at a bounded neighbourhood (except the runs
/// of `RunKind`). Every decision depends only on nearby bytes, never on how the loop reached them:
/// that is what lets `StreamingRedactor` rescan a window and get the one-shot answer.
struct Scanner {
    let p: UnsafeBufferPointer<UInt8>
    let n: Int
    let cls: UnsafeBufferPointer<UInt16>
    let triggers: UnsafeBufferPointer<UInt8>
    let enabled: Enabled
    /// The buffer ends where the text ends (one-shot, or the stream's last window).
    let final: Bool
    var found: [Candidate] = []

    init(
        _ p: UnsafeBufferPointer<UInt8>, cls: UnsafeBufferPointer<UInt16>, triggers: UnsafeBufferPointer<UInt8>,
        enabled: Enabled, final: Bool
    ) {
        self.p = p
        self.n = p.count
        self.cls = cls
        self.triggers = triggers
        self.enabled = enabled
        self.final = final
    }

    // MARK: byte helpers

    @inline(__always) func byte(_ i: Int) -> UInt8 { i >= 0 && i < n ? p[i] : 0 }
    @inline(__always) func isIn(_ i: Int, _ set: UInt16) -> Bool { i >= 0 && i < n && cls[Int(p[i])] & set != 0 }
    @inline(__always) func isDigit(_ i: Int) -> Bool { isIn(i, CharClass.digit) }
    @inline(__always) func digit(_ i: Int) -> Int { Int(p[i] &- UInt8(ascii: "0")) }

    /// `literal` at `i`, exactly.
    func has(_ i: Int, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard i >= 0, i + count <= n else { return false }
        let s = literal.utf8Start
        for k in 0..<count where p[i + k] != s[k] { return false }
        return true
    }

    /// `literal` (lower-case ASCII) at `i`, ignoring the case of letters.
    func hasIgnoringCase(_ i: Int, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard i >= 0, i + count <= n else { return false }
        let s = literal.utf8Start
        for k in 0..<count {
            var b = p[i + k]
            if cls[Int(b)] & CharClass.upper != 0 { b |= 0x20 }
            if b != s[k] { return false }
        }
        return true
    }

    func digitCount(from i: Int) -> Int {
        var j = i
        while j < n && cls[Int(p[j])] & CharClass.digit != 0 { j += 1 }
        return j - i
    }

    @inline(__always) static func isEscapeLetter(_ b: UInt8) -> Bool {
        b == UInt8(ascii: "n") || b == UInt8(ascii: "t") || b == UInt8(ascii: "r") || b == UInt8(ascii: "b") || b == UInt8(ascii: "f")
    }

    func hex4(_ i: Int) -> Bool {
        isIn(i, CharClass.hex) && isIn(i + 1, CharClass.hex) && isIn(i + 2, CharClass.hex) && isIn(i + 3, CharClass.hex)
    }

    /// Whether the byte at `q` ends a JSON escape (`\n`, `\t`, `\r`, `\b`, `\f`, `\uXXXX`): text
    /// right after it starts a word even though the byte is a letter or digit.
    func isEscapeEnd(_ q: Int) -> Bool {
        if q >= 1 && p[q - 1] == backslash && Self.isEscapeLetter(p[q]) { return true }
        return q >= 5 && p[q - 5] == backslash && p[q - 4] == UInt8(ascii: "u") && hex4(q - 3)
    }

    /// A word may start at `i`: the byte before is not a word byte, or ends a JSON escape.
    func wordStart(_ i: Int) -> Bool {
        i == 0 || cls[Int(p[i - 1])] & CharClass.word == 0 || isEscapeEnd(i - 1)
    }

    /// A number may start at `i`: a word start not inside a decimal, a version, a date or a
    /// dash-joined number (`.`, `-`, `/`, `+`, `_` before it).
    func numberStart(_ i: Int) -> Bool {
        guard i > 0 else { return true }
        let b = p[i - 1]
        if cls[Int(b)] & CharClass.alnum != 0 { return isEscapeEnd(i - 1) }
        switch b {
        case UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: "+"): return false
        default: return true
        }
    }

    /// A number may end at `e`: no word byte after it, and no `.`, `-` or `/` followed by a digit.
    func numberEnd(_ e: Int) -> Bool {
        guard e < n else { return true }
        let b = p[e]
        if cls[Int(b)] & CharClass.word != 0 { return false }
        if b == UInt8(ascii: ".") || b == UInt8(ascii: "-") || b == UInt8(ascii: "/") { return !isDigit(e + 1) }
        return true
    }

    mutating func add(_ start: Int, _ end: Int, _ rule: Int, open: OpenRun? = nil) {
        guard let (start, end) = Self.escapeSafe(p, start, end) else { return }
        found.append(Candidate(start: start, end: end, rule: rule, open: open))
    }

    /// `start..<end` shrunk so that it neither starts nor ends inside a JSON escape (`\n`,
    /// `\\`, `\uXXXX`): replacing it by a marker then keeps a JSON string valid. Nil if nothing is
    /// left. Runs of more than 100 backslashes are not counted further.
    static func escapeSafe(_ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> (Int, Int)? {
        func backslashes(before i: Int) -> Int {
            var k = 0
            while k < 100 && i - k - 1 >= 0 && p[i - k - 1] == backslash { k += 1 }
            return k
        }
        func isHex(_ i: Int) -> Bool { i < p.count && CharClass.table[Int(p[i])] & CharClass.hex != 0 }
        func isUnicodeEscape(_ u: Int) -> Bool {
            u >= 1 && u + 4 < p.count && p[u] == UInt8(ascii: "u") && backslashes(before: u) % 2 == 1
                && isHex(u + 1) && isHex(u + 2) && isHex(u + 3) && isHex(u + 4)
        }
        var s = start
        var e = end
        if s > 0 && s < p.count && backslashes(before: s) % 2 == 1 {
            // Only a JSON escape moves the start: in other text a backslash is just a character.
            if isUnicodeEscape(s) {
                s += 5
            } else if isEscapeLetter(p[s]) || p[s] == UInt8(ascii: "\"") || p[s] == backslash || p[s] == UInt8(ascii: "/") {
                s += 1
            }
        } else {
            for d in 1...4 where isUnicodeEscape(s - d) {
                s = s - d + 5
                break
            }
        }
        var trailing = 0
        while trailing < 100 && e - trailing - 1 >= s && p[e - trailing - 1] == backslash { trailing += 1 }
        if trailing % 2 == 1 { e -= 1 }
        return s < e ? (s, e) : nil
    }

    // MARK: the loop

    mutating func scan() {
        var i = 0
        while i < n {
            let t = triggers[Int(p[i])]
            if t == Trigger.none {
                i &+= 1
                continue
            }
            if t <= Trigger.letter {
                // A word start. After a backslash, the letter of a JSON escape is not part of the
                // word that follows it: `\nsk-…` starts a key at `s`.
                if i > 0 && p[i - 1] == backslash {
                    let b = p[i]
                    if b == UInt8(ascii: "u") && hex4(i + 1) {
                        i += 5
                        continue
                    }
                    if Self.isEscapeLetter(b) {
                        i += 1
                        continue
                    }
                }
                if t == Trigger.digit {
                    numeric(i)
                } else if t == Trigger.letter && i + 1 < n && Self.mayStartSecret(p[i], p[i + 1]) {
                    secretAtWord(i)
                }
                // The scan never jumps over a found candidate: which bytes it visits must depend on
                // nearby bytes only (see `StreamingRedactor`), and overlaps are settled later.
                i += 1
                while i < n && cls[Int(p[i])] & CharClass.word != 0 { i += 1 }
                continue
            }
            switch t {
            case Trigger.at:
                email(i)
            case Trigger.plus:
                internationalPhone(i)
            default:
                privateKey(i)
            }
            i += 1
        }
    }

    /// The first two bytes of every letter-started secret and label (`sk`, `se`, `ag`, `aw`, `AK`,
    /// `AS`, `be`, `gh`, `gi`, `xo`, in their cases): most words stop here.
    @inline(__always) static func mayStartSecret(_ first: UInt8, _ second: UInt8) -> Bool {
        let s = second | 0x20  // lower-cased when a letter
        switch first {
        case UInt8(ascii: "s"): return second == UInt8(ascii: "k") || s == UInt8(ascii: "e")
        case UInt8(ascii: "S"), UInt8(ascii: "b"), UInt8(ascii: "B"): return s == UInt8(ascii: "e")
        case UInt8(ascii: "a"): return second == UInt8(ascii: "g") || s == UInt8(ascii: "w")
        case UInt8(ascii: "A"): return second == UInt8(ascii: "K") || second == UInt8(ascii: "S") || s == UInt8(ascii: "w")
        case UInt8(ascii: "g"): return second == UInt8(ascii: "h") || second == UInt8(ascii: "i")
        case UInt8(ascii: "x"): return second == UInt8(ascii: "o")
        default: return false
        }
    }

    // MARK: numbers

    mutating func numeric(_ i: Int) {
        let run = digitCount(from: i)
        // Token counts, years, prices: only these shapes can start a match.
        switch run {
        case 2, 3, 4, 6:
            let next = byte(i + run)
            guard next == UInt8(ascii: "-") || next == UInt8(ascii: " ") || next == UInt8(ascii: ".") else { return }
        case 10...19: break
        default: return
        }
        guard numberStart(i) else { return }
        if enabled.card, let end = card(i, run) { add(i, end, RuleID.card) }
        if enabled.krRRN, let end = residentNumber(i, run) { add(i, end, RuleID.krRRN) }
        if enabled.usSSN, run == 3, let end = socialSecurityNumber(i) { add(i, end, RuleID.usSSN) }
        if enabled.phone, p[i] == UInt8(ascii: "0"), let end = koreanPhone(i, run) { add(i, end, RuleID.phone) }
    }

    /// Luhn over the digits of `from..<to` (separators skipped).
    func luhn(_ from: Int, _ to: Int) -> Bool {
        var sum = 0
        var double = false
        var j = to - 1
        while j >= from {
            if cls[Int(p[j])] & CharClass.digit != 0 {
                var d = digit(j)
                if double {
                    d *= 2
                    if d > 9 { d -= 9 }
                }
                sum += d
                double.toggle()
            }
            j -= 1
        }
        return sum % 10 == 0
    }

    /// 13–19 digits, Luhn-valid, starting with 2–6 (the issuer ranges of Visa, Mastercard, Amex,
    /// Discover, JCB, Diners, UnionPay, Maestro): millisecond and nanosecond timestamps and most
    /// ids start with 1, and one random number in ten passes Luhn. Either one run of digits, or
    /// groups joined by one kind of separator (space or dash): 4-4-4-4(-3), 4-4-4-1…4, 4-6-4, 4-6-5.
    func card(_ i: Int, _ run: Int) -> Int? {
        guard p[i] >= UInt8(ascii: "2") && p[i] <= UInt8(ascii: "6") else { return nil }
        if run >= 13 && run <= 19 {
            return luhn(i, i + run) && numberEnd(i + run) ? i + run : nil
        }
        guard run == 4 else { return nil }
        let sep = byte(i + 4)
        guard sep == UInt8(ascii: " ") || sep == UInt8(ascii: "-") else { return nil }
        // Group lengths and ends, at most 6 groups, on the stack.
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 12) { g -> Int? in
            g[0] = 4
            g[6] = i + 4
            var count = 1
            var pos = i + 4
            while count < 6 && byte(pos) == sep && isDigit(pos + 1) {
                let len = digitCount(from: pos + 1)
                pos += 1 + len
                g[count] = len
                g[6 + count] = pos
                count += 1
            }
            var k = count
            while k >= 2 {
                defer { k -= 1 }
                var total = 0
                var middleFours = true
                for m in 0..<k {
                    total += g[m]
                    if m > 0 && m < k - 1 && g[m] != 4 { middleFours = false }
                }
                guard total >= 13 && total <= 19 else { continue }
                let fours = middleFours && (1...4).contains(g[k - 1])
                let amexDiners = k == 3 && g[1] == 6 && (4...5).contains(g[2])
                guard fours || amexDiners else { continue }
                if luhn(i, g[6 + k - 1]) && numberEnd(g[6 + k - 1]) { return g[6 + k - 1] }
            }
            return nil
        }
    }

    /// `YYMMDD-GNNNNNC` or the 13 digits alone.
    ///
    /// The date must exist (century from G: 1, 2, 5, 6 → 1900s; 3, 4, 7, 8 → 2000s), G is 1–4
    /// (citizens) or 5–8 (foreigners), and the check digit C must equal
    /// (11 − Σ dᵢ·wᵢ mod 11) mod 10 with weights 2,3,4,5,6,7,8,9,2,3,4,5.
    ///
    /// Numbers issued since October 2020 carry a random last part, so their check digit is valid
    /// only by chance (one in ten) and most of them are not redacted. We validate anyway: without
    /// the check, any 13-digit number whose first six digits look like a date would be taken (order
    /// ids, phone-like ids, timestamps), and the dashed form with a valid date is rare outside
    /// RRNs. Operators who must catch new RRNs can add a custom pattern such as
    /// `[0-9]{6}-[1-8][0-9]{6}`. Foreigners' numbers use the same formula here; the older
    /// (13 − …) variant of some foreigner numbers is not recognised.
    func residentNumber(_ i: Int, _ run: Int) -> Int? {
        let dashed: Bool
        let end: Int
        if run == 6 && byte(i + 6) == UInt8(ascii: "-") && digitCount(from: i + 7) == 7 {
            dashed = true
            end = i + 14
        } else if run == 13 {
            dashed = false
            end = i + 13
        } else {
            return nil
        }
        guard numberEnd(end) else { return nil }
        func d(_ k: Int) -> Int { digit(dashed && k >= 6 ? i + k + 1 : i + k) }
        let g = d(6)
        guard g >= 1 && g <= 8 else { return nil }
        let year = (g == 1 || g == 2 || g == 5 || g == 6 ? 1900 : 2000) + d(0) * 10 + d(1)
        let month = d(2) * 10 + d(3)
        let day = d(4) * 10 + d(5)
        guard month >= 1 && month <= 12 && day >= 1 && day <= Self.daysIn(month: month, year: year) else { return nil }
        let weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
        var sum = d(0) * weights.0 + d(1) * weights.1 + d(2) * weights.2 + d(3) * weights.3
        sum += d(4) * weights.4 + d(5) * weights.5 + d(6) * weights.6 + d(7) * weights.7
        sum += d(8) * weights.8 + d(9) * weights.9 + d(10) * weights.10 + d(11) * weights.11
        return (11 - sum % 11) % 10 == d(12) ? end : nil
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// `AAA-GG-SSSS`, never issued: area 000, 666 or 900–999, group 00, serial 0000.
    func socialSecurityNumber(_ i: Int) -> Int? {
        guard byte(i + 3) == UInt8(ascii: "-"), digitCount(from: i + 4) == 2, byte(i + 6) == UInt8(ascii: "-"),
            digitCount(from: i + 7) == 4, numberEnd(i + 11)
        else { return nil }
        let area = digit(i) * 100 + digit(i + 1) * 10 + digit(i + 2)
        let group = digit(i + 4) * 10 + digit(i + 5)
        let serial = digit(i + 7) * 1000 + digit(i + 8) * 100 + digit(i + 9) * 10 + digit(i + 10)
        guard area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 else { return nil }
        return i + 11
    }

    /// Korean domestic numbers: mobile `01[016789]` as `010-1234-5678`, `010 1234 5678`,
    /// `010.1234.5678` or `01012345678`; area codes 02, 031–033, 041–044, 051–055, 061–064, 070
    /// and 080 with separators only (`02-123-4567`, `031-1234-5678`).
    func koreanPhone(_ i: Int, _ run: Int) -> Int? {
        let b1 = byte(i + 1)
        let b2 = byte(i + 2)
        let mobile = b1 == UInt8(ascii: "1") && "016789".utf8.contains(b2)
        if run == 10 || run == 11 {
            return mobile && numberEnd(i + run) ? i + run : nil
        }
        let area: Bool
        switch run {
        case 2: area = b1 == UInt8(ascii: "2")
        case 3:
            let d1 = Int(b1) - 48
            let d2 = Int(b2) - 48
            switch d1 {
            case 3: area = (1...3).contains(d2)
            case 4: area = (1...4).contains(d2)
            case 5: area = (1...5).contains(d2)
            case 6: area = (1...4).contains(d2)
            case 7, 8: area = d2 == 0
            default: area = mobile
            }
        default: area = false
        }
        guard area else { return nil }
        let sep = byte(i + run)
        guard sep == UInt8(ascii: "-") || sep == UInt8(ascii: " ") || sep == UInt8(ascii: ".") else { return nil }
        let middle = digitCount(from: i + run + 1)
        guard middle == 3 || middle == 4 else { return nil }
        let last = i + run + 1 + middle
        guard byte(last) == sep, digitCount(from: last + 1) == 4, numberEnd(last + 5) else { return nil }
        return last + 5
    }

    /// E.164: `+`, then 8–15 digits in groups joined by one space, dash or dot, a group possibly
    /// in parentheses (`+1 (415) 555-0100`, `+82 (0)10-1234-5678`), or all together. Trailing
    /// space-separated groups are dropped when the total would pass 15 digits.
    mutating func internationalPhone(_ i: Int) {
        guard isDigit(i + 1), i == 0 || cls[Int(p[i - 1])] & CharClass.word == 0 || isEscapeEnd(i - 1) else { return }
        // Per group: end, digits so far, and whether a space-joined group follows; on the stack.
        withUnsafeTemporaryAllocation(of: (end: Int, digits: Int, spaceAfter: Bool).self, capacity: 8) { ends in
            internationalPhone(i, ends)
        }
    }

    mutating func internationalPhone(_ i: Int, _ ends: UnsafeMutableBufferPointer<(end: Int, digits: Int, spaceAfter: Bool)>) {
        var count = 0
        var pos = i + 1
        var total = 0
        var afterParen = false
        while count < 8 {
            if byte(pos) == UInt8(ascii: "(") {
                guard count > 0 else { break }
                let len = digitCount(from: pos + 1)
                guard len >= 1 && len <= 4 && byte(pos + 1 + len) == UInt8(ascii: ")") else { break }
                pos += len + 2
                total += len
                afterParen = true
            } else if isDigit(pos) {
                let len = digitCount(from: pos)
                pos += len
                total += len
                afterParen = false
            } else {
                break
            }
            if total > 15 { break }
            let next = byte(pos)
            let joined = next == UInt8(ascii: " ") || next == UInt8(ascii: "-") || next == UInt8(ascii: ".")
            let groupFollows = isDigit(pos + 1) || byte(pos + 1) == UInt8(ascii: "(")
            ends[count] = (pos, total, next == UInt8(ascii: " ") && groupFollows)
            count += 1
            if joined && groupFollows {
                pos += 1
            } else if !(next == UInt8(ascii: "(") || (afterParen && isDigit(pos))) {
                break
            }
        }
        for k in stride(from: count - 1, through: 0, by: -1) {
            let group = ends[k]
            guard group.digits >= 8 && group.digits <= 15 else { continue }
            let last = k == count - 1
            if last ? numberEnd(group.end) : group.spaceAfter {
                add(i, group.end, RuleID.phone)
                return
            }
        }
    }

    // MARK: e-mail

    /// `local@domain.tld`: local part `[A-Za-z0-9._%+-]{1,64}` (not starting or ending with a dot,
    /// and not taking the letter of a JSON escape such as `\n` before it), domain of at least two
    /// labels `[A-Za-z0-9-]` (at most 253 bytes), the last all letters and at least two long.
    mutating func email(_ at: Int) {
        var s = at
        while s > 0 && cls[Int(p[s - 1])] & CharClass.local != 0 && at - s <= 64 { s -= 1 }
        guard at - s <= 64 else { return }
        if s > 0 && p[s - 1] == backslash && s < at {
            if p[s] == UInt8(ascii: "u") && hex4(s + 1) {
                s += 5
            } else if Self.isEscapeLetter(p[s]) {
                s += 1
            }
        }
        while s < at && p[s] == UInt8(ascii: ".") { s += 1 }
        guard s < at, p[at - 1] != UInt8(ascii: ".") else { return }

        var e = at + 1
        while e < n && cls[Int(p[e])] & CharClass.domain != 0 && e - at - 1 <= 253 { e += 1 }
        guard e - at - 1 <= 253 else { return }
        var end = e
        while end > at + 1 {
            while end > at + 1 && (p[end - 1] == UInt8(ascii: ".") || p[end - 1] == UInt8(ascii: "-")) { end -= 1 }
            if validDomain(at + 1, end) {
                add(s, end, RuleID.email)
                return
            }
            var dot = end - 1
            while dot > at && p[dot] != UInt8(ascii: ".") { dot -= 1 }
            guard dot > at + 1 else { return }
            end = dot
        }
    }

    func validDomain(_ from: Int, _ to: Int) -> Bool {
        var labels = 0
        var labelStart = from
        var j = from
        while j <= to {
            if j == to || p[j] == UInt8(ascii: ".") {
                let len = j - labelStart
                guard len >= 1 && len <= 63, p[labelStart] != UInt8(ascii: "-"), p[j - 1] != UInt8(ascii: "-") else { return false }
                labels += 1
                if j == to {
                    guard len >= 2 else { return false }
                    for k in labelStart..<j where cls[Int(p[k])] & CharClass.alpha == 0 { return false }
                }
                labelStart = j + 1
            }
            j += 1
        }
        return labels >= 2
    }

    // MARK: secrets

    /// Secrets that start with a letter at a word start. Returns where the secret ends, or `i + 1`.
    @discardableResult
    mutating func secretAtWord(_ i: Int) -> Int {
        guard wordStart(i) else { return i + 1 }
        let none = i + 1
        switch p[i] {
        case UInt8(ascii: "s"):
            if has(i, "sk-") {
                // Anthropic `sk-ant-…`, OpenAI `sk-…` and `sk-proj-…`: at least 20 key bytes.
                return tokenRun(replaceFrom: i, runFrom: i + 3, set: CharClass.sk, minimum: 20) ?? none
            }
            return labelledAWSSecret(i) ?? none
        case UInt8(ascii: "S"):
            return labelledAWSSecret(i) ?? none
        case UInt8(ascii: "a"):
            if has(i, "agk_") {
                // AuditGate client keys: `agk_` and 64 hex digits.
                var j = i + 4
                while j < i + 68 && isIn(j, CharClass.hex) { j += 1 }
                if j == i + 68 && !isIn(j, CharClass.word) {
                    add(i, j, RuleID.secret)
                    return j
                }
                return none
            }
            return labelledAWSSecret(i) ?? none
        case UInt8(ascii: "A"):
            if has(i, "AKIA") || has(i, "ASIA") {
                // AWS access key ids: AKIA (long-term) or ASIA (temporary) and 16 of [A-Z0-9].
                var j = i + 4
                while j < i + 20 && isIn(j, CharClass.upperAlnum) { j += 1 }
                if j == i + 20 && !isIn(j, CharClass.word) {
                    add(i, j, RuleID.secret)
                    return j
                }
                return none
            }
            return labelledAWSSecret(i) ?? none
        case UInt8(ascii: "b"), UInt8(ascii: "B"):
            return bearer(i) ?? none
        case UInt8(ascii: "g"):
            // GitHub: classic `ghp_` (and gho_, ghu_, ghs_, ghr_) with 36 alphanumerics, fine-grained `github_pat_`.
            if has(i, "gh"), "pousr".utf8.contains(byte(i + 2)), byte(i + 3) == UInt8(ascii: "_") {
                return tokenRun(replaceFrom: i, runFrom: i + 4, set: CharClass.alnum, minimum: 30) ?? none
            }
            if has(i, "github_pat_") {
                return tokenRun(replaceFrom: i, runFrom: i + 11, set: CharClass.word, minimum: 20) ?? none
            }
            return none
        case UInt8(ascii: "x"):
            // Slack: xoxb-, xoxa-, xoxp-, xoxr-, xoxs-.
            if has(i, "xox"), "baprs".utf8.contains(byte(i + 3)), byte(i + 4) == UInt8(ascii: "-") {
                return tokenRun(replaceFrom: i, runFrom: i + 5, set: CharClass.slack, minimum: 10) ?? none
            }
            return none
        default:
            return none
        }
    }

    /// A run of `set` bytes from `runFrom`, at least `minimum` long: `replaceFrom..<end` is a
    /// candidate. Returns the end, or nil when there is none.
    mutating func tokenRun(replaceFrom: Int, runFrom: Int, set: UInt16, minimum: Int, needsDigitBelow: Int = 0) -> Int? {
        var e = runFrom
        var sawDigit = false
        while e < n {
            let f = cls[Int(p[e])]
            guard f & set != 0 else { break }
            if f & CharClass.digit != 0 { sawDigit = true }
            e += 1
        }
        if e == n && !final {
            add(replaceFrom, e, RuleID.secret, open: OpenRun(kind: .token(set), safeEnd: e, last: byte(e - 1)))
            return e
        }
        let length = e - runFrom
        guard length >= minimum, sawDigit || length >= needsDigitBelow else { return nil }
        add(replaceFrom, e, RuleID.secret)
        return e
    }

    /// `Bearer <token>`: the token is replaced, the word `Bearer ` is kept. The token is an RFC 6750
    /// b64token of at least 16 bytes with a digit, or of at least 32 bytes, so that prose
    /// ("Bearer authentication", "Bearer YOUR_API_KEY") is left alone.
    mutating func bearer(_ i: Int) -> Int? {
        guard hasIgnoringCase(i, "bearer") else { return nil }
        var j = i + 6
        while j < n && j - (i + 6) < 4 && (p[j] == UInt8(ascii: " ") || p[j] == UInt8(ascii: "\t")) { j += 1 }
        guard j > i + 6 else { return nil }
        return tokenRun(replaceFrom: j, runFrom: j, set: CharClass.bearer, minimum: 16, needsDigitBelow: 32)
    }

    /// AWS secret access keys are 40 bytes of base64 with no prefix, so they are taken only after a
    /// label: `aws_secret_access_key = …`, `AWS_SECRET_ACCESS_KEY=…`, `"SecretAccessKey": "…"`,
    /// `aws_secret_key`, `secret_access_key`. The value alone is replaced.
    mutating func labelledAWSSecret(_ i: Int) -> Int? {
        var k: Int
        if hasIgnoringCase(i, "aws_secret_access_key") {
            k = i + 21
        } else if hasIgnoringCase(i, "aws_secret_key") {
            k = i + 14
        } else if hasIgnoringCase(i, "secret_access_key") {
            k = i + 17
        } else if hasIgnoringCase(i, "secretaccesskey") {
            k = i + 15
        } else {
            return nil
        }
        func isFiller(_ b: UInt8) -> Bool {
            b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\"") || b == UInt8(ascii: "'") || b == backslash
        }
        var skipped = 0
        while k < n && isFiller(p[k]) && skipped < 8 {
            k += 1
            skipped += 1
        }
        guard byte(k) == UInt8(ascii: "=") || byte(k) == UInt8(ascii: ":") else { return nil }
        k += 1
        skipped = 0
        while k < n && isFiller(p[k]) && skipped < 8 {
            k += 1
            skipped += 1
        }
        var e = k
        while e < k + 40 && isIn(e, CharClass.awsValue) { e += 1 }
        guard e == k + 40, !isIn(e, CharClass.awsValue) else { return nil }
        add(k, e, RuleID.secret)
        return e
    }

    /// `-----BEGIN <LABEL>PRIVATE KEY-----` (RSA, EC, OPENSSH, ENCRYPTED, PGP … BLOCK), its body,
    /// and `-----END … -----`. The body may have real newlines or JSON-escaped ones (`\n`), and
    /// RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`). A block cut short (no END line) is still
    /// taken, up to the end of its body. Returns the end, or nil.
    @discardableResult
    mutating func privateKey(_ i: Int) -> Int? {
        guard has(i, "-----BEGIN ") else { return nil }
        var k = i + 11
        let labelStart = k
        while k < n && k - labelStart <= 60 && (isIn(k, CharClass.upperAlnum) || p[k] == UInt8(ascii: " ")) { k += 1 }
        guard has(k, "-----"), containsPrivateKey(labelStart, k) else { return nil }
        switch pemBody(from: k + 5, last: UInt8(ascii: "-")) {
        case .done(let end):
            add(i, end, RuleID.secret)
            return end
        case .open(let safeEnd, let last):
            add(i, n, RuleID.secret, open: OpenRun(kind: .pem, safeEnd: safeEnd, last: last))
            return n
        }
    }

    func containsPrivateKey(_ from: Int, _ to: Int) -> Bool {
        var j = from
        while j + 11 <= to {
            if has(j, "PRIVATE KEY") { return true }
            j += 1
        }
        return false
    }

    /// The body of a private key from `from`, and its END line if present. `last` is the byte
    /// before `from`. Also the continuation used by `StreamingRedactor` once it has swallowed a
    /// block's beginning.
    func pemBody(from: Int, last: UInt8) -> RunExtent {
        var j = from
        var prev = last
        while j < n {
            let b = p[j]
            if b == UInt8(ascii: "-") {
                switch footer(j) {
                case .some(.some(let end)): return .done(end)
                case .some(.none): break
                case .none: if !final { return .open(safeEnd: j, last: prev) }
                }
            }
            if cls[Int(b)] & CharClass.pemBody != 0 || (b == UInt8(ascii: " ") && prev == UInt8(ascii: ":")) {
                prev = b
                j += 1
                continue
            }
            return .done(j)  // `add` keeps a trailing escape's backslash out
        }
        return final ? .done(n) : .open(safeEnd: n, last: prev)
    }

    /// `-----END [A-Z0-9 ]{0,60}-----` at `j`: `.some(end)` when it is there, `.some(nil)` when it
    /// is not, nil when the buffer ends before that is known.
    func footer(_ j: Int) -> Int?? {
        let head: StaticString = "-----END "
        let s = head.utf8Start
        for k in 0..<head.utf8CodeUnitCount {
            guard j + k < n else { return nil }
            if p[j + k] != s[k] { return .some(nil) }
        }
        var k = j + 9
        while k < n && k - (j + 9) <= 60 && (isIn(k, CharClass.upperAlnum) || p[k] == UInt8(ascii: " ")) { k += 1 }
        if k == n { return nil }
        for m in 0..<5 {
            guard k + m < n else { return nil }
            if p[k + m] != UInt8(ascii: "-") { return .some(nil) }
        }
        return .some(k + 5)
    }

    /// The continuation of a run that `StreamingRedactor` swallows: how far it goes in this buffer.
    func continuation(of kind: RunKind, last: UInt8) -> RunExtent {
        switch kind {
        case .pem:
            return pemBody(from: 0, last: last)
        case .token(let set):
            var e = 0
            while e < n && cls[Int(p[e])] & set != 0 { e += 1 }
            return e == n && !final ? .open(safeEnd: n, last: byte(n - 1)) : .done(e)
        }
    }
}
