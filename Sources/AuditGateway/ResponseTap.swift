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
    private(set) var collectedBody: [UInt8] = []

    init(api: MeteredAPI, isStream: Bool, dropUsageChunk: Bool, maxText: Int) {
        meter = UsageMeter(api: api, textLimit: maxText)
        self.isStream = isStream
        self.dropUsageChunk = dropUsageChunk && isStream
        maxCollected = maxText * 4
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Output {
        guard isStream else {
            if collectedBody.count < maxCollected {
                collectedBody.append(contentsOf: bytes.prefix(maxCollected - collectedBody.count))
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
            meter.consume(responseBody: collectedBody)
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
}
