import Foundation

/// `manifest.json` of an evidence package: what the package claims, which `manifest.sig` signs.
///
/// It lists every other file with its size, row count and SHA-256, so one signature covers the whole
/// package; it names the previous package's manifest hash, so packages chain like CloudTrail digests.
public struct EvidenceManifest: Codable, Sendable, Equatable {
    public static let formatName = "auditgate-evidence-package/1"

    public var format: String = Self.formatName
    public var generator: Generator
    /// RFC 3339 UTC, milliseconds.
    public var generatedAt: String
    public var period: Period
    public var filters: Filters
    public var csv: CSVRules
    /// Every file of the package except `manifest.json` and `manifest.sig`, in a fixed order.
    public var files: [FileEntry]
    public var counts: Counts
    /// What the integrity check of each chain found (details in `integrity.json`).
    public var chains: [ChainEntry]
    /// Lower-case hex SHA-256 of the previous package's `manifest.json`, when `--previous` was given.
    public var previousManifestSHA256: String?
    /// nil when the package was not signed.
    public var signature: Signature?
    /// For `auditgate-report run NAME`: which definition produced the files (nil for `export`).
    public var report: Report?

    public init(
        generator: Generator, generatedAt: String, period: Period, filters: Filters, csv: CSVRules = CSVRules(),
        files: [FileEntry], counts: Counts, chains: [ChainEntry], previousManifestSHA256: String? = nil,
        signature: Signature? = nil, report: Report? = nil
    ) {
        self.generator = generator
        self.generatedAt = generatedAt
        self.period = period
        self.filters = filters
        self.csv = csv
        self.files = files
        self.counts = counts
        self.chains = chains
        self.previousManifestSHA256 = previousManifestSHA256
        self.signature = signature
        self.report = report
    }

    public struct Report: Codable, Sendable, Equatable {
        public var name: String
        public var title: String
        public var description: String
        /// SHA-256 of the definition's SQL file as run, so the query itself is evidence.
        public var sqlSHA256: String

        public init(name: String, title: String, description: String, sqlSHA256: String) {
            self.name = name
            self.title = title
            self.description = description
            self.sqlSHA256 = sqlSHA256
        }

        enum CodingKeys: String, CodingKey {
            case name, title, description
            case sqlSHA256 = "sql_sha256"
        }
    }

    public struct Generator: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        public init(name: String, version: String) {
            self.name = name
            self.version = version
        }
    }

    public struct Period: Codable, Sendable, Equatable {
        /// `2026-10`, `2026-Q4`, `2026-10-05`, or `custom`.
        public var label: String
        /// Bounds in the chosen zone (RFC 3339 with offset) and in UTC; the interval is `[from, to)`.
        public var from: String
        public var to: String
        public var fromUTC: String
        public var toUTC: String
        public var timeZone: String
        public var interval: String = "half-open [from, to) on started_at"

        public init(label: String, from: String, to: String, fromUTC: String, toUTC: String, timeZone: String) {
            self.label = label
            self.from = from
            self.to = to
            self.fromUTC = fromUTC
            self.toUTC = toUTC
            self.timeZone = timeZone
        }

        enum CodingKeys: String, CodingKey {
            case label, from, to, interval
            case fromUTC = "from_utc"
            case toUTC = "to_utc"
            case timeZone = "time_zone"
        }
    }

    public struct Filters: Codable, Sendable, Equatable {
        public var user: String?
        public var team: String?
        public var includeBodies: Bool

        public init(user: String?, team: String?, includeBodies: Bool) {
            self.user = user
            self.team = team
            self.includeBodies = includeBodies
        }

        enum CodingKeys: String, CodingKey {
            case user, team
            case includeBodies = "include_bodies"
        }
    }

    public struct CSVRules: Codable, Sendable, Equatable {
        public var encoding = "UTF-8"
        public var standard = "RFC 4180 (CRLF line ends; fields with comma, quote, CR or LF are quoted; quotes doubled)"
        public var formulaGuard =
            "a text cell beginning with =, +, -, @, tab or CR is prefixed with a single quote (') so spreadsheets never evaluate it; exchanges.jsonl keeps the values unchanged"
        public var nullCells = "empty"

        public init() {}

        enum CodingKeys: String, CodingKey {
            case encoding, standard
            case formulaGuard = "formula_guard"
            case nullCells = "null_cells"
        }
    }

    public struct FileEntry: Codable, Sendable, Equatable {
        public var name: String
        public var bytes: Int
        public var sha256: String
        /// Data rows: CSV records after the header, JSON Lines lines, or entries of a JSON array.
        public var rows: Int

        public init(name: String, bytes: Int, sha256: String, rows: Int) {
            self.name = name
            self.bytes = bytes
            self.sha256 = sha256
            self.rows = rows
        }
    }

    public struct Counts: Codable, Sendable, Equatable {
        public var exchanges: Int
        /// Every outcome of the contract, zero when absent.
        public var byOutcome: [String: Int]

        public init(exchanges: Int, byOutcome: [String: Int]) {
            self.exchanges = exchanges
            self.byOutcome = byOutcome
        }

        enum CodingKeys: String, CodingKey {
            case exchanges
            case byOutcome = "by_outcome"
        }
    }

    public struct ChainEntry: Codable, Sendable, Equatable {
        public var chainID: String
        public var firstSeq: Int64
        public var lastSeq: Int64
        public var count: Int64
        public var gaps: Int
        public var verified: Bool

        public init(chainID: String, firstSeq: Int64, lastSeq: Int64, count: Int64, gaps: Int, verified: Bool) {
            self.chainID = chainID
            self.firstSeq = firstSeq
            self.lastSeq = lastSeq
            self.count = count
            self.gaps = gaps
            self.verified = verified
        }

        enum CodingKeys: String, CodingKey {
            case count, gaps, verified
            case chainID = "chain_id"
            case firstSeq = "first_seq"
            case lastSeq = "last_seq"
        }
    }

    public struct Signature: Codable, Sendable, Equatable {
        public var algorithm = "Ed25519"
        /// Lower-case hex SHA-256 of the raw 32-byte public key.
        public var publicKeySHA256: String
        /// The raw 64-byte signature over the exact bytes of manifest.json.
        public var file = "manifest.sig"

        public init(publicKeySHA256: String) { self.publicKeySHA256 = publicKeySHA256 }

        enum CodingKeys: String, CodingKey {
            case algorithm, file
            case publicKeySHA256 = "public_key_sha256"
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, generator, period, filters, csv, files, counts, chains, signature, report
        case generatedAt = "generated_at"
        case previousManifestSHA256 = "previous_manifest_sha256"
    }

    /// The manifest's bytes as written: pretty, sorted keys, so the same content gives the same bytes.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0a)
        return data
    }

    public static func decode(_ data: Data) throws -> EvidenceManifest {
        try JSONDecoder().decode(EvidenceManifest.self, from: data)
    }
}

/// The package's file names, fixed by the contract.
public enum PackageFile {
    public static let exchangesCSV = "exchanges.csv"
    public static let exchangesJSONL = "exchanges.jsonl"
    public static let summaryCSV = "summary.csv"
    public static let summaryJSON = "summary.json"
    public static let integrity = "integrity.json"
    public static let manifest = "manifest.json"
    public static let signature = "manifest.sig"
}
