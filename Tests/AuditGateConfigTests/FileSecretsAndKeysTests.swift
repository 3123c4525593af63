import Foundation
import Testing

@testable import AuditGateConfig

@Suite("Files")
struct FileTests {
    @Test("The repository's example configuration passes validation")
    func exampleFile() throws {
        let path = repositoryRoot.appendingPathComponent("config/auditgate.yaml").path
        let environment = ["ANTHROPIC_API_KEY": "sk-ant-example", "OPENAI_API_KEY": "sk-example"]
        let configuration = try ConfigurationLoader.load(path: path, environment: environment)
        #expect(configuration.database.url == "postgresql://auditgate_writer@127.0.0.1:5432/auditgate")
        #expect(configuration.audit.chainID == "gw-1")
        #expect(configuration.audit.spoolDir == "/var/lib/auditgate/spool")
        #expect(configuration.upstreams.anthropic.apiKey == "sk-ant-example")
        #expect(configuration.upstreams.openai.apiKey == "sk-example")
        #expect(configuration.egress.proxy == nil)
        #expect(configuration.auth.mode == .strict)
        #expect(configuration.redaction.patterns.count == 6)
        #expect(configuration.redaction.custom == [.init(name: "employee_id", regex: "EMP-[0-9]{6}")])
        #expect(configuration.server == GatewayConfiguration.Server())
        // Without the provider keys in the environment it still loads, with warnings.
        let bare = try ConfigurationLoader.load(path: path, environment: [:])
        #expect(bare.warnings.filter { $0.path.hasSuffix(".api_key") }.count == 2)
    }

    @Test("A missing file is reported with its path")
    func missingFile() {
        #expect {
            try ConfigurationLoader.load(path: "/nonexistent/auditgate.yaml", environment: [:])
        } throws: { error in
            let issues = (error as? ConfigurationError)?.issues ?? []
            return issues.count == 1 && issues[0].message.hasPrefix("cannot read config file /nonexistent/auditgate.yaml: ")
        }
    }

    @Test("A directory is not a config file")
    func directory() {
        #expect {
            try ConfigurationLoader.load(path: "/tmp", environment: [:])
        } throws: { error in
            (error as? ConfigurationError)?.description.hasPrefix("cannot read config file /tmp: ") == true
        }
    }

    @Test("A file on disk is read and parsed")
    func fileOnDisk() throws {
        let path = try temporaryFile(withDatabase("server:\n  port: 9001\n"))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try ConfigurationLoader.load(path: path, environment: [:]).server.port == 9001)
    }

    @Test("A file that is not UTF-8 is refused")
    func notUTF8() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("auditgate-\(UUID().uuidString).yaml").path
        _ = FileManager.default.createFile(atPath: path, contents: Data([0x73, 0x3a, 0x20, 0xff, 0xfe, 0x0a]))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.load(path: path, environment: [:]) }
    }
}

@Suite("Secrets")
struct SecretTests {
    static let anthropicKey = "sk-ant-api03-SECRETVALUE-aaaa"
    static let openAIKey = "sk-proj-SECRETVALUE-bbbb"
    static let password = "Pa55w0rd-SECRET"

    /// A file with as many problems as possible around secret-holding values.
    static let brokenYAML = """
        database:
          url: mysql://writer:${DB_PASSWORD}@db/x
        upstreams:
          anthropic:
            base_url: ${ANTHROPIC_BASE}
            api_key: ${ANTHROPIC_API_KEY}
            apikey: ${ANTHROPIC_API_KEY}
          openai:
            base_url: "https://user:${DB_PASSWORD}@api.openai.com?x=1"
            api_key: ${OPENAI_API_KEY}
        egress:
          proxy: ${PROXY}
        server:
          port: ${OPENAI_API_KEY}
        """

    static let environment = [
        "ANTHROPIC_API_KEY": anthropicKey + "\n",  // a trailing newline: refused
        "OPENAI_API_KEY": openAIKey,
        "DB_PASSWORD": password,
        "ANTHROPIC_BASE": "not a url \(anthropicKey)",
        "PROXY": "http://u:\(password)@proxy:3128",
    ]

    @Test("No issue quotes an api_key, a password or a URL")
    func noSecretsInIssues() {
        let found = issues(Self.brokenYAML, env: Self.environment)
        #expect(found.count >= 4)
        let text = found.description
        #expect(!text.contains(Self.anthropicKey))
        #expect(!text.contains("SECRETVALUE-aaaa"))
        #expect(!text.contains(Self.password))
        #expect(found.contains { $0.path == "database.url" })
        #expect(found.contains { $0.path == "upstreams.anthropic.base_url" })
        #expect(found.contains { $0.path == "upstreams.openai.base_url" })
        #expect(found.contains { $0.path == "upstreams.anthropic.api_key" })
    }

    @Test("A key pasted inside ${...} is not repeated")
    func keyInsideBraces() {
        let found = issues(withDatabase("upstreams:\n  openai:\n    api_key: ${\(Self.openAIKey)}\n"))
        expectIssue(found, at: "upstreams.openai.api_key", containing: "not an environment variable name")
        #expect(!found.description.contains("SECRETVALUE"))
    }

    @Test("No warning quotes an api_key or a password")
    func noSecretsInWarnings() throws {
        let configuration = try parse("""
            database:
              url: postgresql://writer:\(Self.password)@db/auditgate
            upstreams:
              anthropic:
                api_key: \(Self.anthropicKey)
            """)
        #expect(configuration.upstreams.anthropic.apiKey == Self.anthropicKey)
        let text = configuration.warnings.map(\.description).joined(separator: "\n")
        #expect(configuration.warnings.contains { $0.path == "upstreams.anthropic.api_key" && $0.message.contains("written in the file") })
        #expect(configuration.warnings.contains { $0.path == "database.url" && $0.message.contains("password written in the file") })
        #expect(!text.contains(Self.anthropicKey))
        #expect(!text.contains(Self.password))
    }

    @Test("A wrong number is quoted, which is why api_key and url never go through the number rule")
    func numberRuleQuotesValue() {
        // Numbers are quoted when wrong: this is why the rule is never applied to api_key or url.
        expectIssue(issues(withDatabase("server:\n  port: abc\n")), at: "server.port", containing: "'abc'")
    }

    @Test("Literal passwords are detected in both connection string forms")
    func literalPasswordDetection() {
        #expect(ConfigurationLoader.hasLiteralPassword("postgresql://w:pw@h/d"))
        #expect(!ConfigurationLoader.hasLiteralPassword("postgresql://w@h/d"))
        #expect(!ConfigurationLoader.hasLiteralPassword("postgresql://w:${P}@h/d"))
        #expect(ConfigurationLoader.hasLiteralPassword("host=h password=pw dbname=d"))
        #expect(!ConfigurationLoader.hasLiteralPassword("host=h dbname=d"))
    }
}

@Suite("Client keys")
struct ClientKeyTests {
    @Test("A new key is agk_ and 64 lower-case hex characters, different each time")
    func keyShape() {
        let key = ClientKeyGenerator.generate()
        #expect(key.hasPrefix("agk_"))
        let hex = key.dropFirst(4)
        #expect(hex.count == 64)
        #expect(hex.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) })
        #expect(ClientKeyGenerator.generate() != key)
    }

    @Test("The stanza holds only the key's SHA-256, user and team, and pastes into a valid config")
    func stanzaRoundTrip() throws {
        let key = ClientKeyGenerator.generate()
        let user = "o'brien: \"the\" #1"
        let stanza = ClientKeyGenerator.configurationStanza(forKey: key, user: user, team: "risk")
        #expect(!stanza.contains(key))
        #expect(!stanza.contains(String(key.dropFirst(4))))
        let configuration = try parse(withDatabase("auth:\n  mode: strict\n  keys:\n" + stanza + "\n"))
        let entry = try #require(configuration.auth.keys.first)
        #expect(entry.keySHA256 == ClientKeyGenerator.sha256(of: key))
        #expect(entry.user == user)
        #expect(entry.team == "risk")
        #expect(configuration.auth.clientKey(forCredential: key) == entry)
        // Only these three keys, one per line.
        let keys = stanza.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .map { $0.hasPrefix("- ") ? String($0.dropFirst(2)) : $0 }
            .map { String($0.prefix { $0 != ":" }) }
        #expect(keys == ["key_sha256", "user", "team"])
    }

    @Test("The SHA-256 is the standard one, in lower-case hex")
    func sha256Vector() {
        #expect(ClientKeyGenerator.sha256(of: "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("A seeded generator gives a reproducible key")
    func seeded() {
        struct Counter: RandomNumberGenerator {
            var state: UInt64 = 0
            mutating func next() -> UInt64 {
                state += 1
                return state
            }
        }
        var a = Counter()
        var b = Counter()
        #expect(ClientKeyGenerator.generate(using: &a) == ClientKeyGenerator.generate(using: &b))
    }
}
