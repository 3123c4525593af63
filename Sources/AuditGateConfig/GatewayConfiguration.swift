import AuditCore
import Foundation

/// The gateway's configuration, as read from `config/auditgate.yaml` by `ConfigurationLoader`.
///
/// Every value here has been validated: a `GatewayConfiguration` that exists can be served.
/// The defaults, and why they were chosen, are documented where each key is read
/// (`ConfigurationLoader+Sections.swift`); the memberwise initialisers use the same values so that
/// tests and tools that build a configuration in code get what an empty section would give.
public struct GatewayConfiguration: Sendable, Equatable {
    public var server: Server
    public var database: Database
    public var upstreams: Upstreams
    public var egress: Egress
    public var auth: Auth
    public var audit: Audit
    public var redaction: Redaction
    /// Things that are allowed but probably not meant (an upstream with no provider key,
    /// authentication off). `auditgate check-config` prints them; `serve` should log them.
    public var warnings: [ConfigurationIssue]

    public init(
        server: Server = Server(),
        database: Database,
        upstreams: Upstreams = Upstreams(),
        egress: Egress = Egress(),
        auth: Auth = Auth(),
        audit: Audit,
        redaction: Redaction = Redaction(),
        warnings: [ConfigurationIssue] = []
    ) {
        self.server = server
        self.database = database
        self.upstreams = upstreams
        self.egress = egress
        self.auth = auth
        self.audit = audit
        self.redaction = redaction
        self.warnings = warnings
    }

    // MARK: server

    /// `server`: where the gateway listens.
    public struct Server: Sendable, Equatable {
        public static let defaultHost = "127.0.0.1"
        public static let defaultPort = 8045
        public static let defaultMaxBodyBytes = 33_554_432

        /// The address to bind: an IP address or a host name (`0.0.0.0` / `::` for every interface).
        public var host: String
        /// 1...65535.
        public var port: Int
        /// The largest request body accepted, in bytes (larger: 413). Always > 0.
        public var maxBodyBytes: Int
        /// Peers (load balancers, ingress proxies) whose `X-Forwarded-For` / `Forwarded` is believed
        /// for `client_ip`; from anyone else those headers are dropped. Default none.
        public var trustedProxies: [CIDR]
        /// Client connections open at once, at most; past it a request gets 503 (with `retry-after`).
        public var maxConnections: Int
        /// Request-body bytes held in memory across all connections at once, at most; past it a request
        /// gets 503. Bounds what concurrent uploads can take, whatever `max_body_bytes` allows each.
        public var maxInflightRequestBytes: Int

        /// A client connection with no call in flight that sends nothing for this long is closed; the
        /// full time starts again after every answer.
        public var idleTimeoutSeconds: Int
        public static let defaultIdleTimeoutSeconds = 75

        public static let defaultMaxConnections = 10_000
        public static let defaultMaxInflightRequestBytes = 512 << 20

        public init(
            host: String = Server.defaultHost,
            port: Int = Server.defaultPort,
            maxBodyBytes: Int = Server.defaultMaxBodyBytes,
            trustedProxies: [CIDR] = [],
            maxConnections: Int = Server.defaultMaxConnections,
            maxInflightRequestBytes: Int = Server.defaultMaxInflightRequestBytes,
            idleTimeoutSeconds: Int = Server.defaultIdleTimeoutSeconds
        ) {
            self.idleTimeoutSeconds = idleTimeoutSeconds
            self.host = host
            self.port = port
            self.maxBodyBytes = maxBodyBytes
            self.trustedProxies = trustedProxies
            self.maxConnections = maxConnections
            self.maxInflightRequestBytes = maxInflightRequestBytes
        }

        /// True when `address` is one of `trustedProxies`.
        public func isTrustedProxy(_ address: String?) -> Bool {
            guard let address, !trustedProxies.isEmpty else { return false }
            return trustedProxies.contains { $0.contains(address) }
        }

        /// True when `host` can only be reached from this machine (127.0.0.0/8, ::1, localhost).
        public var isLoopback: Bool { NetworkAddress.isLoopback(host) }
    }

    // MARK: database

    /// `database`: the audit store the gateway writes to.
    public struct Database: Sendable, Equatable {
        /// A libpq URI (`postgresql://auditgate_writer@127.0.0.1:5432/auditgate`) or keyword/value
        /// connection string. May hold a password (from the environment): never log it.
        public var url: String

        public init(url: String) {
            self.url = url
        }
    }

    // MARK: upstreams

    /// `upstreams`: the providers calls are forwarded to.
    public struct Upstreams: Sendable, Equatable {
        public var anthropic: Upstream
        public var openai: Upstream
        /// Longest wait for a provider's response head once the request is sent (504 past it). The
        /// connection and its TLS handshake have timeouts of their own, and the idle timeout does not
        /// apply before the head: none caps another.
        public var firstByteTimeoutSeconds: Int
        /// Longest silence between two chunks of an answer once its head has come (the call ends as
        /// `upstream_error`), and longest time an unused connection stays in the pool.
        public var idleTimeoutSeconds: Int
        /// Longest wait for the TCP connection (to the provider, or to the egress proxy and its
        /// CONNECT tunnel): 502 past it.
        public var connectTimeoutSeconds: Int
        /// Longest wait for the TLS handshake with an https provider: 502 past it.
        public var tlsTimeoutSeconds: Int
        /// After the client left an answer, how long the provider's is still read (for the record's
        /// usage) before the connection is closed.
        public var drainTimeoutSeconds: Int

        public static let defaultFirstByteTimeoutSeconds = 600
        public static let defaultIdleTimeoutSeconds = 300
        public static let defaultConnectTimeoutSeconds = 10
        public static let defaultTLSTimeoutSeconds = 10
        public static let defaultDrainTimeoutSeconds = 30

        public init(
            anthropic: Upstream = Upstream(baseURL: Upstream.defaultAnthropicBaseURL),
            openai: Upstream = Upstream(baseURL: Upstream.defaultOpenAIBaseURL),
            firstByteTimeoutSeconds: Int = defaultFirstByteTimeoutSeconds,
            idleTimeoutSeconds: Int = defaultIdleTimeoutSeconds,
            connectTimeoutSeconds: Int = defaultConnectTimeoutSeconds,
            tlsTimeoutSeconds: Int = defaultTLSTimeoutSeconds,
            drainTimeoutSeconds: Int = defaultDrainTimeoutSeconds
        ) {
            self.anthropic = anthropic
            self.openai = openai
            self.firstByteTimeoutSeconds = firstByteTimeoutSeconds
            self.idleTimeoutSeconds = idleTimeoutSeconds
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.tlsTimeoutSeconds = tlsTimeoutSeconds
            self.drainTimeoutSeconds = drainTimeoutSeconds
        }
    }

    /// One provider: its origin, and the organisation's key sent in place of the caller's credential.
    public struct Upstream: Sendable, Equatable {
        public static let defaultAnthropicBaseURL = URL(string: "https://api.anthropic.com")!
        public static let defaultOpenAIBaseURL = URL(string: "https://api.openai.com")!

        /// An absolute http(s) URL with no query or fragment, and no trailing slash: the gateway
        /// appends the call's own path (`/v1/...`) to it, keeping any path prefix written here.
        public var baseURL: URL
        /// The provider key. nil: calls are forwarded without one (a warning says so). A secret.
        public var apiKey: String?

        public init(baseURL: URL, apiKey: String? = nil) {
            self.baseURL = baseURL
            self.apiKey = apiKey
        }
    }

    // MARK: egress

    /// `egress`: how the gateway reaches the providers from inside a corporate network.
    public struct Egress: Sendable, Equatable {
        /// The proxy for calls to the providers. nil: the `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`
        /// environment applies. May carry proxy credentials: never log it.
        public var proxy: String?
        /// A PEM file of extra trusted roots (a TLS-inspecting proxy's). nil: the system's roots.
        public var caFile: String?

        public init(proxy: String? = nil, caFile: String? = nil) {
            self.proxy = proxy
            self.caFile = caFile
        }
    }

    // MARK: auth

    /// `auth`: who may call the gateway.
    public struct Auth: Sendable, Equatable {
        public enum Mode: String, Sendable, Equatable, CaseIterable {
            /// Every path needs a client key, `/healthz` included.
            case strict
            /// Every path but `/healthz` needs a client key, so load balancers can probe it.
            case allExceptHealth = "all_except_health"
            /// No client key is asked for. Refused unless `server.host` is a loopback address.
            case off
        }

        public var mode: Mode
        /// Distinct `keySHA256` values, in the order of the file.
        public var keys: [ClientKey] {
            didSet { index = Self.index(keys) }
        }
        private var index: [String: Int]

        public init(mode: Mode = .strict, keys: [ClientKey] = []) {
            self.mode = mode
            self.keys = keys
            self.index = Self.index(keys)
        }

        /// The key whose SHA-256 is that of `credential` (the client key as presented), or nil.
        /// Only hashes are compared, so the time taken tells nothing useful about the keys.
        public func clientKey(forCredential credential: String) -> ClientKey? {
            clientKey(forSHA256: SHA256.hash(credential).hexString)
        }

        /// The key with this hex SHA-256 (either case), or nil.
        public func clientKey(forSHA256 digest: String) -> ClientKey? {
            index[digest.lowercased()].map { keys[$0] }
        }

        private static func index(_ keys: [ClientKey]) -> [String: Int] {
            var index = [String: Int]()
            for (offset, key) in keys.enumerated() where index[key.keySHA256] == nil {
                index[key.keySHA256] = offset
            }
            return index
        }

        public static func == (lhs: Auth, rhs: Auth) -> Bool {
            lhs.mode == rhs.mode && lhs.keys == rhs.keys
        }
    }

    /// A client key, known only by its SHA-256: the file never holds a key itself.
    public struct ClientKey: Sendable, Equatable, Hashable {
        /// 64 lower-case hex characters.
        public var keySHA256: String
        public var user: String
        public var team: String

        /// The key id stored in audit rows (`key_id`): the first 12 hex characters of the SHA-256.
        /// Enough to tell a user's keys apart and to find the stanza in the file, too little to
        /// help anyone guess the key (it is a prefix of a hash of 32 random bytes).
        public var keyID: String { String(keySHA256.prefix(12)) }

        /// `keySHA256` is stored lower-cased.
        public init(keySHA256: String, user: String, team: String) {
            self.keySHA256 = keySHA256.lowercased()
            self.user = user
            self.team = team
        }
    }

    // MARK: audit

    /// `audit`: how records are made durable and what they keep.
    public struct Audit: Sendable, Equatable {
        public static let defaultSpoolDir = "/var/lib/auditgate/spool"
        public static let defaultSpoolMaxBytes = 1_073_741_824
        /// `spool_max_bytes` must be larger than this: a smaller spool could not hold one
        /// maximal record plus its framing, and would reject calls at once.
        public static let minimumSpoolMaxBytes = 1_048_576

        public enum Durability: String, Sendable, Equatable, CaseIterable {
            /// A record is on local disk (fsynced) before the call goes on to the provider.
            case spool
            /// Records are queued in memory and written in the background; a crash can lose some.
            case async
        }

        public enum StoreFailurePolicy: String, Sendable, Equatable, CaseIterable {
            /// Answer 503 when no record can be made durable: nothing unaudited gets through.
            case reject
            /// Forward the call all the same (and count what could not be recorded).
            case `continue`
        }

        public enum BodyPolicy: String, Sendable, Equatable, CaseIterable {
            /// Bodies as sent and received.
            case full
            /// Bodies with the `redaction` patterns replaced.
            case redacted
            /// Only the SHA-256 of each body.
            case hashed
            /// No bodies.
            case none
        }

        /// One hash chain per gateway instance.
        public var chainID: String
        public var durability: Durability
        public var spoolDir: String
        public var onStoreFailure: StoreFailurePolicy
        public var bodies: BodyPolicy
        /// The most the spool may hold, in bytes, before new calls are refused (or, with
        /// `on_store_failure: continue`, go unrecorded). Always > 1 MiB.
        public var spoolMaxBytes: Int
        /// A shipper with records waiting that has not moved for this long makes `/readyz` answer 503.
        public var shipperStallSeconds: Int
        public static let defaultShipperStallSeconds = 30

        public init(
            chainID: String,
            durability: Durability = .spool,
            spoolDir: String = Audit.defaultSpoolDir,
            onStoreFailure: StoreFailurePolicy = .reject,
            bodies: BodyPolicy = .redacted,
            spoolMaxBytes: Int = Audit.defaultSpoolMaxBytes,
            shipperStallSeconds: Int = Audit.defaultShipperStallSeconds
        ) {
            self.shipperStallSeconds = shipperStallSeconds
            self.chainID = chainID
            self.durability = durability
            self.spoolDir = spoolDir
            self.onStoreFailure = onStoreFailure
            self.bodies = bodies
            self.spoolMaxBytes = spoolMaxBytes
        }
    }

    // MARK: redaction

    /// `redaction`: what `audit.bodies: redacted` removes from bodies before they are stored.
    public struct Redaction: Sendable, Equatable {
        /// The built-in patterns, by the names the file uses.
        public enum Pattern: String, Sendable, Equatable, CaseIterable {
            case email
            case phone
            case card
            /// Korean resident registration number.
            case krRRN = "kr_rrn"
            /// US social security number.
            case usSSN = "us_ssn"
            /// API keys, tokens and other credentials.
            case secret
        }

        /// An operator's own pattern.
        public struct CustomPattern: Sendable, Equatable, Hashable {
            /// An identifier (`[A-Za-z_][A-Za-z0-9_]*`), unique, and not a built-in pattern's name:
            /// it labels what was redacted in audit rows.
            public var name: String
            /// An `NSRegularExpression` pattern, known to compile and not to match the empty string.
            public var regex: String

            public init(name: String, regex: String) {
                self.name = name
                self.regex = regex
            }
        }

        /// Distinct, in the order of the file.
        public var patterns: [Pattern]
        public var custom: [CustomPattern]

        public init(patterns: [Pattern] = Pattern.allCases, custom: [CustomPattern] = []) {
            self.patterns = patterns
            self.custom = custom
        }
    }
}
