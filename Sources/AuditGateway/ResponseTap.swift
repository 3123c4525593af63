import AuditCore
import AuditMetering

/// Watches an answer on its way to the client: frames SSE events and meters them, or keeps a bounded
/// copy of a non-streamed body to meter at the end. It never holds back bytes the client should get,
/// except in one case: when the gateway added `stream_options.include_usage` to an OpenAI chat
/// stream, it forwards whole events (re-framed, never re-serialised) so it can leave out the extra
/// usage chunk the client did not ask for.
struct ResponseTap {
    enum Output {
        /// Forward the chunk as it came.
        case same
        /// Forward these bytes instead (whole events only).
        case bytes([UInt8])
    }

    private var framer = SSEFramer()
    private var meter: UsageMeter
    private let isStream: Bool
    private let dropUsageChunk: Bool
    private let maxCollected: Int
    /// The first bytes of a plain answer, up to `maxCollected`.
    private(set) var collectedBody: [UInt8] = []
    /// The last bytes of a plain answer longer than that: where providers put `usage` (and OpenAI's
    /// embeddings their `model`), so usage is metered from answers of any size without holding them.
    private var tail: [UInt8] = []
    static let tailBytes = 64 * 1024
    /// Length and SHA-256 of the whole answer body as received (the record's detail).
    let digest = IncrementalSHA256()

    init(api: MeteredAPI, isStream: Bool, dropUsageChunk: Bool, maxText: Int) {
        meter = UsageMeter(api: api, textLimit: maxText)
        self.isStream = isStream
        self.dropUsageChunk = dropUsageChunk && isStream
        maxCollected = maxText * 4
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Output {
        digest.update(bytes)
        guard isStream else {
            let room = maxCollected - collectedBody.count
            if room > 0 { collectedBody.append(contentsOf: bytes.prefix(room)) }
            if bytes.count > room {
                tail.append(contentsOf: bytes.dropFirst(max(0, room)))
                if tail.count > 2 * Self.tailBytes { tail.removeFirst(tail.count - Self.tailBytes) }
            }
            return .same
        }
        guard dropUsageChunk else {
            framer.feed(bytes) { meter.consume($0) }
            return .same
        }
        var out: [UInt8] = []
        framer.feed(bytes) { event in
            meter.consume(event)
            if !IncludeUsageRewriter.isUsageOnlyChunk(event) { out.append(contentsOf: event.raw) }
        }
        return .bytes(out)
    }

    mutating func feed(_ bytes: [UInt8]) -> Output {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// Ends the answer; returns bytes still owed to the client (only when forwarding whole events).
    mutating func finish() -> [UInt8] {
        guard isStream else {
            if isPartial {
                meter.consume(responseHead: collectedBody, tail: tail)
            } else {
                meter.consume(responseBody: collectedBody)
            }
            return []
        }
        let end = framer.finish()
        var owed: [UInt8] = []
        for event in end.events {
            meter.consume(event)
            if dropUsageChunk && !IncludeUsageRewriter.isUsageOnlyChunk(event) { owed.append(contentsOf: event.raw) }
        }
        if dropUsageChunk { owed.append(contentsOf: end.trailing) }
        return owed
    }

    var usage: MeteredUsage { meter.usage }

    /// A plain answer longer than what the tap keeps of it.
    var isPartial: Bool { !isStream && digest.count > collectedBody.count }
}
