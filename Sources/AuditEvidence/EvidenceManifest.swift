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

    public struct Generator: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
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
    }

    public struct Counts: Codable, Sendable, Equatable {
        public var exchanges: Int
        /// Every outcome of the contract, zero when absent.
        public var byOutcome: [String: Int]

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

        enum CodingKeys: String, CodingKey {
            case algorithm, file
            case publicKeySHA256 = "public_key_sha256"
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, generator, period, filters, csv, files, counts, chains, signature
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
