import Foundation
import Testing

@testable import AuditGateConfig

@Suite("Defaults")
struct DefaultsTests {
    @Test("A file with only database.url gets every documented default")
    func minimalFileDefaults() throws {
        let configuration = try parse(minimalYAML)
        #expect(configuration.server.host == "127.0.0.1")
        #expect(configuration.server.port == 8045)
        #expect(configuration.server.maxBodyBytes == 33_554_432)
        #expect(configuration.database.url == "postgresql://auditgate_writer@127.0.0.1:5432/auditgate")
        #expect(configuration.upstreams.anthropic.baseURL.absoluteString == "https://api.anthropic.com")
        #expect(configuration.upstreams.openai.baseURL.absoluteString == "https://api.openai.com")
        #expect(configuration.upstreams.anthropic.apiKey == nil)
        #expect(configuration.upstreams.openai.apiKey == nil)
        #expect(configuration.egress == .init(proxy: nil, caFile: nil))
        #expect(configuration.auth.mode == .strict)
        #expect(configuration.auth.keys.isEmpty)
        #expect(configuration.audit.chainID == "test-host")
        #expect(configuration.audit.durability == .spool)
        #expect(configuration.audit.spoolDir == "/var/lib/auditgate/spool")
        #expect(configuration.audit.onStoreFailure == .reject)
        #expect(configuration.audit.bodies == .redacted)
        #expect(configuration.audit.spoolMaxBytes == 1_073_741_824)
        #expect(configuration.redaction.patterns == [.email, .phone, .card, .krRRN, .usSSN, .secret])
        #expect(configuration.redaction.custom.isEmpty)
    }

    @Test("Empty and null sections take their defaults")
    func nullSections() throws {
        let configuration = try parse(withDatabase("server:\nauth: ~\naudit:\n  bodies: null\nredaction:\n  patterns:\n"))
        #expect(configuration.server == GatewayConfiguration.Server())
        #expect(configuration.auth.mode == .strict)
        #expect(configuration.audit.bodies == .redacted)
        #expect(configuration.redaction.patterns.count == 6)
    }

    @Test("The default chain_id is the machine's host name")
    func defaultChainIDIsHostName() throws {
        let configuration = try ConfigurationLoader.parse(yaml: minimalYAML, environment: [:])
        #expect(configuration.audit.chainID == NetworkAddress.hostName())
        #expect(!configuration.audit.chainID.isEmpty)
    }

    @Test("An unusable host name as default chain_id says where it came from")
    func badHostNameDefault() {
        do {
            _ = try ConfigurationLoader.parse(yaml: minimalYAML, environment: [:], hostName: { "bad host" })
            Issue.record("expected an error")
        } catch {
            expectIssue(error.issues, at: "audit.chain_id", containing: "host name")
        }
    }

    @Test("Every value can be set")
    func everyValueSet() throws {
        let configuration = try parse(withDatabase("""
            server: {host: 0.0.0.0, port: 9000, max_body_bytes: 1_000}
            upstreams:
              anthropic: {base_url: "https://llm.corp.example/anthropic/", api_key: "${A}"}
              openai: {base_url: "http://127.0.0.1:8080", api_key: "${O}"}
            egress: {proxy: "http://proxy.corp:3128"}
            auth: {mode: all_except_health}
            audit:
              chain_id: gw-2
              durability: async
              spool_dir: /tmp/spool
              on_store_failure: continue
              bodies: hashed
              spool_max_bytes: 1048577
            redaction: {patterns: [card, email, card], custom: [{name: emp, regex: "EMP-[0-9]{6}$"}]}
            """), env: ["A": "sk-ant", "O": "sk-oai"])
        #expect(configuration.server == .init(host: "0.0.0.0", port: 9000, maxBodyBytes: 1000))
        // Trailing slash dropped, path prefix kept.
        #expect(configuration.upstreams.anthropic.baseURL.absoluteString == "https://llm.corp.example/anthropic")
        #expect(configuration.upstreams.anthropic.apiKey == "sk-ant")
        #expect(configuration.upstreams.openai.baseURL.absoluteString == "http://127.0.0.1:8080")
        #expect(configuration.egress.proxy == "http://proxy.corp:3128")
        #expect(configuration.auth.mode == .allExceptHealth)
        #expect(configuration.audit == .init(
            chainID: "gw-2", durability: .async, spoolDir: "/tmp/spool",
            onStoreFailure: .continue, bodies: .hashed, spoolMaxBytes: 1_048_577
        ))
        // Listed order, duplicates dropped; `$` without a brace is left alone.
        #expect(configuration.redaction.patterns == [.card, .email])
        #expect(configuration.redaction.custom == [.init(name: "emp", regex: "EMP-[0-9]{6}$")])
        // Plain http to loopback is not worth a warning; keys set, so no upstream warning.
        #expect(configuration.warnings.isEmpty || configuration.warnings.allSatisfy { $0.path == "auth.keys" })
    }

    @Test("An empty redaction.patterns list turns the built-in patterns off")
    func emptyPatternList() throws {
        let configuration = try parse(withDatabase("redaction:\n  patterns: []\n"))
        #expect(configuration.redaction.patterns.isEmpty)
    }
}

@Suite("Environment expansion")
struct EnvironmentTests {
    @Test("${NAME} is replaced, several times in one value")
    func severalVariables() throws {
        let configuration = try parse(
            "database:\n  url: postgresql://${U}:${P}@${H}:5432/auditgate\n",
            env: ["U": "writer", "P": "pw", "H": "db.local"]
        )
        #expect(configuration.database.url == "postgresql://writer:pw@db.local:5432/auditgate")
        // The password came from the environment: no literal-password warning.
        #expect(!configuration.warnings.contains { $0.path == "database.url" })
    }

    @Test("Expansion works in numbers and choices too")
    func numbersAndChoices() throws {
        let configuration = try parse(
            withDatabase("server:\n  port: ${PORT}\nauth:\n  mode: ${MODE}\n"),
            env: ["PORT": "9100", "MODE": "all_except_health"]
        )
        #expect(configuration.server.port == 9100)
        #expect(configuration.auth.mode == .allExceptHealth)
    }

    @Test("A value expanding to the empty string counts as absent")
    func emptyIsAbsent() throws {
        let yaml = withDatabase("server:\n  port: ${PORT}\negress:\n  proxy: ${HTTPS_PROXY}\n")
        let unset = try parse(yaml)
        #expect(unset.egress.proxy == nil)
        #expect(unset.server.port == 8045)
        let empty = try parse(yaml, env: ["HTTPS_PROXY": "", "PORT": ""])
        #expect(empty.egress.proxy == nil)
        let set = try parse(yaml, env: ["HTTPS_PROXY": "http://proxy:3128"])
        #expect(set.egress.proxy == "http://proxy:3128")
    }

    @Test("A required value whose variable is unset names the variable")
    func requiredUnset() {
        let found = issues("database:\n  url: ${DATABASE_URL}\n")
        expectIssue(found, at: "database.url", containing: "required", "DATABASE_URL is not set")
    }

    @Test("An unterminated ${ is an error")
    func unterminated() {
        expectIssue(issues(withDatabase("egress:\n  proxy: ${HTTPS_PROXY\n")), at: "egress.proxy", containing: "closing '}'")
    }

    @Test("${} with something that is not a variable name is an error")
    func invalidName() {
        expectIssue(issues(withDatabase("audit:\n  chain_id: ${1ABC}\n")), at: "audit.chain_id", containing: "not an environment variable name")
    }

    @Test("Expansion unit: literal dollars, adjacent variables, unset list")
    func expansionUnit() throws {
        let result = try EnvironmentExpansion.expand("a$b${X}${Y}-${Z}$", environment: ["X": "1", "Y": "2"]).get()
        #expect(result.value == "a$b12-$")
        #expect(result.unset == ["Z"])
        #expect(result.referencedEnvironment)
        let plain = try EnvironmentExpansion.expand("plain", environment: [:]).get()
        #expect(!plain.referencedEnvironment)
    }
}
