import AuditMetering
import Foundation
import Testing

@Suite struct IncludeUsageRewriterTests {
    /// Parses both bodies and checks that every top-level member other than `stream_options` is
    /// identical, and that `stream_options.include_usage` is now true with its other members kept.
    func expectSameExceptStreamOptions(_ original: String, _ rewritten: [UInt8]) throws {
        let before = try #require(try JSONSerialization.jsonObject(with: Data(original.utf8)) as? [String: Any])
        let after = try #require(try JSONSerialization.jsonObject(with: Data(rewritten)) as? [String: Any])
        #expect(Set(after.keys) == Set(before.keys).union(["stream_options"]))
        for key in before.keys where key != "stream_options" {
            #expect(try canonical(before[key]!) == canonical(after[key]!), "member \(key)")
        }
        let options = try #require(after["stream_options"] as? [String: Any])
        #expect(options["include_usage"] as? Bool == true)
        if let old = before["stream_options"] as? [String: Any] {
            for key in old.keys where key != "include_usage" {
                #expect(try canonical(old[key]!) == canonical(options[key]!))
            }
        }
    }

    func canonical(_ value: Any) throws -> Data {
        try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
    }

    func rewrite(_ body: String) -> String? {
        IncludeUsageRewriter.addIncludeUsage(toRequestBody: body.bytes).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func absentStreamOptionsIsInsertedAfterTheOpeningBrace() throws {
        let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}"#
        let out = try #require(rewrite(body))
        #expect(out == #"{"stream_options":{"include_usage":true},"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}"#)
        try expectSameExceptStreamOptions(body, out.bytes)
    }

    @Test func alreadyTrueNeedsNothing() {
        #expect(rewrite(#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#) == nil)
        #expect(rewrite(#"{"stream_options" : { "include_usage" : true } , "stream" : true}"#) == nil)
    }

    @Test func explicitFalseIsForcedToTrue() throws {
        let body = #"{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}}"#
        let out = try #require(rewrite(body))
        #expect(out == #"{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}"#)
        try expectSameExceptStreamOptions(body, out.bytes)
        #expect(rewrite(#"{"stream":true,"stream_options":{"include_usage":null}}"#) == #"{"stream":true,"stream_options":{"include_usage":true}}"#)
    }

    @Test func notAStreamIsLeftAlone() {
        #expect(rewrite(#"{"model":"m","stream":false}"#) == nil)
        #expect(rewrite(#"{"model":"m"}"#) == nil)
        #expect(rewrite(#"{"model":"m","stream":"true"}"#) == nil)
        #expect(rewrite(#"{"model":"m","stream":1}"#) == nil)
        #expect(rewrite(#"{"messages":[{"stream":true}],"stream":false}"#) == nil)
        // Last duplicate wins, as in the upstream's parser.
        #expect(rewrite(#"{"stream":true,"stream":false}"#) == nil)
        #expect(rewrite(#"{"stream":false,"stream":true}"#) == #"{"stream_options":{"include_usage":true},"stream":false,"stream":true}"#)
    }

    @Test func streamOptionsWithoutIncludeUsageIsPatched() throws {
        let body = #"{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}"#
        let out = try #require(rewrite(body))
        #expect(out == #"{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}"#)
        try expectSameExceptStreamOptions(body, out.bytes)
        #expect(rewrite(#"{"stream":true,"stream_options":{}}"#) == #"{"stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(rewrite("{\"stream\":true,\"stream_options\":{ \n }}") == "{\"stream\":true,\"stream_options\":{\"include_usage\":true \n }}")
        #expect(rewrite(#"{"stream":true,"stream_options":null}"#) == #"{"stream":true,"stream_options":{"include_usage":true}}"#)
        // Not an object: the upstream rejects it, the gateway does not guess.
        #expect(rewrite(#"{"stream":true,"stream_options":"x"}"#) == nil)
        #expect(rewrite(#"{"stream":true,"stream_options":[]}"#) == nil)
    }

    @Test func prettyPrintedBodiesKeepEveryOtherByte() throws {
        let body = """
            \r\n  {
              "model" : "gpt-4o-mini",
              "messages" : [ { "role" : "user", "content" : "안녕 \\"stream_options\\" \\u00e9 😀" } ],
              "temperature" : 1.50E+0,
              "stream"\t:\ttrue ,
              "stream_options" : {
                "include_obfuscation" : false
              }
            }\n
            """
        let out = try #require(rewrite(body))
        let marker = "\"stream_options\" : {"
        let expected = body.replacingOccurrences(of: marker, with: marker + #""include_usage":true,"#)
        #expect(out == expected)
        try expectSameExceptStreamOptions(body, out.bytes)

        let noOptions = """
            {
              "model": "gpt-4o-mini",
              "metadata": {"stream_options": {"include_usage": false}},
              "stream": true
            }
            """
        let out2 = try #require(rewrite(noOptions))
        #expect(out2 == "{" + #""stream_options":{"include_usage":true},"# + noOptions.dropFirst())
        try expectSameExceptStreamOptions(noOptions, out2.bytes)

        let falseInside = "{ \"stream\" : true , \"stream_options\" : { \"include_usage\" :\n false } }"
        #expect(rewrite(falseInside) == "{ \"stream\" : true , \"stream_options\" : { \"include_usage\" :\n true } }")
    }

    @Test func duplicateStreamOptionsPatchesTheLastOne() {
        let body = #"{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":false}}"#
        #expect(rewrite(body) == #"{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}}"#)
    }

    @Test func malformedBodiesAreNotTouched() {
        #expect(rewrite(#"{"stream":true"#) == nil)
        #expect(rewrite(#"{"stream":true,}"#) == nil)
        #expect(rewrite(#"["stream",true]"#) == nil)
        #expect(rewrite("") == nil)
    }

    @Test func usageOnlyChunkIsRecognisedAndOnlyIt() {
        let events = frame([Fixtures.chatStream.bytes]).events
        let flagged = events.map(IncludeUsageRewriter.isUsageOnlyChunk)
        #expect(flagged == [false, false, false, false, false, false, false, true, false])
        // Dropping it gives the client the stream without that one event, byte for byte.
        let kept = events.filter { !IncludeUsageRewriter.isUsageOnlyChunk($0) }.flatMap(\.raw)
        let usageEvent = events[7].raw
        let full = Fixtures.chatStream.bytes
        let at = byteOffset(of: String(decoding: usageEvent, as: UTF8.self), in: Fixtures.chatStream)!
        #expect(kept == Array(full[..<at]) + Array(full[(at + usageEvent.count)...]))

        func chunk(_ data: String) -> SSEEvent { frame([("data: " + data + "\n\n").bytes]).events[0] }
        #expect(IncludeUsageRewriter.isUsageOnlyChunk(chunk(#"{ "choices" : [ ] , "usage" : {"prompt_tokens":1} }"#)))
        #expect(!IncludeUsageRewriter.isUsageOnlyChunk(chunk(#"{"choices":[],"usage":null}"#)))
        #expect(!IncludeUsageRewriter.isUsageOnlyChunk(chunk(#"{"choices":[]}"#)))
        #expect(!IncludeUsageRewriter.isUsageOnlyChunk(chunk(#"{"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":1}}"#)))
        #expect(!IncludeUsageRewriter.isUsageOnlyChunk(chunk("[DONE]")))
        #expect(!IncludeUsageRewriter.isUsageOnlyChunk(chunk(#"{"x":{"choices":[],"usage":{}}}"#)))
        #expect(!IncludeUsageRewriter.isUsageOnlyChunk(SSEEvent(raw: [], oversized: true)))
    }
}
