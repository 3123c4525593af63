import AuditRedaction
import Foundation
import Testing

func expectValidJSON(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    #expect(parsed != nil, "not valid JSON: \(text)", sourceLocation: sourceLocation)
}

/// A chat body with one of everything, in English and Korean.
let mixedBody = #"""
    {"model":"claude-sonnet-4","max_tokens":1024,"messages":[{"role":"user","content":"안녕하세요! 제 이메일은 alice.kim@example.co.kr이고 전화는 010-1234-5678입니다.\n카드 4111 1111 1111 1111 (유효기간 12/29), 주민번호 900101-1234568.\nSSN 123-45-6789, call +1 (415) 555-0100 or +44 20 7946 0958.\nMy key is sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdEFGH and\tEMP-123456 is my id."},{"role":"assistant","content":"Noted. 2026-10-05 at 12:34, 4096 tokens, version 1.2.3."}],"metadata":{"user_id":"EMP-654321"},"usage":{"input_tokens":1234,"output_tokens":56}}
    """#

@Suite struct RedactorTests {
    let withEmployeeIDs = try! Redactor(RedactionRules(custom: [(name: "employee_id", regex: "EMP-[0-9]{6}")]))

    @Test func markersAndCounts() throws {
        let result = withEmployeeIDs.redact(mixedBody)
        #expect(
            result.counts == [
                "email": 1, "phone": 3, "card": 1, "kr_rrn": 1, "us_ssn": 1, "secret": 1, "employee_id": 2,
            ])
        #expect(result.total == 10)
        for marker in [
            "[REDACTED:email]이고", "전화는 [REDACTED:phone]입니다", "카드 [REDACTED:card] (유효기간 12/29)",
            "주민번호 [REDACTED:kr_rrn].", "SSN [REDACTED:us_ssn],", "call [REDACTED:phone] or [REDACTED:phone].",
            "key is [REDACTED:secret] and\\t[REDACTED:employee_id] is", #""user_id":"[REDACTED:employee_id]""#,
            "2026-10-05 at 12:34, 4096 tokens, version 1.2.3.", #""input_tokens":1234,"output_tokens":56"#,
        ] {
            #expect(result.text.contains(marker), "\(marker)")
        }
        try expectValidJSON(result.text)
    }

    @Test func textWithoutMatchesIsReturnedUnchanged() {
        let texts = [
            "", "hello", "안녕하세요, 반갑습니다. 오늘 날씨가 좋네요 🙂",
            #"{"model":"gpt-4o","usage":{"prompt_tokens":1234,"completion_tokens":5678},"created":1727000000123}"#,
            "version 10.0.19041, 2026-10-05T12:34:56Z, ask-me@ anything, Bearer token, sk-learn",
        ]
        for text in texts {
            let result = withEmployeeIDs.redact(text)
            #expect(result.text == text)
            #expect(result.counts.isEmpty)
            #expect(result.total == 0)
        }
    }

    @Test func jsonStaysValidWithMatchesNextToEscapes() throws {
        let object: [String: Any] = [
            "content": "line one\nalice@example.com\n010-1234-5678\t\"4111 1111 1111 1111\"\\123-45-6789\r\n끝",
            "nested": ["sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd", "전화:+82 10-1234-5678"],
            "card": 4_111_111_111_111_111,
            "cards": [4_111_111_111_111_111, 5_555_555_555_554_444],
        ]
        let body = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        let result = everything.redact(body)
        #expect(result.total == 9)
        try expectValidJSON(result.text)
        let back = try #require(try JSONSerialization.jsonObject(with: Data(result.text.utf8)) as? [String: Any])
        #expect(back["card"] as? String == "[REDACTED:card]")
        #expect(back["cards"] as? [String] == ["[REDACTED:card]", "[REDACTED:card]"])
        #expect(
            back["content"] as? String
                == "line one\n[REDACTED:email]\n[REDACTED:phone]\t\"[REDACTED:card]\"\\[REDACTED:us_ssn]\r\n끝")
        #expect(back["nested"] as? [String] == ["[REDACTED:secret]", "전화:[REDACTED:phone]"])
    }

    @Test func overlapsFollowThePrecedenceOrder() {
        // An e-mail address whose local part is a phone number: email beats phone.
        let a = everything.redact("01012345678@example.com")
        #expect(a.text == "[REDACTED:email]")
        #expect(a.counts == ["email": 1])
        // A custom pattern overlapping a built-in match loses to it.
        let ssnLike = try! Redactor(RedactionRules(custom: [(name: "ticket", regex: "[0-9]{3}-[0-9]{2}-[0-9]{4}")]))
        #expect(ssnLike.redact("123-45-6789 and 000-12-3456").text == "[REDACTED:us_ssn] and [REDACTED:ticket]")
        // A disabled built-in leaves the text to the custom pattern.
        let customOnly = try! Redactor(RedactionRules(patterns: [], custom: [(name: "ticket", regex: "[0-9]{3}-[0-9]{2}-[0-9]{4}")]))
        #expect(customOnly.redact("123-45-6789").counts == ["ticket": 1])
    }

    @Test func customPatterns() throws {
        let redactor = try Redactor(
            RedactionRules(
                patterns: [.email],
                custom: [(name: "employee_id", regex: "EMP-[0-9]{6}"), (name: "project", regex: "(?i)project\\s+[a-z]+")]))
        let result = redactor.redact("EMP-123456 (bob@example.com) runs Project Falcon; 사번 EMP-000001입니다, not EMP-12345")
        #expect(
            result.text
                == "[REDACTED:employee_id] ([REDACTED:email]) runs [REDACTED:project]; 사번 [REDACTED:employee_id]입니다, not EMP-12345")
        #expect(result.counts == ["employee_id": 2, "email": 1, "project": 1])
    }

    @Test func customPatternsWithAndWithoutALiteralStart() throws {
        let text = "id emp-123456, EMP-654321, ref AB-99, x: 12-34 끝"
        let rules: [(name: String, regex: String)] = [
            (name: "emp", regex: "\\bEMP-\\d{6}\\b"),  // literal "EMP-": skipped when absent
            (name: "ref", regex: "(?i)ab-[0-9]+"),  // flags: no literal
            (name: "pair", regex: "[0-9]{2}-[0-9]{2}|QQ"),  // alternation: no literal
        ]
        let redactor = try Redactor(RedactionRules(patterns: [], custom: rules))
        #expect(redactor.redact(text).text == "id emp-123456, [REDACTED:emp], ref [REDACTED:ref], x: [REDACTED:pair] 끝")
        #expect(redactor.redact("nothing here").total == 0)
    }

    @Test func customMatchesStayOutsideJSONEscapes() throws {
        let redactor = try Redactor(
            RedactionRules(
                patterns: [],
                custom: [(name: "n", regex: "n[0-9]+"), (name: "t", regex: "[0-9]+\\\\"), (name: "u", regex: "00e[0-9]")]))
        let body = #"{"a":"x\n123 y 45\"z \u00e9"}"#
        let result = redactor.redact(body)
        #expect(result.text == #"{"a":"x\n[REDACTED:n] y [REDACTED:t]\"z \u00e9"}"#)
        try expectValidJSON(result.text)
        // Outside JSON, a backslash before a match is just a character.
        let employee = try Redactor(RedactionRules(patterns: [], custom: [(name: "employee_id", regex: "EMP-[0-9]{6}")]))
        #expect(employee.redact(#"C:\EMP-123456\notes"#).text == #"C:\[REDACTED:employee_id]\notes"#)
    }

    @Test func invalidRulesAreRejected() {
        #expect(throws: RedactionRulesError.self) { try Redactor(RedactionRules(custom: [(name: "bad", regex: "([a-z")])) }
        #expect(throws: RedactionRulesError.self) { try Redactor(RedactionRules(custom: [(name: "with\"quote", regex: "x")])) }
        #expect(throws: RedactionRulesError.self) { try Redactor(RedactionRules(custom: [(name: "", regex: "x")])) }
    }

    @Test func onlyTheChosenPatternsRun() throws {
        let redactor = try Redactor(RedactionRules(patterns: [.email, .secret]))
        let text = "alice@example.com 010-1234-5678 4111111111111111 AKIAIOSFODNN7EXAMPLE"
        #expect(redactor.redact(text).text == "[REDACTED:email] 010-1234-5678 4111111111111111 [REDACTED:secret]")
        #expect(BuiltinPattern.allCases.map(\.rawValue) == ["email", "phone", "card", "kr_rrn", "us_ssn", "secret"])
    }

    @Test func multiByteTextAroundEveryKindOfMatch() {
        let text = "🙂alice@example.com🙂 가010-1234-5678나 다4111111111111111라 마900101-1234568바 사123-45-6789아 자AKIAIOSFODNN7EXAMPLE차"
        #expect(
            redacted(text)
                == "🙂[REDACTED:email]🙂 가[REDACTED:phone]나 다[REDACTED:card]라 마[REDACTED:kr_rrn]바 사[REDACTED:us_ssn]아 자[REDACTED:secret]차")
    }
}
