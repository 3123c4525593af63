import Testing

@testable import AuditMetering

/// A plain answer too long to keep whole is metered from its first and last bytes.
@Suite struct LongAnswerTests {
    static func longMessage(text: String) -> [UInt8] {
        Array(
            """
            {"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"\(text)"}],\
            "stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":345,"cache_read_input_tokens":7}}
            """.utf8)
    }

    @Test func usageAndModelComeFromTheTailAndTheHead() {
        // The text mentions a fake usage object; inside a JSON string its quotes are escaped.
        let body = Self.longMessage(text: String(repeating: "a", count: 300_000) + #"\"usage\":{\"input_tokens\":999}"#)
        var meter = UsageMeter(api: .anthropicMessages)
        meter.consume(responseHead: Array(body.prefix(4096)), tail: Array(body.suffix(2048)))
        #expect(meter.usage.inputTokens == 12)
        #expect(meter.usage.outputTokens == 345)
        #expect(meter.usage.cacheReadTokens == 7)
        #expect(meter.usage.model == "claude-sonnet-4-6")
        #expect(meter.usage.complete)
    }

    @Test func embeddingsPutTheirModelAtTheEnd() {
        let data = String(repeating: "[0.125,0.25],", count: 10_000)
        let body = Array(#"{"object":"list","data":[\#(data)[1.0]],"model":"text-embedding-3-small","usage":{"prompt_tokens":42,"total_tokens":42}}"#.utf8)
        var meter = UsageMeter(api: .openAIEmbeddings)
        meter.consume(responseHead: Array(body.prefix(1000)), tail: Array(body.suffix(500)))
        #expect(meter.usage.inputTokens == 42)
        #expect(meter.usage.model == "text-embedding-3-small")
    }

    @Test func aTailWithoutUsageMetersNothingAndSaysSo() {
        let body = Self.longMessage(text: "short")
        var meter = UsageMeter(api: .anthropicMessages)
        meter.consume(responseHead: Array(body.prefix(60)), tail: Array(body.prefix(60)))
        #expect(meter.usage.inputTokens == nil)
        #expect(meter.usage.outputTokens == nil)
    }
}
