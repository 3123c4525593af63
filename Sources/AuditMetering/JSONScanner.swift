/// ASCII bytes the scanners compare against, named so the state machines read as grammar.
enum ASCII {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let lf = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")
}

/// What kind of JSON value starts at a given index. Decided from the first byte only, which is
/// enough once the value has been validated by `JSONScanner.endOfValue`.
enum JSONKind: Equatable {
    case object, array, string, number, `true`, `false`, null
}

/// The grammar checks of `JSONScanner`, over a buffer pointer the scanner lends for one call.
///
/// Why a pointer: in debug builds every `array[i]` on a stored array retains and releases its
/// buffer, which made the byte loops several times slower; the pointer never outlives the
/// `withUnsafeBufferPointer` call that created it. Bytes are written as hex literals for the same
/// reason (static lets cost a lazy-initialisation check per access in debug builds):
/// 0x22 `"`, 0x5C `\`, 0x7B `{`, 0x7D `}`, 0x5B `[`, 0x5D `]`, 0x3A `:`, 0x2C `,`, 0x2D `-`,
/// 0x2B `+`, 0x2E `.`, 0x30…0x39 digits.
struct JSONValidator {
    let bytes: UnsafeBufferPointer<UInt8>


    func skipWhitespace(_ start: Int) -> Int {
        var i = start
        let n = bytes.count
        while i < n {
            let c = bytes[i]
            // space, LF, CR, tab; literals rather than the ASCII statics, which cost a
            // lazy-initialisation check per access in debug builds.
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { break }
            i += 1
        }
        return i
    }

    /// The index just past the value that starts at `start` (leading whitespace allowed), or nil
    /// when the bytes there are not one complete, valid JSON value.
    func endOfValue(from start: Int) -> Int? {
        // One byte per open container: `{` or `[`. Scalars never allocate (an empty array does not).
        var stack: [UInt8] = []
        var i = start
        let n = bytes.count
        parseValue: while true {
            i = skipWhitespace(i)
            guard i < n else { return nil }
            switch bytes[i] {
            case 0x7B:
                i = skipWhitespace(i + 1)
                guard i < n else { return nil }
                if bytes[i] == 0x7D {
                    i += 1
                } else {
                    stack.append(0x7B)
                    guard let afterColon = endOfKeyAndColon(from: i) else { return nil }
                    i = afterColon
                    continue parseValue
                }
            case 0x5B:
                i = skipWhitespace(i + 1)
                guard i < n else { return nil }
                if bytes[i] == 0x5D {
                    i += 1
                } else {
                    stack.append(0x5B)
                    continue parseValue
                }
            case 0x22:
                guard let end = endOfString(from: i) else { return nil }
                i = end
            case 0x74:
                guard matches("true", at: i) else { return nil }
                i += 4
            case 0x66:
                guard matches("false", at: i) else { return nil }
                i += 5
            case 0x6E:
                guard matches("null", at: i) else { return nil }
                i += 4
            case 0x2D, 0x30...0x39:
                guard let end = endOfNumber(from: i) else { return nil }
                i = end
            default:
                return nil
            }
            // A value just ended: close containers or move on to the next element.
            while true {
                guard let top = stack.last else { return i }
                i = skipWhitespace(i)
                guard i < n else { return nil }
                let c = bytes[i]
                if c == 0x2C {
                    i += 1
                    if top == 0x7B {
                        guard let afterColon = endOfKeyAndColon(from: skipWhitespace(i)) else { return nil }
                        i = afterColon
                    }
                    continue parseValue
                } else if (c == 0x7D && top == 0x7B)
                    || (c == 0x5D && top == 0x5B)
                {
                    stack.removeLast()
                    i += 1
                } else {
                    return nil
                }
            }
        }
    }

    /// `start` must be at the opening quote of a key; returns the index after the `:`.
    func endOfKeyAndColon(from start: Int) -> Int? {
        guard start < bytes.count, bytes[start] == 0x22, let keyEnd = endOfString(from: start) else { return nil }
        let i = skipWhitespace(keyEnd)
        guard i < bytes.count, bytes[i] == 0x3A else { return nil }
        return i + 1
    }

    func matches(_ literal: StaticString, at start: Int) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard start + count <= bytes.count else { return false }
        return literal.withUTF8Buffer { lit in
            for k in 0..<count where bytes[start + k] != lit[k] { return false }
            return true
        }
    }

    /// `start` at the opening quote; returns the index after the closing quote.
    func endOfString(from start: Int) -> Int? {
        let n = bytes.count
        guard start < n, bytes[start] == 0x22 else { return nil }
        var i = start + 1
        let quote: UInt8 = 0x22
        let backslash: UInt8 = 0x5C
        while i < n {
            let c = bytes[i]
            if c == quote { return i + 1 }
            if c == backslash {
                guard i + 1 < n else { return nil }
                switch bytes[i + 1] {
                case 0x22, 0x5C, 0x2F,
                    0x62, 0x66, 0x6E, 0x72, 0x74:
                    i += 2
                case 0x75:
                    guard i + 5 < n else { return nil }
                    for k in 2...5 where JSONScanner.hexValue(bytes[i + k]) == nil { return nil }
                    i += 6
                default:
                    return nil
                }
            } else if c < 0x20 {
                return nil
            } else if c < 0x80 {
                i += 1
            } else {
                guard let length = utf8SequenceLength(at: i) else { return nil }
                i += length
            }
        }
        return nil
    }

    /// Length of the well-formed UTF-8 sequence at `i` (Unicode table 3-7: no overlongs, no
    /// surrogates, nothing above U+10FFFF), or nil.
    func utf8SequenceLength(at i: Int) -> Int? {
        let n = bytes.count
        let b0 = bytes[i]
        func cont(_ k: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
            i + k < n && bytes[i + k] >= low && bytes[i + k] <= high
        }
        switch b0 {
        case 0xC2...0xDF: return cont(1) ? 2 : nil
        case 0xE0: return cont(1, 0xA0) && cont(2) ? 3 : nil
        case 0xE1...0xEC, 0xEE...0xEF: return cont(1) && cont(2) ? 3 : nil
        case 0xED: return cont(1, 0x80, 0x9F) && cont(2) ? 3 : nil
        case 0xF0: return cont(1, 0x90) && cont(2) && cont(3) ? 4 : nil
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : nil
        case 0xF4: return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : nil
        default: return nil
        }
    }

    func endOfNumber(from start: Int) -> Int? {
        let n = bytes.count
        var i = start
        func isDigit(_ k: Int) -> Bool { k < n && bytes[k] >= 0x30 && bytes[k] <= 0x39 }
        if i < n, bytes[i] == 0x2D { i += 1 }
        guard isDigit(i) else { return nil }
        if bytes[i] == 0x30 {
            i += 1
        } else {
            while isDigit(i) { i += 1 }
        }
        if i < n, bytes[i] == 0x2E {
            i += 1
            guard isDigit(i) else { return nil }
            while isDigit(i) { i += 1 }
        }
        if i < n, bytes[i] == 0x65 || bytes[i] == 0x45 {
            i += 1
            if i < n, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
            guard isDigit(i) else { return nil }
            while isDigit(i) { i += 1 }
        }
        return i
    }

}

/// A list of member names to look up, converted to UTF-8 once (the meters keep them in statics).
/// Stored flat, one buffer plus offsets, so that matching a key touches no nested array.
struct JSONKeys: Sendable {
    let names: [[UInt8]]
    let flat: [UInt8]
    /// `starts[k]..<starts[k + 1]` is name k in `flat`.
    let starts: [Int]

    init(_ names: String...) {
        self.names = names.map { Array($0.utf8) }
        self.flat = self.names.flatMap { $0 }
        var starts = [0]
        for name in self.names { starts.append(starts[starts.count - 1] + name.count) }
        self.starts = starts
    }

    var count: Int { names.count }
}

/// The members found in a top-level object, and where that object starts.
struct JSONDocument {
    var members: [Range<Int>?]
    var openBrace: Int

    subscript(_ slot: Int) -> Range<Int>? { members[slot] }
}

/// A validating JSON scanner that never builds an object tree.
///
/// Why not `JSONSerialization` or `Codable`: the gateway only needs a handful of values out of
/// bodies that can be megabytes long (base64 images in a request, thousands of floats in an
/// embeddings answer) and out of many small stream events. Walking the bytes and *skipping*
/// every value it does not need costs one pass and no allocation per skipped value, and lets the
/// callers look at top-level keys only (a `"model"` inside `messages` must never count).
///
/// The grammar is RFC 8259, strictly: no comments, no trailing commas, no leading zeros, no
/// control characters inside strings, and string contents must be valid UTF-8, so that "this
/// scanner accepted it" means the same thing as "a strict upstream parser would accept it".
/// Nesting is handled with an explicit stack, not recursion, so a hostile 100 000-deep array cannot
/// overflow the thread's stack.
struct JSONScanner {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    // MARK: Skipping (validation)

    func skipWhitespace(_ start: Int) -> Int {
        bytes.withUnsafeBufferPointer { JSONValidator(bytes: $0).skipWhitespace(start) }
    }

    /// The index just past the value that starts at `start` (leading whitespace allowed), or nil
    /// when the bytes there are not one complete, valid JSON value.
    func endOfValue(from start: Int) -> Int? {
        bytes.withUnsafeBufferPointer { JSONValidator(bytes: $0).endOfValue(from: start) }
    }

    /// `start` at the opening quote; returns the index after the closing quote.
    func endOfString(from start: Int) -> Int? {
        bytes.withUnsafeBufferPointer { JSONValidator(bytes: $0).endOfString(from: start) }
    }

    static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case ASCII.zero...ASCII.nine: return UInt32(c - ASCII.zero)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    // MARK: Walking containers

    /// Calls `body` with the key range (quotes included) and value range of every member of the
    /// object at `start`, in document order. Returns the index after the closing brace, or nil if
    /// the object is malformed (members already reported stay reported: callers only trust the
    /// result when the return value is non-nil).
    @discardableResult
    func forEachMember(ofObjectAt start: Int, _ body: (_ key: Range<Int>, _ value: Range<Int>) -> Void) -> Int? {
        let n = bytes.count
        guard start >= 0 else { return nil }
        var i = skipWhitespace(start)
        guard i < n, bytes[i] == ASCII.openBrace else { return nil }
        i = skipWhitespace(i + 1)
        guard i < n else { return nil }
        if bytes[i] == ASCII.closeBrace { return i + 1 }
        while true {
            guard let keyEnd = endOfString(from: i) else { return nil }
            let key = i..<keyEnd
            i = skipWhitespace(keyEnd)
            guard i < n, bytes[i] == ASCII.colon else { return nil }
            let valueStart = skipWhitespace(i + 1)
            guard let valueEnd = endOfValue(from: valueStart) else { return nil }
            body(key, valueStart..<valueEnd)
            i = skipWhitespace(valueEnd)
            guard i < n else { return nil }
            if bytes[i] == ASCII.comma {
                i = skipWhitespace(i + 1)
            } else if bytes[i] == ASCII.closeBrace {
                return i + 1
            } else {
                return nil
            }
        }
    }

    /// Calls `body` with the range of every element of the array at `start`. Same contract as
    /// `forEachMember`.
    @discardableResult
    func forEachElement(ofArrayAt start: Int, _ body: (_ value: Range<Int>) -> Void) -> Int? {
        let n = bytes.count
        guard start >= 0 else { return nil }
        var i = skipWhitespace(start)
        guard i < n, bytes[i] == ASCII.openBracket else { return nil }
        i = skipWhitespace(i + 1)
        guard i < n else { return nil }
        if bytes[i] == ASCII.closeBracket { return i + 1 }
        while true {
            guard let end = endOfValue(from: i) else { return nil }
            body(i..<end)
            i = skipWhitespace(end)
            guard i < n else { return nil }
            if bytes[i] == ASCII.comma {
                i = skipWhitespace(i + 1)
            } else if bytes[i] == ASCII.closeBracket {
                return i + 1
            } else {
                return nil
            }
        }
    }

    /// The value ranges of the members named in `keys` in the object at `start`, one slot per
    /// name (nil when absent). With duplicate keys the LAST one wins, as in Python's `json`,
    /// JavaScript's `JSON.parse` and Go's `encoding/json`: what the gateway reads must be what the
    /// upstream reads. Returns nil if the object is malformed.
    func members(ofObjectAt start: Int, _ keys: JSONKeys) -> [Range<Int>?]? {
        var found = [Range<Int>?](repeating: nil, count: keys.count)
        let end = forEachMember(ofObjectAt: start) { key, value in
            if let slot = match(key, keys) { found[slot] = value }
        }
        return end == nil ? nil : found
    }

    /// `members(ofObjectAt:_:)` for a whole document, which must be exactly one object with
    /// nothing but whitespace around it.
    func documentMembers(_ keys: JSONKeys) -> JSONDocument? {
        let start = skipWhitespace(0)
        guard start < bytes.count, bytes[start] == ASCII.openBrace else { return nil }
        var found = [Range<Int>?](repeating: nil, count: keys.count)
        guard
            let end = forEachMember(
                ofObjectAt: start,
                { key, value in
                    if let slot = match(key, keys) { found[slot] = value }
                }),
            skipWhitespace(end) == bytes.count
        else { return nil }
        return JSONDocument(members: found, openBrace: start)
    }

    /// Which of `keys` the key at `key` (quotes included) is. Keys are compared after unescaping
    /// (`"mo\u0064el"` is the key `model` to every JSON parser, so it must be here too), but the
    /// escape-free common case is a plain byte comparison. Written as index loops because the
    /// generic `contains`/`elementsEqual` are slow in debug builds, and this runs for every key.
    func match(_ key: Range<Int>, _ keys: JSONKeys) -> Int? {
        let low = key.lowerBound + 1
        let high = key.upperBound - 1
        let plain: Int? = bytes.withUnsafeBufferPointer { b in
            keys.flat.withUnsafeBufferPointer { f in
                var i = low
                while i < high, b[i] != 0x5C { i += 1 }
                if i < high { return -1 }  // escaped: decode below
                let length = high - low
                for slot in 0..<keys.count {
                    let from = keys.starts[slot]
                    guard keys.starts[slot + 1] - from == length else { continue }
                    var k = 0
                    while k < length, b[low + k] == f[from + k] { k += 1 }
                    if k == length { return slot }
                }
                return nil
            }
        }
        guard plain == -1 else { return plain }
        guard let decoded = stringBytes(key) else { return nil }
        for slot in 0..<keys.count where keys.names[slot] == decoded { return slot }
        return nil
    }

    /// Follows a path of member names from the object at `start`; nil when any step is missing or
    /// not an object.
    func value(atPath path: [String], inObjectAt start: Int) -> Range<Int>? {
        var current = start
        var result: Range<Int>?
        for name in path {
            guard kind(at: current) == .object,
                let slots = members(ofObjectAt: current, JSONKeys(name)),
                let next = slots[0]
            else { return nil }
            result = next
            current = next.lowerBound
        }
        return result
    }

    // MARK: Reading values

    func kind(at index: Int) -> JSONKind? {
        guard index >= 0, index < bytes.count else { return nil }
        switch bytes[index] {
        case ASCII.openBrace: return .object
        case ASCII.openBracket: return .array
        case ASCII.quote: return .string
        case UInt8(ascii: "t"): return .true
        case UInt8(ascii: "f"): return .false
        case UInt8(ascii: "n"): return .null
        case ASCII.minus, ASCII.zero...ASCII.nine: return .number
        default: return nil
        }
    }

    func kind(of range: Range<Int>?) -> JSONKind? {
        guard let range else { return nil }
        return kind(at: range.lowerBound)
    }

    /// The decoded UTF-8 bytes of the (validated) string at `range`, or nil if it is not a string.
    func stringBytes(_ range: Range<Int>?) -> [UInt8]? {
        guard let range, kind(at: range.lowerBound) == .string, range.count >= 2 else { return nil }
        let inner = (range.lowerBound + 1)..<(range.upperBound - 1)
        var scan = inner.lowerBound
        while scan < inner.upperBound, bytes[scan] != ASCII.backslash { scan += 1 }
        guard scan < inner.upperBound else { return Array(bytes[inner]) }
        var out: [UInt8] = []
        out.reserveCapacity(inner.count)
        var i = inner.lowerBound
        while i < inner.upperBound {
            let c = bytes[i]
            guard c == ASCII.backslash else {
                out.append(c)
                i += 1
                continue
            }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(ASCII.lf)
            case UInt8(ascii: "r"): out.append(ASCII.cr)
            case UInt8(ascii: "t"): out.append(ASCII.tab)
            case UInt8(ascii: "u"):
                var scalar = hex4(at: i)
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate to form one
                    // scalar; anything else is a lone surrogate, which becomes U+FFFD as in Swift's
                    // own decoders (the audit text must stay valid UTF-8).
                    if i + 6 <= inner.upperBound, bytes[i] == ASCII.backslash, bytes[i + 1] == UInt8(ascii: "u") {
                        let low = hex4(at: i + 2)
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            i += 6
                        } else {
                            scalar = 0xFFFD
                        }
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    scalar = 0xFFFD
                }
                Self.appendUTF8(scalar, to: &out)
            default: out.append(e)  // \" \\ \/
            }
        }
        return out
    }

    private func hex4(at i: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | (Self.hexValue(bytes[i + k]) ?? 0) }
        return v
    }

    static func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            out.append(UInt8(scalar))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | scalar >> 6))
            out.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | scalar >> 12))
            out.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            out.append(UInt8(0x80 | scalar & 0x3F))
        default:
            out.append(UInt8(0xF0 | scalar >> 18))
            out.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            out.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            out.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    func string(_ range: Range<Int>?) -> String? {
        stringBytes(range).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A token count. Integers are read exactly; an integral number written as `12.0` or `1.2e1` is
    /// accepted too (nobody sends it, but it is still the number 12). Anything else is nil.
    func int64(_ range: Range<Int>?) -> Int64? {
        guard let range, kind(at: range.lowerBound) == .number else { return nil }
        let digits = bytes[range]
        var negative = false
        var value: Int64 = 0
        var simple = true
        for (offset, c) in digits.enumerated() {
            if offset == 0, c == ASCII.minus {
                negative = true
                continue
            }
            guard c >= ASCII.zero, c <= ASCII.nine else {
                simple = false
                break
            }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(c - ASCII.zero))
            guard !o1, !o2 else { return nil }
            value = s
        }
        if simple { return negative ? -value : value }
        guard let d = Double(String(decoding: digits, as: UTF8.self)), d.isFinite, d.rounded() == d,
            d >= -9.2e18, d <= 9.2e18
        else { return nil }
        return Int64(d)
    }

    func isTrue(_ range: Range<Int>?) -> Bool { kind(of: range) == .true }

    func isEmptyArray(_ range: Range<Int>?) -> Bool {
        guard let range, kind(at: range.lowerBound) == .array else { return false }
        return skipWhitespace(range.lowerBound + 1) == range.upperBound - 1
    }
}
