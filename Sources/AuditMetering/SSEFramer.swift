/// One server-sent-events block as it went over the wire, plus the two fields the meters read.
///
/// Every byte the framer is fed ends up in exactly one `raw` (or in `SSEFinish.trailing`), so the
/// gateway can forward `raw` unchanged and the client receives the upstream bytes verbatim, event by
/// event; it may drop a whole event (the injected usage-only chat chunk) without touching others.
public struct SSEEvent: Sendable, Equatable {
    /// The exact bytes of the block, including its terminating blank line. A stray blank line
    /// between events is its own block (`raw == "\n"`, no fields) so that nothing is ever lost.
    public var raw: [UInt8]
    /// The last `event:` field of the block, nil if there was none (OpenAI chat never sends one).
    public var event: String?
    /// The `data:` lines' values joined with `\n`, as the SSE specification dispatches them.
    /// Empty for comment-only blocks (`: ping`) and for blocks without data.
    public var data: [UInt8]
    /// True when the block went over the framer's size limit: `raw` is then a piece of that block,
    /// passed through so the client still gets every byte, and `event`/`data` are left empty
    /// because it was not parsed. A block that large is never a metering event anyone expects,
    /// and holding it whole would let one upstream event take unbounded memory.
    public var oversized: Bool
    /// False only for the leading pieces of an oversized block; the piece that carries the block's
    /// blank line has `true`. Normal events are always `true`.
    public var endsEvent: Bool

    public init(raw: [UInt8], event: String? = nil, data: [UInt8] = [], oversized: Bool = false, endsEvent: Bool = true) {
        self.raw = raw
        self.event = event
        self.data = data
        self.oversized = oversized
        self.endsEvent = endsEvent
    }

    /// `data` as text (lossy for invalid UTF-8), for logs and tests.
    public var dataString: String { String(decoding: data, as: UTF8.self) }
}

/// What is left when the upstream body ends.
public struct SSEFinish: Sendable, Equatable {
    /// Complete events that were still held back (see `SSEFramer`: a block whose blank line ended
    /// in a bare CR, waiting to learn whether an LF follows).
    public var events: [SSEEvent]
    /// Bytes of an unfinished block. Forward them as they are; they are not parsed, because SSE
    /// parsers (the SDKs' included) discard an event that has no terminating blank line.
    public var trailing: [UInt8]

    public init(events: [SSEEvent], trailing: [UInt8]) {
        self.events = events
        self.trailing = trailing
    }
}

/// Splits an SSE byte stream into events, whatever the chunking.
///
/// It is fed the upstream body as it arrives, in chunks cut anywhere (inside a line ending, inside
/// a multi-byte UTF-8 sequence) and yields each block as soon as its blank line is complete. The
/// events it yields do not depend on how the bytes were chunked, with one documented exception
/// (the pieces of an oversized block).
///
/// Line endings are CRLF, LF or CR, as in the SSE specification and both SDKs. A CR can be the
/// first half of a CRLF, so when a block's blank line ends in a CR that is the last byte fed so far,
/// the block is held until the next byte (or `finish()`) says whether an LF belongs to it. With
/// CRLF streams that wait is only until the next chunk, which starts with that LF; only a stream
/// using bare CRs (nobody does) would see each event delayed by one event. The alternative, emitting
/// at the CR, would put the LF at the head of the next event and make `raw` depend on chunking.
///
/// Fields (per the SSE specification): `:` starts a comment; `name:value` with one optional space
/// after the colon; a line without colon is a field with an empty value; only `event` and `data`
/// are kept. A UTF-8 byte-order mark at the very start of the stream is ignored for parsing (it
/// stays in `raw`).
public struct SSEFramer: Sendable {
    /// 8 MiB: far above any real event (the biggest are Responses terminal events that repeat the
    /// whole output), small enough that a broken upstream cannot exhaust memory.
    public static let defaultMaxEventBytes = 8 << 20

    public let maxEventBytes: Int

    /// Raw bytes of the block being read (in oversized mode: of the piece not yet passed on).
    private var pending: [UInt8] = []
    /// Index in `pending` where the current line starts (normal mode only).
    private var lineStart = 0
    /// Whether the current line has any byte yet, i.e. whether a line end now makes a blank line.
    private var lineHasBytes = false
    /// The last byte consumed was a CR ending a line: an LF right after it belongs to that ending.
    private var afterCR = false
    /// The block is complete but its blank line ended in a CR; emit once the next byte is known.
    private var heldForLF = false
    /// The current block went over `maxEventBytes`: pass it through in pieces, parse nothing.
    private var oversizedMode = false
    private var eventName: String?
    private var data: [UInt8] = []
    private var sawData = false
    private var atStreamStart = true

    public init(maxEventBytes: Int = SSEFramer.defaultMaxEventBytes) {
        self.maxEventBytes = max(1, maxEventBytes)
    }

    /// Bytes currently held (for monitoring; bounded by about `maxEventBytes` plus one chunk).
    public var bufferedByteCount: Int { pending.count }

    /// Feeds one chunk, calling `emit` for each event completed by it, in order.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (SSEEvent) -> Void) {
        // Local constants: static lets cost a lazy-initialisation check per access in debug builds.
        let lf: UInt8 = 0x0A
        let cr: UInt8 = 0x0D
        let n = bytes.count
        var i = 0
        while i < n {
            if afterCR {
                afterCR = false
                if bytes[i] == lf {
                    pending.append(lf)
                    i += 1
                    if heldForLF {
                        heldForLF = false
                        emitBlock(emit)
                    } else {
                        lineStart = pending.count
                    }
                    continue
                }
                if heldForLF {
                    heldForLF = false
                    emitBlock(emit)
                }
            }
            // Copy the rest of the line in one go.
            var j = i
            while j < n, bytes[j] != lf, bytes[j] != cr { j += 1 }
            if j > i {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<j]))
                lineHasBytes = true
                i = j
                if pending.count > maxEventBytes { overflow(emit) }
            }
            guard i < n else { break }
            let terminator = bytes[i]
            i += 1
            let blank = !lineHasBytes
            if !blank && !oversizedMode { processLine(lineStart..<pending.count) }
            pending.append(terminator)
            lineHasBytes = false
            lineStart = pending.count
            if terminator == cr { afterCR = true }
            if blank {
                if terminator == cr {
                    heldForLF = true
                } else {
                    emitBlock(emit)
                }
            }
        }
        // An oversized block is passed on as it comes rather than held to its end.
        if oversizedMode && !heldForLF && !pending.isEmpty {
            emit(SSEEvent(raw: pending, oversized: true, endsEvent: false))
            pending.removeAll(keepingCapacity: false)
            lineStart = 0
        }
    }

    /// Feeds one chunk and returns the events it completed.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [SSEEvent] {
        var out: [SSEEvent] = []
        feed(bytes) { out.append($0) }
        return out
    }

    /// Feeds one chunk and returns the events it completed.
    public mutating func feed(_ bytes: [UInt8]) -> [SSEEvent] {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// Ends the stream: releases a held event and returns the unfinished tail. The framer is reset
    /// and could be reused for another stream.
    public mutating func finish() -> SSEFinish {
        var events: [SSEEvent] = []
        if heldForLF {
            heldForLF = false
            emitBlock { events.append($0) }
        }
        let trailing = pending
        self = SSEFramer(maxEventBytes: maxEventBytes)
        return SSEFinish(events: events, trailing: trailing)
    }

    // MARK: Private

    private mutating func overflow(_ emit: (SSEEvent) -> Void) {
        oversizedMode = true
        eventName = nil
        data = []
        sawData = false
        emit(SSEEvent(raw: pending, oversized: true, endsEvent: false))
        pending.removeAll(keepingCapacity: false)
        lineStart = 0
    }

    private mutating func emitBlock(_ emit: (SSEEvent) -> Void) {
        let event: SSEEvent
        if oversizedMode {
            event = SSEEvent(raw: pending, oversized: true, endsEvent: true)
        } else {
            event = SSEEvent(raw: pending, event: eventName, data: data)
        }
        pending = []
        lineStart = 0
        eventName = nil
        data = []
        sawData = false
        oversizedMode = false
        atStreamStart = false
        emit(event)
    }

    private static let dataField: [UInt8] = Array("data".utf8)
    private static let eventField: [UInt8] = Array("event".utf8)

    /// Index loop rather than `elementsEqual`: this runs for every line and the generic algorithms
    /// are slow in debug builds.
    private func fieldName(_ start: Int, _ end: Int, is name: [UInt8]) -> Bool {
        guard end - start == name.count else { return false }
        for k in 0..<name.count where pending[start + k] != name[k] { return false }
        return true
    }

    private mutating func processLine(_ range: Range<Int>) {
        var start = range.lowerBound
        let end = range.upperBound
        if atStreamStart {
            atStreamStart = false
            if end - start >= 3, pending[start] == 0xEF, pending[start + 1] == 0xBB, pending[start + 2] == 0xBF {
                start += 3
                guard start < end else { return }
            }
        }
        if pending[start] == ASCII.colon { return }  // comment
        var colon = start
        while colon < end, pending[colon] != ASCII.colon { colon += 1 }
        var valueStart = min(colon + 1, end)
        if valueStart < end, pending[valueStart] == ASCII.space { valueStart += 1 }
        if fieldName(start, colon, is: Self.dataField) {
            if sawData { data.append(ASCII.lf) }
            data.append(contentsOf: pending[valueStart..<end])
            sawData = true
        } else if fieldName(start, colon, is: Self.eventField) {
            eventName = String(decoding: pending[valueStart..<end], as: UTF8.self)
        }
    }
}
