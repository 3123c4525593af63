import AuditRedaction
import Testing

let everything = Redactor()

/// The redacted text with all built-in patterns.
func redacted(_ text: String) -> String { everything.redact(text).text }

/// Redacts `text` with only `pattern`, expecting exactly `expected`.
func expectOnly(_ pattern: BuiltinPattern, _ text: String, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let redactor = try! Redactor(RedactionRules(patterns: [pattern]))
    #expect(redactor.redact(text).text == expected, sourceLocation: sourceLocation)
}

@Suite struct EmailTests {
    @Test(arguments: [
        "alice@example.com", "bob.smith+tag@mail.example.co.kr", "x_y-z%1@sub-domain.example.io", "KIM.Minsu@Company.KR",
    ])
    func addressesAreRedacted(address: String) {
        #expect(redacted("write to \(address) today") == "write to [REDACTED:email] today")
    }

    @Test(arguments: [
        "@", "user@localhost", "a@b", "foo@.com", "x@y.z", "alice@", "@alice", "@app.route('/x')", "me@ex_ample.com",
        "name@domain.123",
    ])
    func nonAddressesAreKept(text: String) {
        #expect(redacted("see \(text) here") == "see \(text) here")
    }

    @Test func sentencePunctuationIsNotTaken() {
        #expect(redacted("Mail alice@example.com. Or (bob@example.org)!") == "Mail [REDACTED:email]. Or ([REDACTED:email])!")
        #expect(redacted("mailto:carol@example.net,dave@example.net") == "mailto:[REDACTED:email],[REDACTED:email]")
    }

    @Test func aJSONEscapeBeforeTheAddressIsNotPartOfIt() {
        #expect(redacted(#"{"t":"hi\nalice@example.com\tbye"}"#) == #"{"t":"hi\n[REDACTED:email]\tbye"}"#)
        #expect(redacted(#"{"t":"\u00e9alice@example.com"}"#) == #"{"t":"\u00e9[REDACTED:email]"}"#)
    }

    @Test func hangulAroundTheAddress() {
        #expect(redacted("제 메일은alice@example.com이고 답장 주세요") == "제 메일은[REDACTED:email]이고 답장 주세요")
    }
}

@Suite struct PhoneTests {
    @Test(arguments: [
        "+82 10-1234-5678", "+1 (415) 555-0100", "+44 20 7946 0958", "+821012345678", "+82-10-1234-5678",
        "+82 (0)10-1234-5678", "+1 415.555.0100",
        "010-1234-5678", "01012345678", "010 1234 5678", "010.1234.5678", "011-123-4567", "02-123-4567", "02-1234-5678",
        "031-1234-5678", "051-123-4567", "070-1234-5678",
    ])
    func numbersAreRedacted(number: String) {
        expectOnly(.phone, "call \(number) now", "call [REDACTED:phone] now")
        #expect(redacted("call \(number) now") == "call [REDACTED:phone] now")
    }

    @Test(arguments: [
        #""input_tokens": 1234567, "output_tokens": 89012"#, "on 2026-10-05 at 12:34:56", "version 1.2.3 and 10.0.19041",
        "in 2026, 4096 tokens", "order 12345678901", "010-1234-56789", "123-4567", "+12345", "1+2=3", "C++ 20",
        "0101234567890", "02-12-3456", "099-123-4567", "ids 1712345678,1712345679", "v010-1234-5678", "3.010-1234-5678",
    ])
    func ordinaryNumbersAreKept(text: String) {
        expectOnly(.phone, text, text)
    }

    @Test func koreanTextAroundNumbers() {
        #expect(redacted("연락처:010-1234-5678입니다") == "연락처:[REDACTED:phone]입니다")
        #expect(redacted("전화 +82 10-1234-5678로 주세요") == "전화 [REDACTED:phone]로 주세요")
    }

    @Test func numbersSeparatedByCommas() {
        #expect(redacted("010-1234-5678,010-2222-3333") == "[REDACTED:phone],[REDACTED:phone]")
    }
}

@Suite struct CardTests {
    @Test(arguments: [
        "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5555 5555 5555 4444", "378282246310005",
        "3782 822463 10005", "6011111111111117", "30569309025904", "4222222222222", "6200000000000005", "3530111333300000",
    ])
    func luhnValidNumbersAreRedacted(number: String) {
        expectOnly(.card, "card: \(number), exp 12/29", "card: [REDACTED:card], exp 12/29")
    }

    @Test(arguments: [
        "4111 1111 1111 1112", "4111111111111112", "5555 5555 5555 4445",
        // Luhn-valid, but outside the issuer ranges (timestamps and ids start with 1).
        "1234567812345670",
        // Mixed separators, wrong grouping, too short, too long.
        "4111 1111-1111 1111", "41111 111 1111 1111", "411111111111", "41111111111111111111",
    ])
    func otherNumbersAreKept(number: String) {
        expectOnly(.card, "ref \(number) ok", "ref \(number) ok")
    }

    @Test func aCardFollowedByAYearKeepsTheYear() {
        #expect(redacted("4111 1111 1111 1111 2029") == "[REDACTED:card] 2029")
    }
}

@Suite struct ResidentNumberTests {
    @Test(arguments: ["900101-1234568", "851231-2345673", "000229-3123454", "750615-5123456", "040101-4123452", "9001011234568"])
    func validNumbersAreRedacted(number: String) {
        expectOnly(.krRRN, "주민번호 \(number) 입니다", "주민번호 [REDACTED:kr_rrn] 입니다")
        #expect(redacted("주민번호:\(number)입니다") == "주민번호:[REDACTED:kr_rrn]입니다")
    }

    @Test(arguments: [
        "900101-1234567",  // check digit
        "9001011234567",
        "960230-1123458",  // 30 February, check digit right
        "901301-1234565",  // month 13
        "900101-9234565",  // gender digit 9
        "900101-0234565",
        "900101-12345681",  // too long
    ])
    func invalidNumbersAreKept(number: String) {
        expectOnly(.krRRN, "번호 \(number) 끝", "번호 \(number) 끝")
    }
}

@Suite struct SocialSecurityNumberTests {
    @Test(arguments: ["123-45-6789", "001-01-0001", "899-99-9999", "665-12-3456"])
    func validNumbersAreRedacted(number: String) {
        expectOnly(.usSSN, "SSN \(number).", "SSN [REDACTED:us_ssn].")
    }

    @Test(arguments: [
        "000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567", "123-45-0000", "1123-45-6789",
        "123-45-67890", "123-456-7890", "123456789",
    ])
    func neverIssuedNumbersAreKept(number: String) {
        expectOnly(.usSSN, "SSN \(number).", "SSN \(number).")
    }
}

@Suite struct SecretTests {
    static let hex64 = String(repeating: "0123456789abcdef", count: 4)

    @Test(arguments: [
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdEFGH",
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd",
        "sk-AbCdEfGhIjKlMnOpQrStT3BlbkFJAbCdEfGhIjKlMnOpQrSt",
        "agk_" + SecretTests.hex64,
        "AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A",
        "ghp_1234567890abcdefghijABCDEFGHIJ123456", "gho_1234567890abcdefghijABCDEFGHIJ123456",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",
        "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxp-12345-67890-abcdef",
    ])
    func keysAreRedacted(key: String) {
        expectOnly(.secret, "key=\(key);", "key=[REDACTED:secret];")
        expectOnly(.secret, #"{"key":"\#(key)"}"#, #"{"key":"[REDACTED:secret]"}"#)
    }

    @Test(arguments: [
        "sk-learn", "task-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz", "ask-AbCdEfGhIjKlMnOpQrStUvWxYz0123", "sk-short123",
        "agk_" + String(SecretTests.hex64.dropLast()), "agk_" + SecretTests.hex64 + "a", "AKIAIOSFODNN7EXAMPL",
        "AKIAIOSFODNN7EXAMPLE1", "ghp_short", "xoxb-12", "Bearer token", "Bearer YOUR_API_KEY", "bearer <token>",
        "the Bearer authentication scheme",
    ])
    func lookalikesAreKept(text: String) {
        expectOnly(.secret, "x \(text) y", "x \(text) y")
    }

    @Test func bearerKeepsTheWord() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
        #expect(redacted("Authorization: Bearer \(jwt)\r\n") == "Authorization: Bearer [REDACTED:secret]\r\n")
        #expect(redacted(#"{"authorization":"bearer \#(jwt)"}"#) == #"{"authorization":"bearer [REDACTED:secret]"}"#)
        let result = everything.redact("Authorization: Bearer sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123")
        #expect(result.text == "Authorization: Bearer [REDACTED:secret]")
        #expect(result.counts == ["secret": 1])
    }

    @Test func labelledAWSSecretKeys() {
        let value = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        #expect(redacted("aws_secret_access_key = \(value)\n") == "aws_secret_access_key = [REDACTED:secret]\n")
        #expect(redacted("AWS_SECRET_ACCESS_KEY=\(value)") == "AWS_SECRET_ACCESS_KEY=[REDACTED:secret]")
        #expect(redacted(#"{"SecretAccessKey": "\#(value)"}"#) == #"{"SecretAccessKey": "[REDACTED:secret]"}"#)
        // Unlabelled, a 40-byte base64 string is just text.
        #expect(redacted("value \(value)") == "value \(value)")
    }

    static let pemBody = [
        "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi+Wa2Q7KlNvJXuqJ6T9lXYLAU4",
        "o4XVw1rkjsJT1EyCr+3jz5dPIFg2y7Ol8hHOO6A3rz5ZKXsQ3L1ZN8l0n0ZdVU6s",
        "VJdP/0yVa1q+8uwqCvY7E8dRdLdNqAbrKeJe3G6BG2rdqq3JS2JLdg8wO8uz6kZ0",
        "a7ZxB3DhqPqDd3t0bMflbR+wNmLT0sB4vQYw2kNqY3uMTwLJAWQZ7yJ5M9QDAQAB",
    ]

    @Test func privateKeyBlocks() {
        let block = "-----BEGIN RSA PRIVATE KEY-----\n" + Self.pemBody.joined(separator: "\n") + "\n-----END RSA PRIVATE KEY-----"
        #expect(redacted("key:\n\(block)\nthanks") == "key:\n[REDACTED:secret]\nthanks")
        let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\r\n" + Self.pemBody.joined(separator: "\r\n") + "\r\n-----END OPENSSH PRIVATE KEY-----"
        #expect(redacted(openssh) == "[REDACTED:secret]")
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123456789ABCDEF\n\n"
            + Self.pemBody.joined(separator: "\n") + "\n-----END RSA PRIVATE KEY-----"
        #expect(redacted("a \(encrypted) b") == "a [REDACTED:secret] b")
        // Cut short: the beginning is still taken.
        #expect(redacted("-----BEGIN PRIVATE KEY-----\n\(Self.pemBody[0])") == "[REDACTED:secret]")
        // Certificates and public keys are not secrets.
        let certificate = "-----BEGIN CERTIFICATE-----\n\(Self.pemBody[0])\n-----END CERTIFICATE-----"
        #expect(redacted(certificate) == certificate)
    }

    @Test func privateKeyInsideAJSONString() throws {
        let escaped = "-----BEGIN PRIVATE KEY-----\\n" + Self.pemBody.joined(separator: "\\n") + "\\n-----END PRIVATE KEY-----\\n"
        let body = #"{"messages":[{"role":"user","content":"why does this fail?\n\#(escaped)thanks"}]}"#
        let result = everything.redact(body)
        #expect(result.text == #"{"messages":[{"role":"user","content":"why does this fail?\n[REDACTED:secret]\nthanks"}]}"#)
        #expect(result.counts == ["secret": 1])
        try expectValidJSON(result.text)
    }
}
