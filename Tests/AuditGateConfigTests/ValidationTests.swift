import Foundation
import Testing

@testable import AuditGateConfig

let hashA = String(repeating: "a", count: 64)
let hashB = String(repeating: "b", count: 64)

@Suite("Validation")
struct ValidationTests {
    // MARK: structure

    @Test("Unknown keys are reported with the valid ones, at every level")
    func unknownKeys() {
        let found = issues(withDatabase("""
            servr: {}
            server:
              prot: 8045
            upstreams:
              anthropic:
                apikey: x
            auth:
              keys:
                - {key_sha256: "\(hashA)", user: a, team: t, key: secret}
            redaction:
              custom:
                - {nme: x, regex: "y"}
            """))
        expectIssue(found, at: "servr", containing: "unknown key 'servr'", "valid keys: server, database, upstreams, egress, auth, audit, redaction")
        expectIssue(found, at: "server.prot", containing: "unknown key 'prot' (valid keys: host, port, max_body_bytes, trusted_proxies, max_connections, max_inflight_request_bytes, idle_timeout_seconds)")
        expectIssue(found, at: "upstreams.anthropic.apikey", containing: "unknown key 'apikey' (valid keys: base_url, api_key)")
        expectIssue(found, at: "auth.keys[0].key", containing: "unknown key 'key' (valid keys: key_sha256, user, team)")
        expectIssue(found, at: "redaction.custom[0].nme", containing: "unknown key 'nme'")
    }

    @Test("Wrong types are reported without quoting the value")
    func wrongTypes() {
        let found = issues(withDatabase("""
            server: localhost
            upstreams:
              openai:
                api_key: [a, b]
            auth:
              keys: not-a-list
            redaction:
              patterns: email
            """))
        expectIssue(found, at: "server", containing: "must be a mapping", "got a single value")
        expectIssue(found, at: "upstreams.openai.api_key", containing: "got a list")
        expectIssue(found, at: "auth.keys", containing: "must be a list of client keys")
        expectIssue(found, at: "redaction.patterns", containing: "must be a list of pattern names")
    }

    @Test("A number where a number is expected")
    func notANumber() {
        expectIssue(issues(withDatabase("server:\n  port: eighty\n")), at: "server.port", containing: "got 'eighty'")
        expectIssue(issues(withDatabase("server:\n  port: {a: 1}\n")), at: "server.port", containing: "got a mapping")
    }

    @Test("The file must be a mapping")
    func notAMapping() {
        let list = issues("- server\n- database\n")
        #expect(list.count == 1)
        #expect(list.first?.path == "")
        #expect(list.first?.message.contains("must be a YAML mapping") == true)
        #expect(issues("just text\n").first?.message.contains("got a single value") == true)
    }

    @Test("An empty file reports the missing database")
    func emptyFile() {
        expectIssue(issues(""), at: "database.url", containing: "required")
    }

    @Test("YAML syntax errors carry line and column")
    func syntaxError() {
        let found = issues("server:\n  host: 127.0.0.1\n   port: 8045\n")
        #expect(found.count == 1)
        let message = found.first?.message ?? ""
        #expect(message.contains("YAML syntax error at line 3, column"), "\(message)")
    }

    @Test("Syntax errors do not echo the offending line")
    func syntaxErrorDoesNotEcho() {
        let found = issues("upstreams:\n  anthropic:\n    api_key: sk-ant-LITERAL: [\n")
        #expect(found.count == 1)
        #expect(!found.description.contains("sk-ant-LITERAL"))
    }

    @Test("Duplicate YAML keys are an error with their line")
    func duplicateYAMLKeys() {
        let found = issues(withDatabase("server:\n  port: 1\n  port: 2\n"))
        #expect(found.count == 1)
        #expect(found.first?.message.contains("duplicate key 'port' at line") == true, "\(found)")
    }

    @Test("Every issue is reported, not only the first, one per line")
    func allIssuesReported() {
        let found = issues("server:\n  port: 0\n  max_body_bytes: 0\nauth:\n  mode: strickt\n")
        #expect(found.count == 4)  // port, max_body_bytes, auth.mode, database.url
        let error = ConfigurationError(issues: found)
        let lines = error.description.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines.contains("auth.mode: must be one of strict, all_except_health, off; got 'strickt'"))
    }

    @Test("The auth-off refusal is reported alongside problems in other sections")
    func exposureWithOtherIssues() {
        let found = issues("server:\n  host: 0.0.0.0\nauth:\n  mode: off\ndatabase:\n  url: mysql://x@y/z\n")
        expectIssue(found, at: "database.url", containing: "postgresql://")
        expectIssue(found, at: "server.host", containing: "auth.mode is off")
    }

    // MARK: server

    @Test("server.port must be 1...65535", arguments: ["0", "65536", "-1"])
    func portRange(port: String) {
        expectIssue(issues(withDatabase("server:\n  port: \(port)\n")), at: "server.port", containing: "from 1 to 65535")
    }

    @Test("server.port limits themselves are accepted", arguments: [1, 65535])
    func portLimits(port: Int) throws {
        #expect(try parse(withDatabase("server:\n  port: \(port)\n")).server.port == port)
    }

    @Test("server.max_body_bytes must be > 0", arguments: ["0", "-5"])
    func maxBodyBytes(value: String) {
        expectIssue(issues(withDatabase("server:\n  max_body_bytes: \(value)\n")), at: "server.max_body_bytes", containing: "greater than 0")
    }

    // MARK: enums

    @Test("auth.mode must be one of its values")
    func authMode() {
        expectIssue(
            issues(withDatabase("auth:\n  mode: strickt\n")),
            at: "auth.mode", containing: "must be one of strict, all_except_health, off; got 'strickt'"
        )
    }

    @Test("audit enumerations must be one of their values")
    func auditEnums() {
        let found = issues(withDatabase("audit:\n  durability: sync\n  on_store_failure: ignore\n  bodies: partial\n"))
        expectIssue(found, at: "audit.durability", containing: "must be one of spool, async; got 'sync'")
        expectIssue(found, at: "audit.on_store_failure", containing: "must be one of reject, continue; got 'ignore'")
        expectIssue(found, at: "audit.bodies", containing: "must be one of full, redacted, hashed, none; got 'partial'")
    }

    // MARK: database

    @Test("database.url is required and not empty", arguments: ["", "database:\n  url: \"\"\n", "database: {}\n"])
    func databaseRequired(yaml: String) {
        expectIssue(issues(yaml), at: "database.url", containing: "is required")
    }

    @Test("database.url must be a PostgreSQL connection string")
    func databaseScheme() {
        expectIssue(issues("database:\n  url: mysql://root@db/x\n"), at: "database.url", containing: "postgresql://")
        expectIssue(issues("database:\n  url: just-a-name\n"), at: "database.url", containing: "keyword=value")
        #expect(throws: Never.self) { try parse("database:\n  url: host=127.0.0.1 dbname=auditgate\n") }
        #expect(throws: Never.self) { try parse("database:\n  url: postgres://w@h/d\n") }
    }

    // MARK: upstreams

    @Test(
        "base_url must be an absolute http(s) URL without query or fragment",
        arguments: [
            ("api.anthropic.com", "not an absolute URL"),
            ("ftp://api.anthropic.com", "not http or https"),
            ("https://api.anthropic.com?x=1", "query or fragment"),
            ("https://api.anthropic.com#top", "query or fragment"),
            ("https://", "no host"),
        ]
    )
    func baseURL(value: String, reason: String) {
        expectIssue(
            issues(withDatabase("upstreams:\n  anthropic:\n    base_url: \"\(value)\"\n")),
            at: "upstreams.anthropic.base_url", containing: "absolute http(s) URL", reason
        )
    }

    @Test("A plain-http base_url to another machine is a warning")
    func plainHTTPWarning() throws {
        let configuration = try parse(withDatabase("upstreams:\n  openai:\n    base_url: http://llm.corp.example\n"))
        #expect(configuration.warnings.contains { $0.path == "upstreams.openai.base_url" && $0.message.contains("unencrypted") })
    }

    @Test("An upstream without api_key is a warning")
    func missingAPIKeyWarning() throws {
        let configuration = try parse(withDatabase("upstreams:\n  anthropic:\n    api_key: ${ANTHROPIC_API_KEY}\n"))
        let warning = configuration.warnings.first { $0.path == "upstreams.anthropic.api_key" }
        #expect(warning?.message.contains("calls to this provider will be forwarded without a provider key") == true)
        #expect(warning?.message.contains("ANTHROPIC_API_KEY is not set") == true)
        #expect(configuration.warnings.contains { $0.path == "upstreams.openai.api_key" })
    }

    @Test("An api_key with whitespace (a trailing newline) is refused")
    func apiKeyWhitespace() {
        let found = issues(withDatabase("upstreams:\n  openai:\n    api_key: ${K}\n"), env: ["K": "sk-abc\n"])
        expectIssue(found, at: "upstreams.openai.api_key", containing: "whitespace")
    }

    // MARK: egress

    @Test("egress.ca_file must be a readable file")
    func caFile() throws {
        expectIssue(
            issues(withDatabase("egress:\n  ca_file: /nonexistent/root.pem\n")),
            at: "egress.ca_file", containing: "cannot read CA file /nonexistent/root.pem"
        )
        expectIssue(issues(withDatabase("egress:\n  ca_file: /tmp\n")), at: "egress.ca_file", containing: "directory")
        let path = try temporaryFile("-----BEGIN CERTIFICATE-----\n", suffix: ".pem")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try parse(withDatabase("egress:\n  ca_file: \(path)\n")).egress.caFile == path)
    }

    // MARK: auth

    @Test("key_sha256 must be exactly 64 hex characters", arguments: [
        String(repeating: "a", count: 63), String(repeating: "a", count: 65), String(repeating: "g", count: 64),
    ])
    func keyHashShape(value: String) {
        let found = issues(withDatabase("auth:\n  keys:\n    - {key_sha256: \"\(value)\", user: u, team: t}\n"))
        expectIssue(found, at: "auth.keys[0].key_sha256", containing: "must be exactly", "64 hex")
    }

    @Test("key_sha256 is required")
    func keyHashRequired() {
        expectIssue(issues(withDatabase("auth:\n  keys:\n    - {user: u, team: t}\n")), at: "auth.keys[0].key_sha256", containing: "required")
    }

    @Test("A client key pasted as key_sha256 is refused without being repeated")
    func clientKeyPasted() {
        let key = ClientKeyGenerator.generate()
        let found = issues(withDatabase("auth:\n  keys:\n    - {key_sha256: \"\(key)\", user: u, team: t}\n"))
        expectIssue(found, at: "auth.keys[0].key_sha256", containing: "client key itself")
        #expect(!found.description.contains(key))
        #expect(!found.description.contains(String(key.dropFirst(4).prefix(16))))
    }

    @Test("key_sha256 is case-insensitive and stored lower-cased")
    func keyHashCase() throws {
        let upper = hashA.uppercased()
        let configuration = try parse(withDatabase("auth:\n  keys:\n    - {key_sha256: \"\(upper)\", user: u, team: t}\n"))
        #expect(configuration.auth.keys.first?.keySHA256 == hashA)
    }

    @Test("Duplicate key_sha256 values are refused, whatever their case")
    func duplicateClientKeys() {
        let found = issues(withDatabase("""
            auth:
              keys:
                - {key_sha256: "\(hashA)", user: alice, team: risk}
                - {key_sha256: "\(hashB)", user: bob, team: risk}
                - {key_sha256: "\(hashA.uppercased())", user: carol, team: ops}
            """))
        expectIssue(found, at: "auth.keys[2].key_sha256", containing: "same as auth.keys[0].key_sha256")
        #expect(found.count == 1)
    }

    @Test("user and team are required and not blank")
    func userAndTeam() {
        let found = issues(withDatabase("""
            auth:
              keys:
                - {key_sha256: "\(hashA)", team: t}
                - {key_sha256: "\(hashB)", user: "", team: "   "}
            """))
        expectIssue(found, at: "auth.keys[0].user", containing: "required")
        expectIssue(found, at: "auth.keys[1].user", containing: "required")
        expectIssue(found, at: "auth.keys[1].team", containing: "must not be blank")
        #expect(found.count == 3)
    }

    @Test("An empty key list is a warning unless auth is off")
    func emptyKeysWarning() throws {
        #expect(try parse(minimalYAML).warnings.contains { $0.path == "auth.keys" && $0.message.contains("401") })
        #expect(try !parse(withDatabase("auth:\n  mode: off\n")).warnings.contains { $0.path == "auth.keys" })
    }

    @Test("Key lookup by credential and the key id")
    func keyLookup() throws {
        let key = "agk_" + String(repeating: "0", count: 64)
        let digest = ClientKeyGenerator.sha256(of: key)
        let configuration = try parse(withDatabase("auth:\n  keys:\n    - {key_sha256: \"\(digest)\", user: alice, team: risk}\n"))
        let found = configuration.auth.clientKey(forCredential: key)
        #expect(found?.user == "alice")
        #expect(found?.team == "risk")
        #expect(found?.keyID == String(digest.prefix(12)))
        #expect(found?.keyID.count == 12)
        #expect(configuration.auth.clientKey(forCredential: key + "x") == nil)
        #expect(configuration.auth.clientKey(forSHA256: digest.uppercased()) == found)
    }

    // MARK: exposure

    @Test("auth.mode off on a non-loopback host is refused", arguments: ["0.0.0.0", "::", "192.168.1.10", "gateway.corp", "127.0.0.1.nip.io"])
    func authOffExposed(host: String) {
        let found = issues(withDatabase("server:\n  host: \"\(host)\"\nauth:\n  mode: off\n"))
        expectIssue(
            found, at: "server.host",
            containing: "auth.mode is off: the gateway would accept anyone on the network; bind server.host to 127.0.0.1 or turn auth on"
        )
    }

    @Test("auth.mode off on loopback is a warning", arguments: ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost", "::ffff:127.0.0.1"])
    func authOffLoopback(host: String) throws {
        let configuration = try parse(withDatabase("server:\n  host: \"\(host)\"\nauth:\n  mode: off\n"))
        #expect(configuration.auth.mode == .off)
        #expect(configuration.warnings.contains { $0.path == "auth.mode" && $0.message.contains("is off") })
    }

    @Test("0.0.0.0 with auth on is fine")
    func openHostWithAuth() throws {
        #expect(try parse(withDatabase("server:\n  host: 0.0.0.0\n")).server.host == "0.0.0.0")
    }

    // MARK: audit

    @Test("audit.spool_max_bytes must exceed 1 MiB")
    func spoolMaxBytes() throws {
        expectIssue(issues(withDatabase("audit:\n  spool_max_bytes: 1048576\n")), at: "audit.spool_max_bytes", containing: "greater than 1048576")
        #expect(try parse(withDatabase("audit:\n  spool_max_bytes: 1048577\n")).audit.spoolMaxBytes == 1_048_577)
    }

    @Test("audit.chain_id must be a plain name", arguments: ["gw 1", "gw/1", String(repeating: "x", count: 129)])
    func chainID(value: String) {
        expectIssue(issues(withDatabase("audit:\n  chain_id: \"\(value)\"\n")), at: "audit.chain_id", containing: "1 to 128")
    }

    // MARK: redaction

    @Test("Unknown redaction pattern names are refused")
    func unknownPattern() {
        expectIssue(
            issues(withDatabase("redaction:\n  patterns: [email, emial]\n")),
            at: "redaction.patterns[1]", containing: "unknown pattern 'emial'", "email, phone, card, kr_rrn, us_ssn, secret"
        )
    }

    @Test("A custom regex must compile")
    func customRegexCompiles() {
        expectIssue(
            issues(withDatabase("redaction:\n  custom:\n    - {name: broken, regex: \"EMP-([0-9\"}\n")),
            at: "redaction.custom[0].regex", containing: "not a valid regular expression"
        )
    }

    @Test("A custom regex must not match the empty string")
    func customRegexNotEmpty() {
        expectIssue(
            issues(withDatabase("redaction:\n  custom:\n    - {name: stars, regex: \"x*\"}\n")),
            at: "redaction.custom[0].regex", containing: "matches the empty string"
        )
    }

    @Test("Custom names are unique identifiers, and not built-in names")
    func customNames() {
        let found = issues(withDatabase("""
            redaction:
              custom:
                - {name: employee_id, regex: "EMP-[0-9]{6}"}
                - {name: employee_id, regex: "E[0-9]{4}"}
                - {name: employee-id, regex: "X[0-9]"}
                - {name: 9lives, regex: "Y[0-9]"}
                - {name: email, regex: "Z[0-9]"}
                - {regex: "W[0-9]"}
            """))
        expectIssue(found, at: "redaction.custom[1].name", containing: "already the name of redaction.custom[0]")
        expectIssue(found, at: "redaction.custom[2].name", containing: "must be an identifier")
        expectIssue(found, at: "redaction.custom[3].name", containing: "must be an identifier")
        expectIssue(found, at: "redaction.custom[4].name", containing: "built-in pattern")
        expectIssue(found, at: "redaction.custom[5].name", containing: "required")
        #expect(found.count == 5)
    }
}
