/// Redacts text that arrives in pieces (streamed completions), with the same result as redacting
/// the whole text at once, whatever the pieces.
///
/// `feed` returns the text that is settled; the end of what arrived is held back until more comes
/// or `finish()`: at least `holdBack` bytes (longer than any bounded match, e.g. a 318-byte
/// e-mail address), and from the start of a run still going at the end (a bearer token, a private
/// key). The cut is always placed where no candidate straddles it, and the bytes before a cut are
/// kept as look-behind, so matches split across pieces are found and decided as one-shot would.
///
/// Memory is bounded: when an unfinished run passes `maxOpenRun` bytes (64 KiB), its marker is
/// emitted and the rest of the run is dropped as it arrives. Custom pattern matches longer than
/// about `holdBack` bytes, and custom patterns that look further than that around a match, may be
/// decided differently than in one shot.
public struct StreamingRedactor: Sendable {
    /// Bytes always held back at the end of what arrived.
    public static let holdBack = 512
    /// Bytes of already emitted text kept as look-behind (e-mail local parts, `Bearer `, labels).
    static let lookBehind = 128

    /// The redactor whose rules apply.
    public let redactor: Redactor
    /// Matches replaced so far, by pattern name.
    public private(set) var counts: [String: Int] = [:]
    /// Matches replaced so far.
    public var total: Int { counts.values.reduce(0, +) }

    let flushThreshold: Int
    let maxOpenRun: Int
    /// The last emitted bytes (original text), for look-behind.
    var context: [UInt8] = []
    /// Bytes received and not yet settled.
    var pending: [UInt8] = []
    /// A run whose marker was emitted and whose rest is being dropped.
    var swallowing: OpenRun? = nil

    /// `flushThreshold`: how many bytes beyond `holdBack` to collect before settling some. Each
    /// settling rescans the held-back tail, so small pieces (SSE deltas of a few bytes) are best
    /// gathered; 0 settles at every `feed`.
    public init(_ redactor: Redactor, flushThreshold: Int = 4096) {
        self.init(redactor, flushThreshold: flushThreshold, maxOpenRun: 64 * 1024)
    }

    init(_ redactor: Redactor, flushThreshold: Int, maxOpenRun: Int) {
        self.redactor = redactor
        self.flushThreshold = max(0, flushThreshold)
        self.maxOpenRun = max(Self.holdBack, maxOpenRun)
    }

    /// Takes the next piece; returns the redacted text that is now settled (possibly empty).
    public mutating func feed(_ piece: String) -> String {
        pending.append(contentsOf: piece.utf8)
        guard pending.count > Self.holdBack + flushThreshold else { return "" }
        return settle(final: false)
    }

    /// The end of the stream: returns the rest, redacted. The redactor is then empty again (the
    /// counts are kept).
    public mutating func finish() -> String {
        let out = settle(final: true)
        context = []
        pending = []
        swallowing = nil
        return out
    }

    mutating func settle(final: Bool) -> String {
        if let run = swallowing {
            let extent = pending.withUnsafeBufferPointer { buffer in
                CharClass.table.withUnsafeBufferPointer { cls in
                    redactor.triggers.withUnsafeBufferPointer { triggers in
                        Scanner(buffer, cls: cls, triggers: triggers, enabled: redactor.enabled, final: final)
                            .continuation(of: run.kind, last: run.last)
                    }
                }
            }
            switch extent {
            case .open(let safeEnd, let last):
                remember(pending[..<safeEnd])
                pending.removeFirst(safeEnd)
                if safeEnd > 0 { swallowing?.last = last }
                return ""
            case .done(let end):
                remember(pending[..<end])
                pending.removeFirst(end)
                swallowing = nil
            }
        }

        let window = context + pending
        let scanStart = context.count
        var candidates = window.withUnsafeBufferPointer {
            redactor.candidates(in: $0, final: final, keepingFrom: scanStart)
        }
        if !redactor.custom.isEmpty {
            candidates += redactor.customCandidates(in: String(decoding: window, as: UTF8.self), keepingFrom: scanStart)
        }

        var cut = window.count
        var forced: Candidate? = nil
        if !final {
            cut = max(scanStart, window.count - Self.holdBack)
            while cut > scanStart && window[cut] & 0xC0 == 0x80 { cut -= 1 }
            for c in candidates where c.open != nil && c.start < cut { cut = c.start }
            var moved = true
            while moved {
                moved = false
                for c in candidates where c.start < cut && c.end > cut {
                    cut = c.start
                    moved = true
                }
            }
            if let run = candidates.first(where: { $0.open != nil && $0.start == cut }), window.count - cut > maxOpenRun {
                forced = run
            }
        }

        let accepted = Redactor.resolve(candidates.filter { $0.start < cut })
        var out = window.withUnsafeBufferPointer {
            redactor.render($0, from: scanStart, to: cut, accepted, counts: &counts)
        }
        if let forced, let run = forced.open {
            out += String(decoding: redactor.markers[forced.rule], as: UTF8.self)
            counts[redactor.names[forced.rule], default: 0] += 1
            swallowing = run
            cut = run.safeEnd
        }
        context = []
        remember(window[..<cut])
        pending = Array(window[cut...])
        return out
    }

    /// Keeps the last `lookBehind` bytes of `emitted` (starting on a character boundary) as context.
    mutating func remember(_ emitted: ArraySlice<UInt8>) {
        if emitted.count >= Self.lookBehind {
            context = Array(emitted.suffix(Self.lookBehind))
        } else {
            context.append(contentsOf: emitted)
            if context.count > Self.lookBehind { context.removeFirst(context.count - Self.lookBehind) }
        }
        while let first = context.first, first & 0xC0 == 0x80 { context.removeFirst() }
    }
}
