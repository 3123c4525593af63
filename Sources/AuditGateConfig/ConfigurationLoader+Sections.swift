import Foundation
import Yams

/// Section by section: each key is read here, with its default and the reason for it.
extension ConfigurationLoader {
    static let topLevelKeys = ["server", "database", "upstreams", "egress", "auth", "audit", "redaction"]

    /// The whole configuration, or nil when a section was unusable (issues are then recorded).
    static func read(_ root: Node?, reader: NodeReader, hostName: () -> String) -> GatewayConfiguration? {
        guard let top = reader.section(root, at: "", keys: topLevelKeys) else { return nil }
        let server = readServer(top["server"], reader: reader)
        let database = readDatabase(top["database"], reader: reader)
        let upstreams = readUpstreams(top["upstreams"], reader: reader)
        let egress = readEgress(top["egress"], reader: reader)
        let auth = readAuth(top["auth"], reader: reader)
        let audit = readAudit(top["audit"], reader: reader, hostName: hostName)
        let redaction = readRedaction(top["redaction"], reader: reader)
        // Checked whenever both sections could be read, so the refusal is reported alongside
        // any other problem in the file.
        if let server, let auth { checkExposure(server: server, auth: auth, reader: reader) }
        guard let server, let database, let upstreams, let egress, let auth, let audit, let redaction else { return nil }
        return GatewayConfiguration(
            server: server, database: database, upstreams: upstreams, egress: egress,
            auth: auth, audit: audit, redaction: redaction
        )
    }

    // MARK: server

    static func readServer(_ node: Node?, reader: NodeReader) -> GatewayConfiguration.Server? {
        guard
            let section = reader.section(
                node, at: "server",
                keys: [
                    "host", "port", "max_body_bytes", "trusted_proxies", "max_connections", "max_inflight_request_bytes",
                    "idle_timeout_seconds",
                ])
        else { return nil }
        typealias Server = GatewayConfiguration.Server

        /// Default 127.0.0.1: a fresh install is reachable only from this machine until someone
        /// decides, by writing `0.0.0.0`, that the LAN may call it (and then auth must be on).
        let host = reader.string(section, "host", what: "a host name or IP address to listen on") ?? Server.defaultHost

        /// Default 8045: unprivileged (no root needed), and unlikely to clash with common services.
        var port = reader.integer(section, "port", what: "a TCP port number, 1 to 65535") ?? Server.defaultPort
        if !(1...65535).contains(port) {
            reader.fail(section.path("port"), "must be a TCP port number from 1 to 65535; got \(port)")
            port = Server.defaultPort
        }

        /// Default 32 MiB (33554432): the providers' own request limit (Anthropic's Messages API
        /// takes 32 MB), so the gateway never refuses a call the provider would have taken, while a
        /// runaway client still cannot make it buffer gigabytes.
        var maxBodyBytes = reader.integer(section, "max_body_bytes", what: "a number of bytes greater than 0")
            ?? Server.defaultMaxBodyBytes
        if maxBodyBytes <= 0 {
            reader.fail(section.path("max_body_bytes"), "must be a number of bytes greater than 0; got \(maxBodyBytes)")
            maxBodyBytes = Server.defaultMaxBodyBytes
        }

        /// Default none: `X-Forwarded-For` is whatever a client wants it to be, so it is believed only
        /// from the load balancers named here (CIDRs such as 10.0.0.0/8 or single addresses).
        var trustedProxies: [CIDR] = []
        for item in reader.list(section, "trusted_proxies", of: "address ranges such as 10.0.0.0/8") ?? [] {
            guard case .present(let scalar) = reader.scalar(item.node, at: item.path, what: "an address range such as 10.0.0.0/8")
            else { continue }
            guard let range = CIDR(scalar.value) else {
                reader.fail(item.path, "must be an IP address or a range such as 10.0.0.0/8 or fd00::/8; got '\(scalar.value)'")
                continue
            }
            trustedProxies.append(range)
        }

        /// Default 10,000: far above what one gateway on a few cores serves (each held stream is one),
        /// far below the file descriptors a flood of idle connections would otherwise take.
        let maxConnections = reader.positiveInteger(
            section, "max_connections", unit: "connections", default: Server.defaultMaxConnections)

        /// Default 512 MiB: sixteen concurrent uploads of the largest body the providers take; what
        /// many clients can make the gateway hold at once, whatever each may send.
        let maxInflight = reader.positiveInteger(
            section, "max_inflight_request_bytes", unit: "bytes", default: Server.defaultMaxInflightRequestBytes)
        /// Default 75 s, nginx's keepalive_timeout: long enough for an SDK's next call to reuse the
        /// connection, short enough that idle connections do not pile up.
        let idle = reader.positiveInteger(section, "idle_timeout_seconds", unit: "seconds", default: Server.defaultIdleTimeoutSeconds)
        return Server(
            host: host, port: port, maxBodyBytes: maxBodyBytes, trustedProxies: trustedProxies, maxConnections: maxConnections,
            maxInflightRequestBytes: maxInflight, idleTimeoutSeconds: idle)
    }

    // MARK: database

    static func readDatabase(_ node: Node?, reader: NodeReader) -> GatewayConfiguration.Database? {
        guard let section = reader.section(node, at: "database", keys: ["url"]) else { return nil }
        let path = section.path("url")
        let what = "a PostgreSQL connection URI such as postgresql://auditgate_writer@127.0.0.1:5432/auditgate"

        /// No default: which database holds the audit trail is never a guess. Nothing is forwarded
        /// unless it can be recorded, so a gateway without a store would refuse every call.
        switch reader.scalar(section, "url", what: what) {
        case .absent(let unset):
            reader.fail(path, "is required and must not be empty (\(what))\(NodeReader.unsetHint(unset))")
            return nil
        case .invalid:
            return nil
        case .present(let scalar):
            // Never quoted: the URL may carry a password.
            if let problem = connectionStringProblem(scalar.value) {
                reader.fail(path, "\(problem) (expected \(what), or a libpq keyword/value string such as 'host=127.0.0.1 dbname=auditgate')")
                return nil
            }
            if !scalar.fromEnvironment, hasLiteralPassword(scalar.raw) {
                reader.warn(path, "holds a password written in the file; keep it in the environment (PGPASSWORD, a ~/.pgpass file, or ${NAME} in the URL)")
            }
            return GatewayConfiguration.Database(url: scalar.value)
        }
    }

    /// Why a connection string cannot be one, without quoting it; nil when it looks right.
    static func connectionStringProblem(_ text: String) -> String? {
        if let schemeEnd = text.range(of: "://") {
            let scheme = text[..<schemeEnd.lowerBound].lowercased()
            guard scheme == "postgresql" || scheme == "postgres" else {
                return "must use the postgresql:// (or postgres://) scheme"
            }
            return nil
        }
        guard text.contains("=") else { return "is neither a postgresql:// URI nor a keyword=value connection string" }
        return nil
    }

    /// True when the text as written (before `${}` expansion) holds a password itself.
    static func hasLiteralPassword(_ raw: String) -> Bool {
        if let schemeEnd = raw.range(of: "://") {
            let afterScheme = raw[schemeEnd.upperBound...]
            let authority = afterScheme.prefix { $0 != "/" && $0 != "?" }
            guard let at = authority.lastIndex(of: "@") else { return false }
            let userInfo = authority[..<at]
            guard let colon = userInfo.firstIndex(of: ":") else { return false }
            let password = userInfo[userInfo.index(after: colon)...]
            return !password.isEmpty && !password.contains("${")
        }
        // libpq keyword/value form: password=... or password = '...'
        let words = raw.replacingOccurrences(of: " = ", with: "=").split(separator: " ")
        return words.contains { word in
            word.lowercased().hasPrefix("password=") && word.count > "password=".count && !word.contains("${")
        }
    }

    // MARK: upstreams

    static func readUpstreams(_ node: Node?, reader: NodeReader) -> GatewayConfiguration.Upstreams? {
        guard
            let section = reader.section(
                node, at: "upstreams",
                keys: [
                    "anthropic", "openai", "connect_timeout_seconds", "tls_timeout_seconds", "first_byte_timeout_seconds",
                    "idle_timeout_seconds", "drain_timeout_seconds",
                ])
        else { return nil }
        typealias Upstream = GatewayConfiguration.Upstream
        /// Default https://api.anthropic.com: the provider's public origin, what the SDKs use.
        let anthropic = readUpstream(
            section["anthropic"], at: section.path("anthropic"), defaultBaseURL: Upstream.defaultAnthropicBaseURL,
            suggestedVariable: "ANTHROPIC_API_KEY", reader: reader
        )
        /// Default https://api.openai.com: the provider's public origin, what the SDKs use.
        let openai = readUpstream(
            section["openai"], at: section.path("openai"), defaultBaseURL: Upstream.defaultOpenAIBaseURL,
            suggestedVariable: "OPENAI_API_KEY", reader: reader
        )
        /// Default 600 s to the response head: the SDKs' own read timeout, and non-streamed answers
        /// arrive whole, so the head can take minutes.
        var firstByte = reader.integer(section, "first_byte_timeout_seconds", what: "a number of seconds greater than 0")
            ?? GatewayConfiguration.Upstreams.defaultFirstByteTimeoutSeconds
        /// Default 300 s of silence between chunks: a long stream is not a timeout, a silent one is.
        var idle = reader.integer(section, "idle_timeout_seconds", what: "a number of seconds greater than 0")
            ?? GatewayConfiguration.Upstreams.defaultIdleTimeoutSeconds
        if firstByte <= 0 {
            reader.fail(section.path("first_byte_timeout_seconds"), "must be a number of seconds greater than 0; got \(firstByte)")
            firstByte = GatewayConfiguration.Upstreams.defaultFirstByteTimeoutSeconds
        }
        if idle <= 0 {
            reader.fail(section.path("idle_timeout_seconds"), "must be a number of seconds greater than 0; got \(idle)")
            idle = GatewayConfiguration.Upstreams.defaultIdleTimeoutSeconds
        }
        /// Default 10 s each for the TCP connection (to the provider, or to the egress proxy with its
        /// CONNECT tunnel) and for the TLS handshake: a provider that is reachable answers both in
        /// milliseconds, and neither counts against the first-byte or idle timeouts.
        func seconds(_ key: String, _ fallback: Int) -> Int { reader.positiveInteger(section, key, unit: "seconds", default: fallback) }
        let connect = seconds("connect_timeout_seconds", GatewayConfiguration.Upstreams.defaultConnectTimeoutSeconds)
        let tls = seconds("tls_timeout_seconds", GatewayConfiguration.Upstreams.defaultTLSTimeoutSeconds)
        /// Default 30 s: after a client leaves a stream, the provider's answer is read on (so the record
        /// has its usage) for this long at most, then the connection is closed: an endless stream
        /// nobody reads must not be read, and billed, forever.
        let drain = seconds("drain_timeout_seconds", GatewayConfiguration.Upstreams.defaultDrainTimeoutSeconds)
        guard let anthropic, let openai else { return nil }
        return GatewayConfiguration.Upstreams(
            anthropic: anthropic, openai: openai, firstByteTimeoutSeconds: firstByte, idleTimeoutSeconds: idle,
            connectTimeoutSeconds: connect, tlsTimeoutSeconds: tls, drainTimeoutSeconds: drain)
    }

    static func readUpstream(
        _ node: Node?,
        at path: String,
        defaultBaseURL: URL,
        suggestedVariable: String,
        reader: NodeReader
    ) -> GatewayConfiguration.Upstream? {
        guard let section = reader.section(node, at: path, keys: ["base_url", "api_key"]) else { return nil }

        var baseURL = defaultBaseURL
        let urlWhat = "an absolute http(s) URL such as \(defaultBaseURL.absoluteString)"
        if case .present(let scalar) = reader.scalar(section, "base_url", what: urlWhat) {
            switch originURL(scalar.value) {
            case .success(let url):
                baseURL = url
                if url.scheme?.lowercased() == "http", let host = url.host, !NetworkAddress.isLoopback(host) {
                    reader.warn(section.path("base_url"), "is plain http to another machine: the provider key and every prompt would cross the network unencrypted")
                }
            case .failure(let problem):
                // Never quoted: a URL can carry credentials.
                reader.fail(section.path("base_url"), "must be \(urlWhat) (the call's /v1/... path is appended to it); \(problem.reason)")
            }
        }

        /// No default key: without one, calls are forwarded with no provider credential, which
        /// suits a keyless local upstream and otherwise fails at the provider, so it is a warning.
        var apiKey: String?
        switch reader.scalar(section, "api_key", what: "the provider's API key, written as ${\(suggestedVariable)}") {
        case .present(let scalar):
            if scalar.value.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7f }) {
                reader.fail(section.path("api_key"), "contains whitespace or control characters and cannot be sent in an HTTP header (check the variable for a trailing newline)")
            } else {
                apiKey = scalar.value
            }
            if !scalar.fromEnvironment {
                reader.warn(section.path("api_key"), "is written in the file itself; keep provider keys in the environment (api_key: ${\(suggestedVariable)})")
            }
        case .absent(let unset):
            reader.warn(section.path("api_key"), "has no value: calls to this provider will be forwarded without a provider key\(NodeReader.unsetHint(unset))")
        case .invalid:
            break
        }
        return GatewayConfiguration.Upstream(baseURL: baseURL, apiKey: apiKey)
    }

    struct URLProblem: Error {
        var reason: String
    }

    /// An origin the gateway can append `/v1/...` to: absolute http(s), a host, no query or
    /// fragment; trailing slashes dropped so the path joins with exactly one.
    static func originURL(_ text: String) -> Result<URL, URLProblem> {
        var text = text
        while text.hasSuffix("/") { text.removeLast() }
        guard let url = URL(string: text), let scheme = url.scheme else {
            return .failure(URLProblem(reason: "the value is not an absolute URL"))
        }
        guard ["http", "https"].contains(scheme.lowercased()) else {
            return .failure(URLProblem(reason: "its scheme is not http or https"))
        }
        guard let host = url.host, !host.isEmpty else {
            return .failure(URLProblem(reason: "it has no host"))
        }
        guard url.query == nil, url.fragment == nil else {
            return .failure(URLProblem(reason: "it has a query or fragment, which the appended path would break"))
        }
        return .success(url)
    }

    // MARK: egress

    static func readEgress(_ node: Node?, reader: NodeReader) -> GatewayConfiguration.Egress? {
        guard let section = reader.section(node, at: "egress", keys: ["proxy", "ca_file"]) else { return nil }

        /// No default: without a proxy here the usual HTTPS_PROXY / HTTP_PROXY / NO_PROXY
        /// environment applies, as for any other program on the machine. Kept as written (it may
        /// be `host:port` without a scheme, as in HTTPS_PROXY), and never quoted: it may hold
        /// proxy credentials.
        let proxy = reader.string(section, "proxy", what: "a proxy URL such as http://proxy.example.com:3128")

        /// No default: the system's trusted roots, unless a TLS-inspecting proxy needs its own.
        /// Checked now, so a missing file is found by `check-config` and not at the first call.
        var caFile = reader.string(section, "ca_file", what: "the path of a PEM file of trusted root certificates")
        if let path = caFile {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                reader.fail(section.path("ca_file"), "cannot read CA file \(path): no such file")
                caFile = nil
            } else if isDirectory.boolValue {
                reader.fail(section.path("ca_file"), "cannot read CA file \(path): it is a directory, not a PEM file")
                caFile = nil
            } else if !FileManager.default.isReadableFile(atPath: path) {
                reader.fail(section.path("ca_file"), "cannot read CA file \(path): permission denied")
                caFile = nil
            }
        }
        return GatewayConfiguration.Egress(proxy: proxy, caFile: caFile)
    }

    // MARK: auth

    static func readAuth(_ node: Node?, reader: NodeReader) -> GatewayConfiguration.Auth? {
        guard let section = reader.section(node, at: "auth", keys: ["mode", "keys"]) else { return nil }
        typealias Auth = GatewayConfiguration.Auth

        /// Default strict: every path, `/healthz` too, needs a client key. A compliance gateway
        /// that forgot its auth section must fail closed, never open.
        let mode: Auth.Mode = reader.choice(section, "mode") ?? .strict

        /// Default none: keys are made with `auditgate keys new` and pasted here.
        var keys = [GatewayConfiguration.ClientKey]()
        var firstPath = [String: String]()
        for item in reader.list(section, "keys", of: "client keys (key_sha256, user, team)") ?? [] {
            guard let key = readClientKey(item.node, at: item.path, reader: reader) else { continue }
            if let earlier = firstPath[key.keySHA256] {
                reader.fail("\(item.path).key_sha256", "is the same as \(earlier).key_sha256: each client key may be listed only once")
                continue
            }
            firstPath[key.keySHA256] = item.path
            keys.append(key)
        }
        if mode != .off, keys.isEmpty {
            reader.warn(section.path("keys"), "is empty: with auth.mode \(mode.rawValue) every call will be refused with 401 (add keys with `auditgate keys new`)")
        }
        return Auth(mode: mode, keys: keys)
    }

    static func readClientKey(_ node: Node, at path: String, reader: NodeReader) -> GatewayConfiguration.ClientKey? {
        let keyPath = "\(path).key_sha256"
        guard let section = reader.section(node, at: path, keys: ["key_sha256", "user", "team"]) else { return nil }
        if NodeReader.isNull(node) {
            reader.fail(path, "is empty: a client key needs key_sha256, user and team")
            return nil
        }
        let hashWhat = "the 64 hex characters of the client key's SHA-256, as printed by `auditgate keys new`"
        var digest: String?
        // Never quoted: a client key pasted here by mistake would otherwise end up in logs.
        if let value = reader.requiredString(section, "key_sha256", what: hashWhat) {
            if value.hasPrefix("agk_") {
                reader.fail(keyPath, "holds a client key itself, not its SHA-256: put only the SHA-256 here (\(hashWhat)), and treat that key as disclosed")
            } else if value.count != 64 || !value.allSatisfy(\.isHexDigit) {
                let shape = value.allSatisfy(\.isHexDigit) ? "\(value.count) hex characters" : "\(value.count) characters, not all hexadecimal"
                reader.fail(keyPath, "must be exactly \(hashWhat); got \(shape)")
            } else {
                digest = value.lowercased()
            }
        }
        let user = readName(section, "user", reader: reader)
        let team = readName(section, "team", reader: reader)
        guard let digest, let user, let team else { return nil }
        return GatewayConfiguration.ClientKey(keySHA256: digest, user: user, team: team)
    }

    /// A user or team name: required, not blank (it is what the audit rows say about the caller).
    static func readName(_ section: NodeReader.Section, _ key: String, reader: NodeReader) -> String? {
        guard let value = reader.requiredString(section, key, what: "the \(key) this key belongs to, as audit rows will name it")
        else { return nil }
        guard !value.allSatisfy(\.isWhitespace) else {
            reader.fail(section.path(key), "must not be blank")
            return nil
        }
        return value
    }

    /// `auth.mode: off` is refused on an address other machines can reach, and a warning on loopback.
    static func checkExposure(server: GatewayConfiguration.Server, auth: GatewayConfiguration.Auth, reader: NodeReader) {
        guard auth.mode == .off else { return }
        if server.isLoopback {
            reader.warn("auth.mode", "is off: any program on this machine can call the providers with the organisation's keys, and audit rows will name no user or team")
        } else {
            reader.fail("server.host", "auth.mode is off: the gateway would accept anyone on the network; bind server.host to 127.0.0.1 or turn auth on")
        }
    }

    // MARK: audit

    static func readAudit(_ node: Node?, reader: NodeReader, hostName: () -> String) -> GatewayConfiguration.Audit? {
        let keys = ["chain_id", "durability", "spool_dir", "on_store_failure", "bodies", "spool_max_bytes", "shipper_stall_seconds"]
        guard let section = reader.section(node, at: "audit", keys: keys) else { return nil }
        typealias Audit = GatewayConfiguration.Audit

        /// Default: this machine's host name, which gives each gateway instance its own chain
        /// without configuration. Two instances must never share a chain_id: their sequence numbers
        /// would collide. Set it explicitly when host names are not stable (containers).
        let written = reader.string(section, "chain_id", what: "a name for this instance's hash chain")
        var chainID = written ?? hostName()
        if let problem = chainIDProblem(chainID) {
            let origin = written == nil ? " (this machine's host name, used when chain_id is not set: set one)" : ""
            reader.fail(section.path("chain_id"), problem + origin)
            chainID = "invalid"
        }

        /// Default spool: a record is on local disk before the call goes on, so a crash or a
        /// database outage loses nothing. `async` trades that for latency and must be chosen.
        let durability: Audit.Durability = reader.choice(section, "durability") ?? .spool

        /// Default /var/lib/auditgate/spool: the FHS place for a service's persistent state
        /// (the packaged unit creates it, owned by the gateway's user).
        let spoolDir = reader.string(section, "spool_dir", what: "a directory path") ?? Audit.defaultSpoolDir

        /// Default reject: when no record can be made durable, answer 503 rather than let an
        /// unaudited call through; `continue` puts availability before the audit trail.
        let onStoreFailure: Audit.StoreFailurePolicy = reader.choice(section, "on_store_failure") ?? .reject

        /// Default redacted: bodies are kept as evidence, but without the personal data and
        /// secrets that `redaction` names, which most data-protection regimes would not let an
        /// audit log keep.
        let bodies: Audit.BodyPolicy = reader.choice(section, "bodies") ?? .redacted

        /// Default 1 GiB: hours of traffic while the database is away, yet small enough that a
        /// full spool cannot fill the disk of a small VM. Must exceed 1 MiB so one large record
        /// always fits.
        var spoolMaxBytes = reader.integer(section, "spool_max_bytes", what: "a number of bytes greater than 1048576 (1 MiB)")
            ?? Audit.defaultSpoolMaxBytes
        if spoolMaxBytes <= Audit.minimumSpoolMaxBytes {
            reader.fail(section.path("spool_max_bytes"), "must be greater than 1048576 (1 MiB); got \(spoolMaxBytes)")
            spoolMaxBytes = Audit.defaultSpoolMaxBytes
        }
        /// Default 30 s: a store that takes nothing for that long while records wait is a problem to
        /// page someone about (`/readyz` 503), not a hiccup; the spool keeps every record meanwhile.
        let stall = reader.positiveInteger(section, "shipper_stall_seconds", unit: "seconds", default: Audit.defaultShipperStallSeconds)
        return Audit(
            chainID: chainID, durability: durability, spoolDir: spoolDir,
            onStoreFailure: onStoreFailure, bodies: bodies, spoolMaxBytes: spoolMaxBytes, shipperStallSeconds: stall
        )
    }

    /// chain_id is written into every record and every evidence package: 1 to 128 letters,
    /// digits, '.', '_', '-' or ':' (any host name qualifies), so it needs no quoting anywhere.
    static func chainIDProblem(_ chainID: String) -> String? {
        let allowed = chainID.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-_:".unicodeScalars.contains($0))
        }
        guard allowed, (1...128).contains(chainID.count) else {
            return "must be 1 to 128 letters, digits, '.', '_', '-' or ':'; got '\(chainID)'"
        }
        return nil
    }

    // MARK: redaction

    static func readRedaction(_ node: Node?, reader: NodeReader) -> GatewayConfiguration.Redaction? {
        guard let section = reader.section(node, at: "redaction", keys: ["patterns", "custom"]) else { return nil }
        typealias Pattern = GatewayConfiguration.Redaction.Pattern
        let names = Pattern.allCases.map(\.rawValue).joined(separator: ", ")

        /// Default all six built-in patterns: redaction exists to keep personal data and secrets
        /// out of the audit store, so it starts complete and an operator opts out (`patterns: []`).
        var patterns = Pattern.allCases
        if let items = reader.list(section, "patterns", of: "pattern names (\(names))") {
            patterns = []
            for item in items {
                guard case .present(let scalar) = reader.scalar(item.node, at: item.path, what: "a pattern name (\(names))")
                else { continue }
                guard let pattern = Pattern(rawValue: scalar.value) else {
                    reader.fail(item.path, "unknown pattern '\(scalar.value)' (valid patterns: \(names); add others under redaction.custom)")
                    continue
                }
                if !patterns.contains(pattern) { patterns.append(pattern) }
            }
        }

        /// Default none: the organisation's own identifiers (employee ids, project codes).
        var custom = [GatewayConfiguration.Redaction.CustomPattern]()
        var firstPath = [String: String]()
        for item in reader.list(section, "custom", of: "custom patterns (name, regex)") ?? [] {
            guard let entry = reader.section(item.node, at: item.path, keys: ["name", "regex"]) else { continue }
            var name = reader.requiredString(entry, "name", what: "an identifier such as employee_id")
            if let candidate = name {
                if !isIdentifier(candidate) {
                    reader.fail(entry.path("name"), "must be an identifier (letters, digits and '_', not starting with a digit); got '\(candidate)'")
                    name = nil
                } else if Pattern(rawValue: candidate) != nil {
                    reader.fail(entry.path("name"), "'\(candidate)' is a built-in pattern; list it under redaction.patterns or choose another name")
                    name = nil
                } else if let earlier = firstPath[candidate] {
                    reader.fail(entry.path("name"), "'\(candidate)' is already the name of \(earlier); names must be unique")
                    name = nil
                } else {
                    firstPath[candidate] = item.path
                }
            }
            var regex = reader.requiredString(entry, "regex", what: "a regular expression such as \"EMP-[0-9]{6}\"")
            if let pattern = regex {
                if let problem = regexProblem(pattern) {
                    reader.fail(entry.path("regex"), problem)
                    regex = nil
                }
            }
            if let name, let regex { custom.append(.init(name: name, regex: regex)) }
        }
        return GatewayConfiguration.Redaction(patterns: patterns, custom: custom)
    }

    static func isIdentifier(_ name: String) -> Bool {
        EnvironmentExpansion.isVariableName(name)
    }

    /// Why a custom pattern cannot be used, or nil. The regex is quoted: it is not a secret.
    static func regexProblem(_ pattern: String) -> String? {
        let compiled: NSRegularExpression
        do {
            compiled = try NSRegularExpression(pattern: pattern)
        } catch {
            return "'\(pattern)' is not a valid regular expression (NSRegularExpression syntax, as ICU)"
        }
        if compiled.firstMatch(in: "", range: NSRange(location: 0, length: 0)) != nil {
            return "'\(pattern)' matches the empty string, so it would redact between every character; make it match at least one character"
        }
        return nil
    }
}
