import Foundation
import AuditMetering

/// Streams and bodies in the exact shapes of /work/shared/reference/llm-wire-formats.md.
enum Fixtures {
    /// §1.3, byte for byte as observed (input 25, output 15, "Hello!").
    static let anthropicDocStream = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type":"ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    /// A richer Anthropic stream: cache fields, Korean and emoji (raw and \u-escaped), a comment,
    /// `data:` without the space, a tool_use block, a thinking delta that is not answer text, and
    /// two message_delta events whose last one carries cumulative input and output.
    static let anthropicStream = """
        : keep-alive comment
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":7,"cache_read_input_tokens":100,"output_tokens":1}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data:{"type":"ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"안녕하세요 "}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"secret"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"👋🏽 \\"hi\\" \\ud83d\\ude00 \\uc138\\uc0c1"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"city\\": \\"서울"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"pause_turn","stop_sequence":null},"usage":{"output_tokens":10}}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":30,"cache_read_input_tokens":null,"output_tokens":42}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    static let anthropicStreamText = "안녕하세요 👋🏽 \"hi\" 😀 세상\n{\"city\": \"서울\"}"

    static let anthropicStreamUsage = MeteredUsage(
        model: "claude-sonnet-4-5-20250929", inputTokens: 30, outputTokens: 42, cacheReadTokens: 100, cacheWriteTokens: 7,
        text: anthropicStreamText, truncated: false, stopReason: "tool_use", streamError: nil, complete: true)

    /// §2.2 with a Korean/emoji reply, a tool call and the include_usage chunk.
    static let chatStream = """
        data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"안녕 🌏"},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"! Hi"},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"부산\\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

        data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":0}}}

        data: [DONE]


        """

    static let chatStreamUsage = MeteredUsage(
        model: "gpt-4o-mini", inputTokens: 9, outputTokens: 2, cacheReadTokens: 4, cacheWriteTokens: nil,
        text: "안녕 🌏! Hi\n{\"city\":\"부산\"}", truncated: false, stopReason: "tool_calls", streamError: nil, complete: true)

    static let responsesEnvelope =
        #""id":"resp_1","object":"response","created_at":1741476542,"error":null,"incomplete_details":null,"instructions":null,"parallel_tool_calls":true,"tool_choice":"auto","tools":[],"metadata":{}"#

    /// §2.4, filled in: text with Korean/emoji, then a function call, then response.completed.
    static let responsesStream = """
        event: response.created
        data: {"type":"response.created","sequence_number":0,"response":{\(responsesEnvelope),"status":"in_progress","model":"gpt-4.1","output":[],"usage":null}}

        event: response.in_progress
        data: {"type":"response.in_progress","sequence_number":1,"response":{\(responsesEnvelope),"status":"in_progress","model":"gpt-4.1","output":[],"usage":null}}

        event: response.output_item.added
        data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"type":"message","id":"msg_1","status":"in_progress","role":"assistant","content":[]}}

        event: response.content_part.added
        data: {"type":"response.content_part.added","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}}

        event: response.output_text.delta
        data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[]}

        event: response.output_text.delta
        data: {"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" 세계 🌏","logprobs":[]}

        event: response.output_text.done
        data: {"type":"response.output_text.done","sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Hi 세계 🌏","logprobs":[]}

        event: response.content_part.done
        data: {"type":"response.content_part.done","sequence_number":7,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"Hi 세계 🌏","annotations":[],"logprobs":[]}}

        event: response.output_item.done
        data: {"type":"response.output_item.done","sequence_number":8,"output_index":0,"item":{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi 세계 🌏","annotations":[],"logprobs":[]}]}}

        event: response.output_item.added
        data: {"type":"response.output_item.added","sequence_number":9,"output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"","status":"in_progress"}}

        event: response.function_call_arguments.delta
        data: {"type":"response.function_call_arguments.delta","sequence_number":10,"item_id":"fc_1","output_index":1,"delta":"{\\"city\\":"}

        event: response.function_call_arguments.delta
        data: {"type":"response.function_call_arguments.delta","sequence_number":11,"item_id":"fc_1","output_index":1,"delta":"\\"Seoul\\"}"}

        event: response.function_call_arguments.done
        data: {"type":"response.function_call_arguments.done","sequence_number":12,"item_id":"fc_1","output_index":1,"arguments":"{\\"city\\":\\"Seoul\\"}"}

        event: response.output_item.done
        data: {"type":"response.output_item.done","sequence_number":13,"output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\\"city\\":\\"Seoul\\"}","status":"completed"}}

        event: response.completed
        data: {"type":"response.completed","sequence_number":14,"response":{\(responsesEnvelope),"status":"completed","model":"gpt-4.1-2025-04-14","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi 세계 🌏","annotations":[],"logprobs":[]}]},{"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\\"city\\":\\"Seoul\\"}","status":"completed"}],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":12},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":39}}}


        """

    static let responsesStreamUsage = MeteredUsage(
        model: "gpt-4.1-2025-04-14", inputTokens: 36, outputTokens: 3, cacheReadTokens: 12, cacheWriteTokens: nil,
        text: "Hi 세계 🌏\n{\"city\":\"Seoul\"}", truncated: false, stopReason: "completed", streamError: nil, complete: true)

    /// The three realistic streams with the terminal event's first byte offset, for cut-off tests.
    static let streams: [(name: String, api: MeteredAPI, text: String, usage: MeteredUsage, terminal: String)] = [
        ("anthropic", .anthropicMessages, anthropicStream, anthropicStreamUsage, "event: message_stop"),
        ("chat", .openAIChatCompletions, chatStream, chatStreamUsage, "data: [DONE]"),
        ("responses", .openAIResponses, responsesStream, responsesStreamUsage, "event: response.completed"),
    ]
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

/// Frames `chunks` and returns the events (finish's included) and the trailing bytes.
func frame(_ chunks: [[UInt8]], maxEventBytes: Int = SSEFramer.defaultMaxEventBytes) -> (events: [SSEEvent], trailing: [UInt8]) {
    var framer = SSEFramer(maxEventBytes: maxEventBytes)
    var events: [SSEEvent] = []
    for chunk in chunks { events += framer.feed(chunk) }
    let end = framer.finish()
    return (events + end.events, end.trailing)
}

func meter(_ api: MeteredAPI, _ events: [SSEEvent], textLimit: Int = 64 * 1024) -> MeteredUsage {
    var meter = UsageMeter(api: api, textLimit: textLimit)
    for event in events { meter.consume(event) }
    return meter.usage
}

func meterBody(_ api: MeteredAPI, _ body: String, textLimit: Int = 64 * 1024) -> MeteredUsage {
    var meter = UsageMeter(api: api, textLimit: textLimit)
    meter.consume(responseBody: body.bytes)
    return meter.usage
}

/// `input` cut in chunks of `size` bytes.
func chunks(_ input: [UInt8], size: Int) -> [[UInt8]] {
    stride(from: 0, to: input.count, by: size).map { Array(input[$0..<min($0 + size, input.count)]) }
}

/// LF line ends replaced by CRLF or CR.
func withLineEnds(_ text: String, _ ending: String) -> String {
    text.replacingOccurrences(of: "\n", with: ending)
}

/// Byte offset of the first occurrence of `needle` in `haystack`.
func byteOffset(of needle: String, in haystack: String) -> Int? {
    let h = haystack.bytes
    let n = needle.bytes
    guard n.count <= h.count else { return nil }
    for i in 0...(h.count - n.count) where h[i..<(i + n.count)].elementsEqual(n) { return i }
    return nil
}

/// Byte-wise equality through memcmp: `[UInt8] ==` is generic and very slow in debug builds, and
/// the every-offset tests compare thousands of event lists.
func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in a.isEmpty || memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 } }
}

/// `a == b` for event lists, fast.
func sameEvents(_ a: [SSEEvent], _ b: [SSEEvent]) -> Bool {
    guard a.count == b.count else { return false }
    for k in 0..<a.count {
        let x = a[k]
        let y = b[k]
        guard x.event == y.event, x.oversized == y.oversized, x.endsEvent == y.endsEvent,
            sameBytes(x.raw, y.raw), sameBytes(x.data, y.data)
        else { return false }
    }
    return true
}
