import AuditMetering
import Testing

@Suite struct RequestFactsTests {
    func facts(_ body: String) -> RequestFacts? { RequestFacts(requestBody: body.bytes) }

    @Test func anthropicBody() {
        let body = """
            {"model":"claude-sonnet-4-5","max_tokens":1024,
             "system":"You are terse.",
             "metadata":{"user_id":"u-123"},
             "stream":false,
             "messages":[{"role":"user","content":"Hello"}]}
            """
        #expect(
            facts(body)
                == RequestFacts(model: "claude-sonnet-4-5", stream: false, endUser: "u-123", includeUsage: false, metadataUserID: "u-123"))
    }

    @Test func openAIBody() {
        let body = #"{"model":"gpt-4o-mini","messages":[],"stream":true,"stream_options":{"include_usage":true},"user":"old","safety_identifier":"sid-1"}"#
        #expect(
            facts(body)
                == RequestFacts(
                    model: "gpt-4o-mini", stream: true, endUser: "sid-1", includeUsage: true, user: "old", safetyIdentifier: "sid-1"))
        #expect(facts(#"{"model":"m","user":"only-user"}"#)?.endUser == "only-user")
        #expect(facts(#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#)?.includeUsage == false)
    }

    @Test func onlyTopLevelKeysCount() {
        let body = #"""
            {"messages":[{"role":"user","content":"x","model":"evil","stream":true,"user":"evil",
              "metadata":{"user_id":"evil"},"stream_options":{"include_usage":true}}],
             "tools":[{"name":"t","input_schema":{"properties":{"model":{"type":"string"}}}}],
             "x":"model","model_x":"evil","MODEL":"evil",
             "model":"claude"}
            """#
        #expect(facts(body) == RequestFacts(model: "claude"))
    }

    @Test func escapesInKeysAndValues() {
        #expect(facts(#"{"system":"he said \"model\": \"x\", \\","model":"m\"1\\"}"#)?.model == #"m"1\"#)
        #expect(facts(#"{"mo\u0064el":"escaped-key"}"#)?.model == "escaped-key")
        #expect(facts(#"{"model":"caf\u00e9 \ud83d\ude00 \uC548\/x"}"#)?.model == "café 😀 안/x")
        #expect(facts(#"{"model":"lone \ud800 surrogate"}"#)?.model == "lone \u{FFFD} surrogate")
        #expect(facts(#"{"model":"\b\f\n\r\t"}"#)?.model == "\u{8}\u{C}\n\r\t")
        #expect(facts(#"{"metadata":{"us\u0065r_id":"u\u002d1"}}"#)?.endUser == "u-1")
        #expect(facts(#"{"model":"한국어-모델"}"#)?.model == "한국어-모델")
    }

    @Test func whitespaceEverywhere() {
        let body = " \r\n\t{ \"model\" :\n\"x\" ,\t\"stream\"\r\n:  true , \"metadata\" : { \"user_id\" : \"u\" } } \n"
        #expect(facts(body) == RequestFacts(model: "x", stream: true, endUser: "u", metadataUserID: "u"))
    }

    @Test func duplicateKeysLastWins() {
        #expect(facts(#"{"model":"first","model":"second"}"#)?.model == "second")
        #expect(facts(#"{"stream":true,"stream":false}"#)?.stream == false)
    }

    @Test func wrongTypesAreNotFacts() {
        let f = facts(#"{"model":42,"stream":"true","metadata":"u","user":null,"stream_options":{"include_usage":1}}"#)
        #expect(f == RequestFacts())
        #expect(facts(#"{"stream":1}"#)?.stream == false)
        #expect(facts("{}") == RequestFacts())
    }

    @Test func malformedJSONIsNil() {
        let bad = [
            "", " ", "[]", "\"x\"", "null", "1", "{", "}", #"{"model":"x""#, #"{"model":"x",}"#, #"{"model":x}"#,
            #"{'model':'x'}"#, #"{"a":1}{}"#, #"{"a":1} x"#, #"{"a":[1,2}"#, #"{"a":{"b":1]}"#, #"{"a" 1}"#,
            #"{"a":1,,"b":2}"#, #"{,"a":1}"#, #"{"a":01}"#, #"{"a":1.}"#, #"{"a":-}"#, #"{"a":+1}"#, #"{"a":.5}"#,
            #"{"a":1e}"#, #"{"a":tru}"#, #"{"a":nul}"#, #"{"a":True}"#, #"{"a":"\q"}"#, #"{"a":"\u12"}"#,
            #"{"a":"\u12G4"}"#, #"{"a":"unterminated}"#, #"{"a":1}/* c */"#, #"{"a":NaN}"#, #"{a:1}"#,
            "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}",
        ]
        for body in bad {
            #expect(facts(body) == nil, "\(body.debugDescription)")
        }
        // Invalid UTF-8 inside a string: a lone continuation byte, an overlong, a surrogate, and
        // a byte outside any string.
        for raw: [UInt8] in [[0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            let body = #"{"model":""#.bytes + raw + #""}"#.bytes
            #expect(RequestFacts(requestBody: body) == nil)
        }
        #expect(RequestFacts(requestBody: [0xEF, 0xBB, 0xBF] + "{}".bytes) == nil)
    }

    @Test func validNumbersAndLiterals() {
        let body = #"{"a":[0,-0,1.5,-2e10,3E+2,4.0e-3,true,false,null,"",{},[]],"model":"m"}"#
        #expect(facts(body)?.model == "m")
    }

    /// Nesting is walked with an explicit stack: very deep values neither crash nor count.
    @Test func deepNesting() {
        let depth = 100_000
        let deep = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(facts(#"{"a":"# + deep + #","model":"m"}"#)?.model == "m")
        let deepObjects = String(repeating: #"{"model":"#, count: depth) + "1" + String(repeating: "}", count: depth)
        #expect(facts(#"{"x":"# + deepObjects + #","model":"top"}"#)?.model == "top")
        #expect(facts(#"{"a":"# + String(repeating: "[", count: depth) + "}") == nil)
    }

    @Test func bigBodyIsScannedOnce() {
        let image = String(repeating: "QUJD", count: 2_000_000)  // 8 MB of base64
        let body = #"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":""# + image
            + #""}}]}],"model":"claude","stream":true}"#
        #expect(facts(body) == RequestFacts(model: "claude", stream: true))
    }
}
