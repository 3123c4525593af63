import AuditMetering
import Foundation
import Testing

@Suite struct UsageMeterStreamTests {
    @Test func anthropicDocStream() {
        let usage = meter(.anthropicMessages, frame([Fixtures.anthropicDocStream.bytes]).events)
        #expect(
            usage
                == MeteredUsage(
                    model: "claude-sonnet-4-5", inputTokens: 25, outputTokens: 15, cacheReadTokens: 0, cacheWriteTokens: 0,
                    text: "Hello!", stopReason: "end_turn", complete: true))
        #expect(usage.totalInputTokens(for: .anthropicMessages) == 25)
    }

    /// Each API's realistic stream gives the expected usage in one chunk, split at every offset
    /// into two chunks, in 1-byte and in 7-byte chunks. Every offset is metered for LF streams;
    /// for CRLF and CR the meter (a pure function of the events) is checked on the other chunkings,
    /// while `SSEFramerTests.chunkingInvariance` checks their events at every offset. Metering
    /// every offset of every style costs three times as long in debug builds and adds nothing.
    @Test(arguments: 0..<3, SSEFramerTests.lineEnds)
    func usageIsChunkingInvariant(streamIndex: Int, ending: String) {
        let fixture = Fixtures.streams[streamIndex]
        let input = withLineEnds(fixture.text, ending).bytes
        #expect(meter(fixture.api, frame([input]).events) == fixture.usage)
        #expect(meter(fixture.api, frame(chunks(input, size: 7)).events) == fixture.usage)
        for offset in 0...input.count where ending == "\n" || offset % 97 == 0 {
            let usage = meter(fixture.api, frame([Array(input[..<offset]), Array(input[offset...])]).events)
            let same = usage == fixture.usage
            #expect(same, "\(fixture.name) split at \(offset)")
            if !same { break }
        }
        #expect(meter(fixture.api, frame(chunks(input, size: 1)).events) == fixture.usage)
    }

    @Test func anthropicCacheFieldsAreSeparateFromInput() {
        let usage = Fixtures.anthropicStreamUsage
        // A typed constant: `#expect(x == 30 + 100 + 7)` types the sum apart from `x` and fails.
        let anthropicTotal: Int64 = 30 + 100 + 7
        #expect(usage.totalInputTokens(for: .anthropicMessages) == anthropicTotal)
        #expect(Fixtures.chatStreamUsage.totalInputTokens(for: .openAIChatCompletions) == 9)
    }

    /// A stream cut anywhere: the events plus the trailing bytes are the prefix, `complete` is
    /// true exactly when the terminal event's blank line arrived, and what was seen is kept.
    @Test(arguments: 0..<3)
    func cutOffStreams(streamIndex: Int) throws {
        let fixture = Fixtures.streams[streamIndex]
        let input = fixture.text.bytes
        let terminalStartOffset = try #require(byteOffset(of: fixture.terminal, in: fixture.text))
        let terminalEnd = input.count  // the terminal event is the last block of each fixture
        for cut in 0...input.count {
            let prefix = Array(input[..<cut])
            let (events, trailing) = frame([prefix])
            #expect(sameBytes(events.flatMap(\.raw) + trailing, prefix))
            let usage = meter(fixture.api, events)
            #expect(usage.complete == (cut == terminalEnd), "\(fixture.name) cut at \(cut)")
        }
        let beforeTerminal = frame([Array(input[..<terminalStartOffset])]).events
        let partial = meter(fixture.api, beforeTerminal)
        #expect(partial.complete == false)
        switch fixture.api {
        case .anthropicMessages:
            // message_start and both message_delta events were seen: their usage stands.
            var expected = fixture.usage
            expected.complete = false
            #expect(partial == expected)
            // Cut right after message_start: input and the output placeholder only.
            let n = try #require(byteOffset(of: "event: content_block_start", in: fixture.text))
            let early = meter(fixture.api, frame([Array(input[..<n])]).events)
            #expect(early.inputTokens == 25 && early.outputTokens == 1 && early.cacheReadTokens == 100)
            #expect(early.text == "" && early.stopReason == nil && !early.complete)
        case .openAIChatCompletions:
            // Cut before [DONE]: the usage chunk was seen.
            #expect(partial.inputTokens == 9 && partial.text == fixture.usage.text)
            let n = try #require(byteOffset(of: #"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[],"#, in: fixture.text))
            let noUsage = meter(fixture.api, frame([Array(input[..<n])]).events)
            #expect(noUsage.inputTokens == nil && noUsage.outputTokens == nil)
            #expect(noUsage.text == fixture.usage.text && noUsage.stopReason == "tool_calls" && noUsage.model == "gpt-4o-mini")
        default:
            #expect(partial.model == "gpt-4.1" && partial.inputTokens == nil && partial.outputTokens == nil)
            #expect(partial.text == fixture.usage.text && partial.stopReason == nil)
        }
    }

    @Test func anthropicMidStreamError() {
        let stream = """
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}

            event: error
            data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}


            """
        let usage = meter(.anthropicMessages, frame(chunks(stream.bytes, size: 3)).events)
        #expect(usage.streamError == "overloaded_error: Overloaded")
        #expect(usage.complete == false)
        #expect(usage.inputTokens == 25 && usage.outputTokens == 1)
        #expect(usage.text == "Hel")
    }

    @Test func chatMidStreamError() {
        let stream = """
            data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}

            data: {"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}


            """
        let usage = meter(.openAIChatCompletions, frame([stream.bytes]).events)
        #expect(usage.streamError == "server_error: The server had an error")
        #expect(usage.complete == false && usage.text == "Hi" && usage.model == "gpt-4o-mini")
    }

    @Test func responsesErrorEventAndFailedResponse() {
        let errorStream = """
            event: response.created
            data: {"type":"response.created","sequence_number":0,"response":{\(Fixtures.responsesEnvelope),"status":"in_progress","model":"gpt-4.1","output":[],"usage":null}}

            event: error
            data: {"type":"error","code":"server_error","message":"Something went wrong","param":null,"sequence_number":1}


            """
        let e = meter(.openAIResponses, frame([errorStream.bytes]).events)
        #expect(e.streamError == "server_error: Something went wrong")
        #expect(e.complete == false && e.model == "gpt-4.1")

        let failed = """
            event: response.output_text.delta
            data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Par","logprobs":[]}

            event: response.failed
            data: {"type":"response.failed","sequence_number":5,"response":{"id":"resp_1","object":"response","status":"failed","error":{"code":"server_error","message":"The model failed"},"incomplete_details":null,"model":"gpt-4.1","output":[],"usage":{"input_tokens":36,"output_tokens":1,"total_tokens":37}}}


            """
        let f = meter(.openAIResponses, frame([failed.bytes]).events)
        #expect(f.streamError == "server_error: The model failed")
        #expect(f.complete && f.stopReason == "failed" && f.inputTokens == 36 && f.outputTokens == 1 && f.text == "Par")

        let incomplete = """
            event: response.incomplete
            data: {"type":"response.incomplete","sequence_number":5,"response":{"id":"resp_1","object":"response","status":"incomplete","error":null,"incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-4.1","output":[],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":5},"output_tokens":16,"total_tokens":52}}}


            """
        let i = meter(.openAIResponses, frame([incomplete.bytes]).events)
        #expect(i.streamError == nil && i.complete && i.stopReason == "max_output_tokens")
        #expect(i.outputTokens == 16 && i.cacheReadTokens == 0 && i.cacheWriteTokens == 5)
    }

    @Test func textIsBoundedOnACharacterBoundary() {
        let input = Fixtures.anthropicStream.bytes
        // "안녕하세요 " is 16 bytes; 10 bytes hold three syllables (9 bytes), never half of one.
        let ten = meter(.anthropicMessages, frame(chunks(input, size: 5)).events, textLimit: 10)
        #expect(ten.text == "안녕하" && ten.truncated)
        #expect(ten.inputTokens == 30 && ten.complete)  // metering goes on past the text limit
        // 👋🏽 is two 4-byte scalars: a limit inside them keeps whole scalars only.
        let emoji = meter(.anthropicMessages, frame([input]).events, textLimit: 16 + 6)
        #expect(emoji.text == "안녕하세요 👋" && emoji.truncated)
        let zero = meter(.anthropicMessages, frame([input]).events, textLimit: 0)
        #expect(zero.text == "" && zero.truncated)
        let exact = Fixtures.anthropicStreamText.utf8.count
        let fits = meter(.anthropicMessages, frame([input]).events, textLimit: exact)
        #expect(fits.text == Fixtures.anthropicStreamText && !fits.truncated)
        let oneShort = meter(.anthropicMessages, frame([input]).events, textLimit: exact - 1)
        #expect(oneShort.truncated && oneShort.text == String(Fixtures.anthropicStreamText.dropLast()))
        // The separator counts: a limit that ends right after block 0 leaves block 1 out entirely.
        let block0 = "안녕하세요 👋🏽 \"hi\" 😀 세상".utf8.count
        let sep = meter(.anthropicMessages, frame([input]).events, textLimit: block0 + 1)
        #expect(sep.text == "안녕하세요 👋🏽 \"hi\" 😀 세상" && sep.truncated)
        let chat = meter(.openAIChatCompletions, frame([Fixtures.chatStream.bytes]).events, textLimit: 8)
        #expect(chat.text == "안녕 " && chat.truncated)
    }

    @Test func unparsableAndOversizedEventsAreCounted() {
        let stream = Fixtures.anthropicDocStream.replacingOccurrences(
            of: #"data: {"type":"ping"}"#, with: "data: {not json") + "data: " + String(repeating: "z", count: 1000) + "\n\n"
        let events = frame(chunks(stream.bytes, size: 64), maxEventBytes: 400).events
        let usage = meter(.anthropicMessages, events)
        #expect(usage.unparsedEvents == 2)
        #expect(usage.inputTokens == 25 && usage.outputTokens == 15 && usage.complete)
    }

    @Test func chatIgnoresEverythingAfterDone() {
        let stream = Fixtures.chatStream + #"data: {"choices":[{"index":0,"delta":{"content":"late"}}],"usage":{"prompt_tokens":1}}"# + "\n\n"
        #expect(meter(.openAIChatCompletions, frame([stream.bytes]).events) == Fixtures.chatStreamUsage)
    }
}

@Suite struct UsageMeterBodyTests {
    @Test func anthropicMessage() {
        let body = """
            {"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant",
             "model":"claude-sonnet-4-5-20250929",
             "content":[{"type":"text","text":"Hello!"}],
             "stop_reason":"end_turn","stop_sequence":null,
             "usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
                      "output_tokens":6,"service_tier":"standard"}}
            """
        #expect(
            meterBody(.anthropicMessages, body)
                == MeteredUsage(
                    model: "claude-sonnet-4-5-20250929", inputTokens: 12, outputTokens: 6, cacheReadTokens: 0,
                    cacheWriteTokens: 0, text: "Hello!", stopReason: "end_turn", complete: true))
    }

    @Test func anthropicMessageWithThinkingAndToolUse() {
        let body = #"""
            {"model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"날씨 ☀️"},{"type":"tool_use","id":"t","name":"w","input":{"city":"서울"}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":9}}
            """#
        let usage = meterBody(.anthropicMessages, body)
        #expect(usage.text == "날씨 ☀️\n{\"city\":\"서울\"}")
        #expect(usage.cacheWriteTokens == 100 && usage.cacheReadTokens == 50 && usage.stopReason == "tool_use")
        #expect(usage.totalInputTokens(for: .anthropicMessages) == 153)
    }

    @Test func countTokens() {
        let usage = meterBody(.anthropicCountTokens, #"{"input_tokens": 12}"#)
        #expect(usage == MeteredUsage(inputTokens: 12, complete: true))
    }

    @Test func chatCompletion() {
        let body = """
            {"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18",
             "choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},
                         "logprobs":null,"finish_reason":"stop"}],
             "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,
                      "prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},
                      "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,
                                                   "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
             "service_tier":"default","system_fingerprint":"fp_abc"}
            """
        #expect(
            meterBody(.openAIChatCompletions, body)
                == MeteredUsage(
                    model: "gpt-4o-mini-2024-07-18", inputTokens: 9, outputTokens: 2, cacheReadTokens: 3, text: "Hi",
                    stopReason: "stop", complete: true))
    }

    @Test func chatCompletionWithToolCalls() {
        let body = #"""
            {"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"a","arguments":"{\"x\":1}"}},{"id":"c2","type":"function","function":{"name":"b","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}
            """#
        let usage = meterBody(.openAIChatCompletions, body)
        #expect(usage.text == "{\"x\":1}\n{}" && usage.stopReason == "tool_calls" && usage.cacheReadTokens == nil)
    }

    @Test func responses() {
        let body = """
            {"id":"resp_1","object":"response","created_at":1741476542,"status":"completed","error":null,
             "incomplete_details":null,"instructions":null,"model":"gpt-4.1","parallel_tool_calls":true,
             "tool_choice":"auto","tools":[],"metadata":{},
             "output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant",
                        "content":[{"type":"output_text","text":"Hi there","annotations":[],"logprobs":[]}]}],
             "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},
                      "output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":39}}
            """
        #expect(
            meterBody(.openAIResponses, body)
                == MeteredUsage(
                    model: "gpt-4.1", inputTokens: 36, outputTokens: 3, cacheReadTokens: 0, text: "Hi there",
                    stopReason: "completed", complete: true))
    }

    @Test func embeddings() {
        let body = """
            {"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25,1.0e-3]}],
             "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}
            """
        #expect(
            meterBody(.openAIEmbeddings, body)
                == MeteredUsage(model: "text-embedding-3-small", inputTokens: 8, complete: true))
    }

    @Test func modelsListMetersNothing() {
        let body = #"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1686935002,"owned_by":"openai"}]}"#
        #expect(meterBody(.models, body) == MeteredUsage(complete: true))
    }

    @Test func malformedOrTruncatedBodyIsNotComplete() {
        let usage = meterBody(.openAIChatCompletions, #"{"model":"gpt-4o","usage":{"prompt_tokens":9"#)
        #expect(usage.complete == false && usage.unparsedEvents == 1 && usage.inputTokens == nil)
    }

    @Test func apiRawValues() {
        #expect(MeteredAPI.allCases.map(\.rawValue) == [
            "anthropic.messages", "anthropic.count_tokens", "openai.chat_completions", "openai.responses",
            "openai.embeddings", "models",
        ])
    }
}
