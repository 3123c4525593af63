/// The provider API a response belongs to. The raw values are what the audit record stores.
public enum MeteredAPI: String, Sendable, CaseIterable, Codable {
    case anthropicMessages = "anthropic.messages"
    case anthropicCountTokens = "anthropic.count_tokens"
    case openAIChatCompletions = "openai.chat_completions"
    case openAIResponses = "openai.responses"
    case openAIEmbeddings = "openai.embeddings"
    case models = "models"
}

/// What the audit record says about one answer.
///
/// Token fields keep each provider's own meaning, never a recomputed one, because the record must
/// be checkable against the provider's invoice and its answer bytes:
/// - Anthropic: `inputTokens` is `input_tokens`, which EXCLUDES cached tokens; cache reads and cache
///   writes are the separate `cache_read_input_tokens` / `cache_creation_input_tokens`. The full
///   prompt size is the sum of the three.
/// - OpenAI (chat, Responses, embeddings): `inputTokens` is `prompt_tokens` / `input_tokens`, which
///   INCLUDES the cached tokens; `cacheReadTokens` (`cached_tokens`) is a subset of it, and
///   `cacheWriteTokens` (3.x `cache_write_tokens`) likewise.
/// `totalInputTokens(for:)` applies that difference. A nil field means the provider did not say
/// (for example a stream cut off before its usage arrived), not zero.
public struct MeteredUsage: Sendable, Equatable {
    public var model: String?
    public var inputTokens: Int64?
    public var outputTokens: Int64?
    public var cacheReadTokens: Int64?
    public var cacheWriteTokens: Int64?
    /// The answer text and tool-call arguments, in order of first appearance of each content block
    /// (Anthropic content block, chat choice content or tool call, Responses output part or function
    /// call), blocks separated by one `\n`. Bounded by the meter's byte limit, cut on a character
    /// boundary. Thinking/reasoning text is not included.
    public var text: String
    /// The text was cut at the limit.
    public var truncated: Bool
    /// Anthropic `stop_reason`, chat `finish_reason` (the last non-null one), Responses: the
    /// `incomplete_details.reason` when there is one, else the response `status`.
    public var stopReason: String?
    /// `type: message` (Anthropic; OpenAI `code` or `type`) of an error reported inside a stream
    /// after the HTTP 200: Anthropic `event: error`, a chat `data: {"error":…}`, a Responses
    /// `error` event or `response.failed`. Only the first one is kept.
    public var streamError: String?
    /// The terminal event arrived (`message_stop`, `data: [DONE]`, `response.completed` /
    /// `.incomplete` / `.failed`), or for a non-streaming answer, the whole body parsed.
    /// False means the record is partial: usage is whatever had been seen.
    public var complete: Bool
    /// Events that could not be read: data that is not JSON (other than `[DONE]`), or oversized
    /// blocks the framer passed through unparsed. Non-zero means the usage may be understated.
    public var unparsedEvents: Int

    public init(
        model: String? = nil, inputTokens: Int64? = nil, outputTokens: Int64? = nil, cacheReadTokens: Int64? = nil,
        cacheWriteTokens: Int64? = nil, text: String = "", truncated: Bool = false, stopReason: String? = nil,
        streamError: String? = nil, complete: Bool = false, unparsedEvents: Int = 0
    ) {
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadTokens = cacheReadTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.text = text
        self.truncated = truncated
        self.stopReason = stopReason
        self.streamError = streamError
        self.complete = complete
        self.unparsedEvents = unparsedEvents
    }

    /// All prompt tokens, cached or not: Anthropic input + cache read + cache write; OpenAI input.
    public func totalInputTokens(for api: MeteredAPI) -> Int64? {
        switch api {
        case .anthropicMessages:
            guard inputTokens != nil || cacheReadTokens != nil || cacheWriteTokens != nil else { return nil }
            return (inputTokens ?? 0) + (cacheReadTokens ?? 0) + (cacheWriteTokens ?? 0)
        default:
            return inputTokens
        }
    }
}

/// Collects text pieces per content block, bounded in bytes.
struct TextAssembler: Sendable {
    struct BlockKey: Hashable, Sendable {
        var a: Int
        var b: Int
    }

    let limit: Int
    private var blocks: [[UInt8]] = []
    private var index: [BlockKey: Int] = [:]
    /// Bytes of the joined text so far, separators included.
    private var total = 0
    private(set) var truncated = false

    init(limit: Int) {
        self.limit = max(0, limit)
    }

    mutating func append(_ piece: [UInt8], to key: BlockKey) {
        guard !piece.isEmpty else { return }
        guard !truncated else { return }
        let slot: Int
        if let existing = index[key] {
            slot = existing
        } else {
            let separator = blocks.isEmpty ? 0 : 1
            guard total + separator < limit else {
                truncated = true
                return
            }
            total += separator
            slot = blocks.count
            blocks.append([])
            index[key] = slot
        }
        let room = limit - total
        if piece.count <= room {
            blocks[slot].append(contentsOf: piece)
            total += piece.count
        } else {
            // Back off to a character boundary: pieces are whole UTF-8 (they come out of decoded
            // JSON strings), so only continuation bytes (10xxxxxx) need skipping.
            var cut = room
            while cut > 0, piece[cut] & 0xC0 == 0x80 { cut -= 1 }
            blocks[slot].append(contentsOf: piece[..<cut])
            total += cut
            truncated = true
        }
    }

    var text: String {
        var joined: [UInt8] = []
        joined.reserveCapacity(total)
        for (k, block) in blocks.enumerated() {
            if k > 0 { joined.append(ASCII.lf) }
            joined.append(contentsOf: block)
        }
        return String(decoding: joined, as: UTF8.self)
    }
}

/// Member names the meters look up, converted to bytes once.
private enum Keys {
    static let anthropicEvent = JSONKeys("type", "message", "index", "content_block", "delta", "usage", "error")
    static let modelUsage = JSONKeys("model", "usage")
    static let typeText = JSONKeys("type", "text")
    static let anthropicDelta = JSONKeys("type", "text", "partial_json")
    static let stopReason = JSONKeys("stop_reason")
    static let anthropicUsage = JSONKeys(
        "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    static let anthropicBlock = JSONKeys("type", "text", "input")
    static let chatChunk = JSONKeys("model", "choices", "usage", "error")
    static let chatStreamChoice = JSONKeys("index", "delta", "finish_reason")
    static let chatBodyChoice = JSONKeys("index", "message", "finish_reason")
    static let chatMessage = JSONKeys("content", "tool_calls")
    static let toolCall = JSONKeys("index", "function")
    static let chatUsage = JSONKeys("prompt_tokens", "completion_tokens", "prompt_tokens_details")
    static let responsesEvent = JSONKeys(
        "type", "response", "output_index", "content_index", "delta", "code", "message", "error")
    static let model = JSONKeys("model")
    static let response = JSONKeys("model", "usage", "status", "incomplete_details", "output")
    static let outputItem = JSONKeys("type", "content", "arguments")
    static let responsesUsage = JSONKeys("input_tokens", "output_tokens", "input_tokens_details")
    static let cacheDetails = JSONKeys("cached_tokens", "cache_write_tokens")
    static let error = JSONKeys("type", "code", "message")
    static let body = JSONKeys(
        "model", "usage", "content", "stop_reason", "choices", "output", "status", "incomplete_details", "input_tokens")
}

/// Meters one answer: fed either the parsed SSE events of a stream, one at a time as the framer
/// yields them, or the whole body of a non-streaming answer. Pure: no I/O, no clock.
///
/// Parsing uses `JSONScanner` on each event's data: events are small, and only the few members
/// that matter are decoded, so the per-delta cost stays a single pass over the data bytes.
/// Unknown event types are ignored, as the SDKs do (providers add new ones).
public struct UsageMeter: Sendable {
    public let api: MeteredAPI
    /// Byte limit for `MeteredUsage.text`.
    public let textLimit: Int

    private var state = MeteredUsage()
    private var assembler: TextAssembler

    public init(api: MeteredAPI, textLimit: Int = 64 * 1024) {
        self.api = api
        self.textLimit = textLimit
        self.assembler = TextAssembler(limit: textLimit)
    }

    /// The usage so far; final once the stream or body has been fed.
    public var usage: MeteredUsage {
        var result = state
        result.text = assembler.text
        result.truncated = assembler.truncated
        return result
    }

    // MARK: Streams

    /// Feeds one event of a streaming answer.
    public mutating func consume(_ event: SSEEvent) {
        if event.oversized {
            if event.endsEvent { state.unparsedEvents += 1 }
            return
        }
        guard !event.data.isEmpty else { return }  // comments, blank blocks, data-less events
        switch api {
        case .anthropicMessages: anthropicEvent(event)
        case .openAIChatCompletions: chatEvent(event)
        case .openAIResponses: responsesEvent(event)
        case .anthropicCountTokens, .openAIEmbeddings, .models: break  // these APIs do not stream
        }
    }

    private mutating func anthropicEvent(_ event: SSEEvent) {
        let s = JSONScanner(event.data)
        guard let m = s.documentMembers(Keys.anthropicEvent) else {
            state.unparsedEvents += 1
            return
        }
        let type = s.string(m[0]) ?? event.event
        switch type {
        case "message_start":
            guard let message = m[1], s.kind(of: message) == .object,
                let mm = s.members(ofObjectAt: message.lowerBound, Keys.modelUsage)
            else { return }
            if let model = s.string(mm[0]) { state.model = model }
            anthropicUsage(s, mm[1])
        case "content_block_start":
            // The start of a text block may carry text already (normally ""); a tool_use block's
            // `input` here is only the `{}` placeholder, its JSON arrives as input_json_delta.
            let block = s.int64(m[2]).map(Int.init) ?? 0
            if let cb = m[3], s.kind(of: cb) == .object,
                let cm = s.members(ofObjectAt: cb.lowerBound, Keys.typeText),
                s.string(cm[0]) == "text", let text = s.stringBytes(cm[1])
            {
                assembler.append(text, to: .init(a: block, b: 0))
            }
        case "content_block_delta":
            let block = s.int64(m[2]).map(Int.init) ?? 0
            guard let delta = m[4], s.kind(of: delta) == .object,
                let dm = s.members(ofObjectAt: delta.lowerBound, Keys.anthropicDelta)
            else { return }
            switch s.string(dm[0]) {
            case "text_delta": if let t = s.stringBytes(dm[1]) { assembler.append(t, to: .init(a: block, b: 0)) }
            case "input_json_delta": if let t = s.stringBytes(dm[2]) { assembler.append(t, to: .init(a: block, b: 0)) }
            default: break  // thinking, signature, citations: not answer text
            }
        case "message_delta":
            if let delta = m[4], s.kind(of: delta) == .object,
                let dm = s.members(ofObjectAt: delta.lowerBound, Keys.stopReason),
                let reason = s.string(dm[0])
            {
                state.stopReason = reason
            }
            anthropicUsage(s, m[5])
        case "message_stop":
            state.complete = true
        case "error":
            recordStreamError(s, m[6])
        default:
            break
        }
    }

    /// Overlays the non-null fields of an Anthropic usage object. `message_delta` values are
    /// cumulative, so replacing (never adding) leaves exactly "message_start, overlaid with the
    /// last message_delta", as the SDK's accumulator does.
    private mutating func anthropicUsage(_ s: JSONScanner, _ usage: Range<Int>?) {
        guard let usage, s.kind(of: usage) == .object,
            let u = s.members(
                ofObjectAt: usage.lowerBound,
                Keys.anthropicUsage)
        else { return }
        if let v = s.int64(u[0]) { state.inputTokens = v }
        if let v = s.int64(u[1]) { state.outputTokens = v }
        if let v = s.int64(u[2]) { state.cacheReadTokens = v }
        if let v = s.int64(u[3]) { state.cacheWriteTokens = v }
    }

    private mutating func chatEvent(_ event: SSEEvent) {
        // The SDK stops at the first data starting with [DONE]; so does the meter.
        guard !state.complete else { return }
        if event.data.starts(with: "[DONE]".utf8) {
            state.complete = true
            return
        }
        let s = JSONScanner(event.data)
        guard let m = s.documentMembers(Keys.chatChunk) else {
            state.unparsedEvents += 1
            return
        }
        if state.model == nil, let model = s.string(m[0]) { state.model = model }
        // Usage is read from any chunk that has a non-null one: OpenAI sends it on the extra
        // `choices: []` chunk; compatible servers sometimes on the last content chunk.
        openAIUsage(s, m[2], Keys.chatUsage)
        if let error = m[3], s.kind(of: error) == .object { recordStreamError(s, error) }
        guard let choices = m[1], s.kind(of: choices) == .array else { return }
        var position = 0
        s.forEachElement(ofArrayAt: choices.lowerBound) { choice in
            defer { position += 1 }
            guard s.kind(of: choice) == .object,
                let cm = s.members(ofObjectAt: choice.lowerBound, Keys.chatStreamChoice)
            else { return }
            let choiceIndex = s.int64(cm[0]).map(Int.init) ?? position
            if let reason = s.string(cm[2]) { state.stopReason = reason }
            guard let delta = cm[1], s.kind(of: delta) == .object else { return }
            chatMessage(s, delta, choice: choiceIndex)
        }
    }

    /// A chat `delta` (stream) or `message` (non-stream): content, then tool-call arguments.
    private mutating func chatMessage(_ s: JSONScanner, _ message: Range<Int>, choice: Int) {
        guard let mm = s.members(ofObjectAt: message.lowerBound, Keys.chatMessage) else { return }
        if let content = s.stringBytes(mm[0]) { assembler.append(content, to: .init(a: choice, b: -1)) }
        guard let calls = mm[1], s.kind(of: calls) == .array else { return }
        var position = 0
        s.forEachElement(ofArrayAt: calls.lowerBound) { call in
            defer { position += 1 }
            guard s.kind(of: call) == .object,
                let km = s.members(ofObjectAt: call.lowerBound, Keys.toolCall)
            else { return }
            let callIndex = s.int64(km[0]).map(Int.init) ?? position
            if let arguments = s.stringBytes(s.value(atPath: ["arguments"], inObjectAt: km[1]?.lowerBound ?? -1)) {
                assembler.append(arguments, to: .init(a: choice, b: callIndex))
            }
        }
    }

    private mutating func responsesEvent(_ event: SSEEvent) {
        let s = JSONScanner(event.data)
        guard let m = s.documentMembers(Keys.responsesEvent) else {
            state.unparsedEvents += 1
            return
        }
        let type = s.string(m[0]) ?? event.event
        switch type {
        case "response.created", "response.in_progress":
            if let response = m[1], s.kind(of: response) == .object,
                let rm = s.members(ofObjectAt: response.lowerBound, Keys.model),
                let model = s.string(rm[0])
            {
                state.model = model
            }
        case "response.output_text.delta":
            let output = s.int64(m[2]).map(Int.init) ?? 0
            let content = s.int64(m[3]).map(Int.init) ?? 0
            if let delta = s.stringBytes(m[4]) { assembler.append(delta, to: .init(a: output, b: content)) }
        case "response.function_call_arguments.delta":
            let output = s.int64(m[2]).map(Int.init) ?? 0
            if let delta = s.stringBytes(m[4]) { assembler.append(delta, to: .init(a: output, b: -1)) }
        case "response.completed", "response.incomplete", "response.failed":
            state.complete = true
            guard let response = m[1], s.kind(of: response) == .object else { return }
            responseObject(s, response, textToo: false)
            if type == "response.failed" {
                let error = s.value(atPath: ["error"], inObjectAt: response.lowerBound)
                if s.kind(of: error) == .object {
                    recordStreamError(s, error)
                } else if state.streamError == nil {
                    state.streamError = "response.failed"
                }
            }
        case "error":
            // The documented shape is flat ({"type":"error","code","message",…}); an `error`
            // object is accepted too.
            if let nested = m[7], s.kind(of: nested) == .object {
                recordStreamError(s, nested)
            } else {
                recordStreamError(s, s.skipWhitespace(0)..<event.data.count, preferCode: true)
            }
        default:
            break
        }
    }

    /// Reads a Responses `response` object: model, usage, status; its output text only for
    /// non-streaming answers (in a stream the text already came as deltas).
    private mutating func responseObject(_ s: JSONScanner, _ response: Range<Int>, textToo: Bool) {
        guard
            let rm = s.members(
                ofObjectAt: response.lowerBound, Keys.response)
        else { return }
        if let model = s.string(rm[0]) { state.model = model }
        openAIUsage(s, rm[1], Keys.responsesUsage)
        if let reason = s.string(s.value(atPath: ["reason"], inObjectAt: rm[3]?.lowerBound ?? -1)) {
            state.stopReason = reason
        } else if let status = s.string(rm[2]) {
            state.stopReason = status
        }
        guard textToo, let output = rm[4], s.kind(of: output) == .array else { return }
        var outputIndex = 0
        s.forEachElement(ofArrayAt: output.lowerBound) { item in
            defer { outputIndex += 1 }
            guard s.kind(of: item) == .object,
                let im = s.members(ofObjectAt: item.lowerBound, Keys.outputItem)
            else { return }
            if s.string(im[0]) == "function_call" {
                if let arguments = s.stringBytes(im[2]) { assembler.append(arguments, to: .init(a: outputIndex, b: -1)) }
                return
            }
            guard let content = im[1], s.kind(of: content) == .array else { return }
            var contentIndex = 0
            s.forEachElement(ofArrayAt: content.lowerBound) { part in
                defer { contentIndex += 1 }
                if let text = s.stringBytes(s.value(atPath: ["text"], inObjectAt: part.lowerBound)) {
                    assembler.append(text, to: .init(a: outputIndex, b: contentIndex))
                }
            }
        }
    }

    /// OpenAI usage: chat uses prompt/completion names, Responses and embeddings input/output.
    /// Cached (and 3.x cache-write) tokens are subsets of the input, kept as reported.
    private mutating func openAIUsage(_ s: JSONScanner, _ usage: Range<Int>?, _ keys: JSONKeys) {
        guard let usage, s.kind(of: usage) == .object,
            let u = s.members(ofObjectAt: usage.lowerBound, keys)
        else { return }
        if let v = s.int64(u[0]) { state.inputTokens = v }
        if let v = s.int64(u[1]) { state.outputTokens = v }
        if let d = u[2], s.kind(of: d) == .object,
            let dm = s.members(ofObjectAt: d.lowerBound, Keys.cacheDetails)
        {
            if let v = s.int64(dm[0]) { state.cacheReadTokens = v }
            if let v = s.int64(dm[1]) { state.cacheWriteTokens = v }
        }
    }

    /// Records `type: message` from an error object (`type`, else `code`). The first error wins:
    /// it is the cause, anything after it is fallout.
    private mutating func recordStreamError(_ s: JSONScanner, _ error: Range<Int>?, preferCode: Bool = false) {
        guard state.streamError == nil else { return }
        guard let error, s.kind(of: error) == .object,
            let em = s.members(ofObjectAt: error.lowerBound, Keys.error)
        else {
            state.streamError = "error"
            return
        }
        // In the flat Responses shape `type` is the event name "error": use `code` there.
        let kindName = preferCode ? s.string(em[1]) : (s.string(em[0]) ?? s.string(em[1]))
        let message = s.string(em[2])
        switch (kindName, message) {
        case let (k?, m?): state.streamError = "\(k): \(m)"
        case let (k?, nil): state.streamError = k
        case let (nil, m?): state.streamError = m
        case (nil, nil): state.streamError = "error"
        }
    }

    // MARK: Whole bodies

    /// Feeds a non-streaming answer too long to keep whole: its first bytes and its last bytes. Every
    /// provider puts `usage` after the content (`content`, `choices`, `data`), so it is read from the
    /// tail; `model` from the tail when it is there (embeddings), else from the head. Both values are
    /// validated as JSON and metered through a small document `{"model":…,"usage":…}`. No text is
    /// assembled from such an answer (its kept copy is the head).
    public mutating func consume(responseHead head: [UInt8], tail: [UInt8]) {
        var document = Array("{".utf8)
        var members = 0
        for (key, value) in [
            ("model", Self.memberValue("model", in: tail, last: true) ?? Self.memberValue("model", in: head, last: false)),
            ("usage", Self.memberValue("usage", in: tail, last: true)),
        ] {
            guard let value else { continue }
            if members > 0 { document.append(ASCII.comma) }
            document.append(contentsOf: Array("\"\(key)\":".utf8))
            document.append(contentsOf: value)
            members += 1
        }
        document.append(ASCII.closeBrace)
        consume(responseBody: document)
    }

    /// The JSON value after the first (or last) `"key":` in `bytes` whose value is complete and valid.
    /// Inside a JSON string a quote is always escaped, so a bare `"usage"` followed by a colon is a key.
    static func memberValue(_ key: String, in bytes: [UInt8], last: Bool) -> ArraySlice<UInt8>? {
        let pattern = Array("\"\(key)\"".utf8)
        guard bytes.count >= pattern.count else { return nil }
        let lastStart = bytes.count - pattern.count
        let candidates = last ? stride(from: lastStart, through: 0, by: -1) : stride(from: 0, through: lastStart, by: 1)
        return bytes.withUnsafeBufferPointer { buffer -> ArraySlice<UInt8>? in
            let validator = JSONValidator(bytes: buffer)
            for start in candidates where buffer[start] == ASCII.quote {
                guard buffer[start..<start + pattern.count].elementsEqual(pattern) else { continue }
                var i = validator.skipWhitespace(start + pattern.count)
                guard i < buffer.count, buffer[i] == ASCII.colon else { continue }
                i = validator.skipWhitespace(i + 1)
                if let end = validator.endOfValue(from: i) { return bytes[i..<end] }
            }
            return nil
        }
    }

    /// Feeds the complete body of a non-streaming answer. `complete` becomes true when it is one
    /// valid JSON object (an error body counts: the answer did arrive whole).
    public mutating func consume(responseBody body: [UInt8]) {
        let s = JSONScanner(body)
        guard let m = s.documentMembers(Keys.body) else {
            state.unparsedEvents += 1
            return
        }
        state.complete = true
        switch api {
        case .anthropicMessages:
            if let model = s.string(m[0]) { state.model = model }
            anthropicUsage(s, m[1])
            if let reason = s.string(m[3]) { state.stopReason = reason }
            if let content = m[2], s.kind(of: content) == .array {
                var block = 0
                s.forEachElement(ofArrayAt: content.lowerBound) { item in
                    defer { block += 1 }
                    guard s.kind(of: item) == .object,
                        let im = s.members(ofObjectAt: item.lowerBound, Keys.anthropicBlock)
                    else { return }
                    switch s.string(im[0]) {
                    case "text":
                        if let t = s.stringBytes(im[1]) { assembler.append(t, to: .init(a: block, b: 0)) }
                    case "tool_use":
                        // The streamed form is the JSON text of `input`; here it is its bytes as sent.
                        if let input = im[2] { assembler.append(Array(body[input]), to: .init(a: block, b: 0)) }
                    default:
                        break
                    }
                }
            }
        case .anthropicCountTokens:
            if let v = s.int64(m[8]) { state.inputTokens = v }
        case .openAIChatCompletions:
            if let model = s.string(m[0]) { state.model = model }
            openAIUsage(s, m[1], Keys.chatUsage)
            if let choices = m[4], s.kind(of: choices) == .array {
                var position = 0
                s.forEachElement(ofArrayAt: choices.lowerBound) { choice in
                    defer { position += 1 }
                    guard s.kind(of: choice) == .object,
                        let cm = s.members(ofObjectAt: choice.lowerBound, Keys.chatBodyChoice)
                    else { return }
                    if let reason = s.string(cm[2]) { state.stopReason = reason }
                    let choiceIndex = s.int64(cm[0]).map(Int.init) ?? position
                    if let message = cm[1], s.kind(of: message) == .object {
                        chatMessage(s, message, choice: choiceIndex)
                    }
                }
            }
        case .openAIResponses:
            responseObject(s, m.openBrace..<body.count, textToo: true)
        case .openAIEmbeddings:
            if let model = s.string(m[0]) { state.model = model }
            openAIUsage(s, m[1], Keys.chatUsage)
        case .models:
            break
        }
    }
}
