import AuditCore
import Foundation

/// What verifying one evidence package found: every check made, in order, so an auditor sees what
/// was established and not only the first problem.
public struct PackageVerification: Sendable {
    public struct Check: Sendable, Equatable, CustomStringConvertible {
        /// Short and stable (`manifest`, `file exchanges.csv`, `signature`, `rows exchanges.csv`, ...),
        /// so scripts can grep for it.
        public var name: String
        public var passed: Bool
        /// What was found; on failure it names the file and the expected and found values.
        public var detail: String

        public init(name: String, passed: Bool, detail: String) {
            self.name = name
            self.passed = passed
            self.detail = detail
        }

        public var description: String { "\(name): \(detail)" }
    }

    public var directory: String
    public var checks: [Check]
    /// False when no public key was given: the package may be self-consistent yet made by anyone
    /// who could rewrite manifest.json, so callers should say so.
    public var signatureChecked: Bool

    public var firstFailure: Check? { checks.first { !$0.passed } }
    public var passed: Bool { firstFailure == nil }
}

/// Checks an evidence package offline, from its files alone: no database, no network, no AuditGate
/// configuration. What it needs from the auditor is the signer's public key (and, to check the
/// chain of packages, the previous package).
///
/// Every file is read as a stream with a fixed buffer, so a package of any size verifies in
/// constant memory.
public struct PackageVerifier {
    /// The data files every `auditgate-report export` package has (a `run` package has its own).
    public static let exportFiles = [
        PackageFile.exchangesCSV, PackageFile.exchangesJSONL, PackageFile.summaryCSV, PackageFile.summaryJSON,
        PackageFile.integrity,
    ]

    /// manifest.json is read whole (it is small); anything larger is not one of ours.
    static let maximumManifestBytes = 64 << 20
    /// A JSON file (not JSON Lines) is parsed whole to count its entries; ours are summaries.
    static let maximumJSONBytes = 512 << 20

    /// Checks, in order: the manifest; each listed file's size and SHA-256; no unlisted files; the
    /// signature; each file's rows; the exchange counts and outcomes; the chains recorded at export;
    /// the link to the previous package.
    public static func verify(directory: String, publicKey: Ed25519PublicKey?, previousDirectory: String?) -> PackageVerification {
        var run = Verification(directory: directory)
        run.verify(publicKey: publicKey, previousDirectory: previousDirectory)
        return PackageVerification(directory: directory, checks: run.checks, signatureChecked: publicKey != nil)
    }
}

/// One verification in progress.
private struct Verification {
    let directory: String
    var checks: [PackageVerification.Check] = []
    var manifest: EvidenceManifest?
    var manifestBytes: [UInt8] = []
    /// What reading each listed file found, by name (absent when it could not be read).
    var scans: [String: FileScan] = [:]

    init(directory: String) { self.directory = directory }

    func path(_ name: String) -> String { (directory.hasSuffix("/") ? directory : directory + "/") + name }

    mutating func record(_ name: String, _ passed: Bool, _ detail: String) {
        checks.append(.init(name: name, passed: passed, detail: detail))
    }

    mutating func verify(publicKey: Ed25519PublicKey?, previousDirectory: String?) {
        guard let manifest = checkManifest() else { return }
        self.manifest = manifest
        for entry in manifest.files { checkFile(entry) }
        checkUnlisted(manifest)
        checkSignature(manifest, publicKey: publicKey)
        for entry in manifest.files { checkRows(entry) }
        if manifest.report == nil {
            checkExchangeCounts(manifest)
            checkOutcomes(manifest)
            checkChains(manifest)
        } else {
            checkReportCounts(manifest)
        }
        checkPrevious(manifest, previousDirectory: previousDirectory)
    }

    // MARK: manifest

    /// Returns nil (after recording why) when nothing else can be checked safely.
    mutating func checkManifest() -> EvidenceManifest? {
        let name = "manifest"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            record(name, false, "\(directory) is not a directory")
            return nil
        }
        let manifestPath = path(PackageFile.manifest)
        guard FileManager.default.fileExists(atPath: manifestPath) else {
            record(name, false, "\(PackageFile.manifest) is missing: \(directory) is not an evidence package")
            return nil
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: manifestPath)[.size] as? Int) ?? 0
        guard size <= PackageVerifier.maximumManifestBytes else {
            record(name, false, "\(PackageFile.manifest) is \(size) bytes, too large to be a manifest")
            return nil
        }
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            record(name, false, "\(PackageFile.manifest) cannot be read")
            return nil
        }
        manifestBytes = [UInt8](data)
        let manifest: EvidenceManifest
        do {
            manifest = try EvidenceManifest.decode(data)
        } catch {
            record(name, false, "\(PackageFile.manifest) does not parse: \(Self.describe(error))")
            return nil
        }
        guard manifest.format == EvidenceManifest.formatName else {
            record(name, false, "\(PackageFile.manifest) has format \"\(manifest.format)\", expected \"\(EvidenceManifest.formatName)\"")
            return nil
        }
        // A listed name is joined to the package folder, so it must stay inside it.
        var seen = Set<String>()
        for entry in manifest.files {
            let reserved = entry.name == PackageFile.manifest || entry.name == PackageFile.signature
            if entry.name.isEmpty || entry.name.hasPrefix(".") || entry.name.contains("/") || entry.name.contains("\\")
                || entry.name.contains("\0") || reserved
            {
                record(name, false, "\(PackageFile.manifest) lists an unacceptable file name \"\(entry.name)\"")
                return nil
            }
            guard seen.insert(entry.name).inserted else {
                record(name, false, "\(PackageFile.manifest) lists \(entry.name) twice")
                return nil
            }
            guard entry.bytes >= 0, entry.rows >= 0 else {
                record(name, false, "\(PackageFile.manifest) lists a negative size or row count for \(entry.name)")
                return nil
            }
        }
        var problems: [String] = []
        if manifest.report == nil {
            let missing = PackageVerifier.exportFiles.filter { !seen.contains($0) }
            if !missing.isEmpty {
                problems.append("\(PackageFile.manifest) does not list \(missing.joined(separator: ", ")), which every export package has")
            }
        }
        if let signature = manifest.signature {
            if signature.algorithm != "Ed25519" {
                problems.append("\(PackageFile.manifest) names signature algorithm \"\(signature.algorithm)\"; only Ed25519 is used")
            }
            if signature.file != PackageFile.signature {
                problems.append("\(PackageFile.manifest) names signature file \"\(signature.file)\", expected \(PackageFile.signature)")
            }
        }
        if problems.isEmpty {
            let kind = manifest.report.map { "report \"\($0.name)\" package" } ?? "export package"
            record(
                name, true,
                "\(PackageFile.manifest) parses: \(kind), format \(manifest.format), period \(manifest.period.label) [\(manifest.period.fromUTC), \(manifest.period.toUTC)), \(manifest.files.count) files listed"
            )
        } else {
            record(name, false, problems.joined(separator: "; "))
        }
        return manifest
    }

    /// A decoding error in a line a person can act on, without the Foundation debug dump.
    static func describe(_ error: any Error) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?: return "the field \"\(path(context.codingPath + [key]))\" is missing"
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            return "the field \"\(path(context.codingPath))\" has the wrong type"
        case .dataCorrupted(let context)?:
            return context.codingPath.isEmpty ? "not valid JSON" : "the field \"\(path(context.codingPath))\" is invalid"
        default: return "\(error)"
        }
    }

    // MARK: files

    mutating func checkFile(_ entry: EvidenceManifest.FileEntry) {
        let name = "file \(entry.name)"
        let filePath = path(entry.name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: filePath, isDirectory: &isDirectory) else {
            record(name, false, "\(entry.name) is listed in \(PackageFile.manifest) but missing from the package")
            return
        }
        guard !isDirectory.boolValue else {
            record(name, false, "\(entry.name) is a directory, not a file")
            return
        }
        let scan: FileScan
        do {
            scan = try FileScan.read(path: filePath, name: entry.name)
        } catch {
            record(name, false, "\(entry.name) cannot be read: \(error)")
            return
        }
        scans[entry.name] = scan
        if scan.bytes != entry.bytes {
            record(
                name, false,
                "\(entry.name) is \(scan.bytes) bytes, \(PackageFile.manifest) lists \(entry.bytes) (SHA-256 \(scan.sha256), listed \(entry.sha256)): the file was changed"
            )
        } else if scan.sha256 != entry.sha256.lowercased() {
            record(
                name, false,
                "\(entry.name) has SHA-256 \(scan.sha256), \(PackageFile.manifest) lists \(entry.sha256): the file was changed")
        } else {
            record(name, true, "\(scan.bytes) bytes, SHA-256 \(scan.sha256), as listed")
        }
    }

    mutating func checkUnlisted(_ manifest: EvidenceManifest) {
        let name = "unlisted files"
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            record(name, false, "cannot list \(directory): \(error.localizedDescription)")
            return
        }
        let listed = Set(manifest.files.map(\.name))
        // Finder writes .DS_Store into any folder it shows; it is no part of the evidence.
        let ignored: Set<String> = [PackageFile.manifest, PackageFile.signature, ".DS_Store"]
        let extra = entries.filter { !listed.contains($0) && !ignored.contains($0) }.sorted()
        if extra.isEmpty {
            record(name, true, "none: every file in the package is listed in \(PackageFile.manifest)")
        } else {
            record(
                name, false,
                "\(extra.joined(separator: ", ")) \(extra.count == 1 ? "is" : "are") in the package but not listed in \(PackageFile.manifest)")
        }
    }

    // MARK: signature

    mutating func checkSignature(_ manifest: EvidenceManifest, publicKey: Ed25519PublicKey?) {
        let name = "signature"
        let signaturePath = path(PackageFile.signature)
        let present = FileManager.default.fileExists(atPath: signaturePath)
        guard let publicKey else {
            if manifest.signature != nil && !present {
                record(name, false, "\(PackageFile.manifest) says the package is signed, but \(PackageFile.signature) is missing")
            } else if let claimed = manifest.signature {
                record(name, true, "not checked (pass --public-key FILE); \(PackageFile.manifest) names signing key \(claimed.publicKeySHA256)")
            } else {
                record(name, true, "not checked: the package is not signed")
            }
            return
        }
        guard let claimed = manifest.signature else {
            record(name, false, "\(PackageFile.manifest) names no signature: the package is not signed, so key \(publicKey.fingerprint) cannot vouch for it")
            return
        }
        guard present else {
            record(name, false, "\(PackageFile.signature) is missing")
            return
        }
        guard claimed.publicKeySHA256.lowercased() == publicKey.fingerprint else {
            record(
                name, false,
                "\(PackageFile.manifest) says it was signed by key \(claimed.publicKeySHA256), but the given key is \(publicKey.fingerprint)")
            return
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: signaturePath)[.size] as? Int) ?? -1
        guard size == 64, let signature = FileManager.default.contents(atPath: signaturePath) else {
            record(name, false, "\(PackageFile.signature) is \(size) bytes, not a 64-byte Ed25519 signature")
            return
        }
        if publicKey.isValidSignature([UInt8](signature), for: manifestBytes) {
            record(name, true, "\(PackageFile.signature) is a valid Ed25519 signature of \(PackageFile.manifest) by key \(publicKey.fingerprint)")
        } else {
            record(
                name, false,
                "\(PackageFile.signature) does not verify over \(PackageFile.manifest) with key \(publicKey.fingerprint): \(PackageFile.manifest) or \(PackageFile.signature) was changed"
            )
        }
    }

    // MARK: rows

    mutating func checkRows(_ entry: EvidenceManifest.FileEntry) {
        let name = "rows \(entry.name)"
        guard let scan = scans[entry.name] else {
            if [".csv", ".jsonl", ".json"].contains(where: entry.name.hasSuffix) {
                record(name, false, "\(entry.name) could not be read, so its rows were not counted")
            }
            return
        }
        let counted: (rows: Int, unit: String)
        switch scan.rows {
        case .notCounted:
            if entry.name.hasSuffix(".json") {
                guard let json = countJSON(entry.name) else { return }
                counted = json
            } else {
                return
            }
        case .csv(let rows): counted = (rows, "data rows after the header")
        case .jsonLines(let lines, _): counted = (lines, "lines")
        case .malformed(let reason):
            record(name, false, "\(entry.name): \(reason)")
            return
        }
        if counted.rows == entry.rows {
            record(name, true, "\(counted.rows) \(counted.unit), as listed")
        } else {
            record(name, false, "\(entry.name) has \(counted.rows) \(counted.unit), \(PackageFile.manifest) lists \(entry.rows)")
        }
    }

    /// Entries of a JSON array; for integrity.json (an object), its chains. Nil (after recording why)
    /// when the file is not valid JSON.
    mutating func countJSON(_ fileName: String) -> (rows: Int, unit: String)? {
        let name = "rows \(fileName)"
        guard let scan = scans[fileName], scan.bytes <= PackageVerifier.maximumJSONBytes else {
            record(name, true, "too large to parse whole; rows not counted")
            return nil
        }
        guard let data = FileManager.default.contents(atPath: path(fileName)),
            let json = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        else {
            record(name, false, "\(fileName) is not valid JSON")
            return nil
        }
        if let array = json as? [Any] { return (array.count, "entries") }
        if let object = json as? [String: Any], let chains = object["chains"] as? [Any] { return (chains.count, "chains") }
        record(name, true, "valid JSON; no array to count rows in")
        return nil
    }

    func countedRows(_ fileName: String) -> Int? {
        switch scans[fileName]?.rows {
        case .csv(let rows)?: rows
        case .jsonLines(let lines, _)?: lines
        default: nil
        }
    }

    // MARK: counts

    mutating func checkExchangeCounts(_ manifest: EvidenceManifest) {
        let name = "counts"
        let expected = manifest.counts.exchanges
        let csv = countedRows(PackageFile.exchangesCSV)
        let jsonl = countedRows(PackageFile.exchangesJSONL)
        let outcomeSum = manifest.counts.byOutcome.values.reduce(0, +)
        var problems: [String] = []
        if csv != expected {
            problems.append("\(PackageFile.exchangesCSV) has \(csv.map(String.init) ?? "uncounted") data rows")
        }
        if jsonl != expected {
            problems.append("\(PackageFile.exchangesJSONL) has \(jsonl.map(String.init) ?? "uncounted") lines")
        }
        if outcomeSum != expected || manifest.counts.byOutcome.values.contains(where: { $0 < 0 }) {
            problems.append("counts.by_outcome adds up to \(outcomeSum)")
        }
        if problems.isEmpty {
            record(
                name, true,
                "\(PackageFile.exchangesCSV) rows = \(PackageFile.exchangesJSONL) lines = counts.exchanges = sum of counts.by_outcome = \(expected)")
        } else {
            record(name, false, problems.joined(separator: "; ") + ", but \(PackageFile.manifest) counts.exchanges is \(expected)")
        }
    }

    /// The manifest's outcome counts against the `outcome` of every line of exchanges.jsonl, the
    /// lossless copy of the rows.
    mutating func checkOutcomes(_ manifest: EvidenceManifest) {
        let name = "outcomes"
        guard case .jsonLines(_, let outcomes)? = scans[PackageFile.exchangesJSONL]?.rows else {
            record(name, false, "\(PackageFile.exchangesJSONL) could not be read, so outcomes were not counted")
            return
        }
        let keys = Set(outcomes.keys).union(manifest.counts.byOutcome.keys).sorted()
        let differing = keys.filter { outcomes[$0, default: 0] != manifest.counts.byOutcome[$0, default: 0] }
        if differing.isEmpty {
            let shown = keys.filter { outcomes[$0, default: 0] > 0 }.map { "\($0) \(outcomes[$0]!)" }
            record(
                name, true,
                "the outcomes in \(PackageFile.exchangesJSONL) match counts.by_outcome" + (shown.isEmpty ? "" : " (\(shown.joined(separator: ", ")))"))
        } else {
            let shown = differing.map {
                "\($0): \(outcomes[$0, default: 0]) in \(PackageFile.exchangesJSONL), \(manifest.counts.byOutcome[$0, default: 0]) in counts.by_outcome"
            }
            record(name, false, "outcomes differ: " + shown.joined(separator: "; "))
        }
    }

    /// Each chain as recorded at export: it must have verified with no gaps, and integrity.json
    /// (the detail) must agree with manifest.json (the signed summary).
    mutating func checkChains(_ manifest: EvidenceManifest) {
        let name = "chains"
        var problems: [String] = []
        for chain in manifest.chains where !chain.verified || chain.gaps > 0 {
            problems.append(
                "\(PackageFile.manifest) records chain \(chain.chainID) as \(chain.verified ? "having \(chain.gaps) gap(s)" : "NOT verified") at export (see \(PackageFile.integrity))"
            )
        }
        if let data = FileManager.default.contents(atPath: path(PackageFile.integrity)),
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let chains = object["chains"] as? [[String: Any]]
        {
            func int(_ value: Any?) -> Int64? { (value as? NSNumber)?.int64Value }
            let detailed = chains.map { chain in
                EvidenceManifest.ChainEntry(
                    chainID: chain["chain_id"] as? String ?? "?", firstSeq: int(chain["first_seq"]) ?? -1,
                    lastSeq: int(chain["last_seq"]) ?? -1, count: int(chain["count"]) ?? -1,
                    gaps: (chain["gaps"] as? [Any])?.count ?? -1, verified: chain["verified"] as? Bool ?? false)
            }
            if detailed != manifest.chains {
                let ids = Set(detailed.map(\.chainID)).symmetricDifference(manifest.chains.map(\.chainID))
                let differing = zip(detailed, manifest.chains).filter { $0 != $1 }.map(\.1.chainID)
                let named = (Array(ids) + differing).sorted()
                problems.append(
                    "\(PackageFile.integrity) and \(PackageFile.manifest) disagree about chain(s) \(named.isEmpty ? "order" : named.joined(separator: ", "))")
            }
        } else if manifest.files.contains(where: { $0.name == PackageFile.integrity }) && scans[PackageFile.integrity] != nil {
            problems.append("\(PackageFile.integrity) has no \"chains\" array")
        }
        if !problems.isEmpty {
            record(name, false, problems.joined(separator: "; "))
        } else if manifest.chains.isEmpty {
            record(name, true, "no audit records in the period")
        } else {
            let shown = manifest.chains.map { "\($0.chainID) seq \($0.firstSeq)...\($0.lastSeq)" }
            record(name, true, "\(manifest.chains.count) chain(s) verified at export with no gaps: \(shown.joined(separator: ", "))")
        }
    }

    /// A `run` package: counts.exchanges holds the rows of the report's CSV.
    mutating func checkReportCounts(_ manifest: EvidenceManifest) {
        guard let report = manifest.report else { return }
        let csvName = report.name + ".csv"
        guard manifest.files.contains(where: { $0.name == csvName }) else { return }
        let rows = countedRows(csvName)
        if rows == manifest.counts.exchanges {
            record("counts", true, "\(csvName) rows = counts.exchanges = \(manifest.counts.exchanges)")
        } else {
            record(
                "counts", false,
                "\(csvName) has \(rows.map(String.init) ?? "uncounted") data rows, but \(PackageFile.manifest) counts.exchanges is \(manifest.counts.exchanges)")
        }
    }

    // MARK: previous package

    mutating func checkPrevious(_ manifest: EvidenceManifest, previousDirectory: String?) {
        let name = "previous"
        guard let previousDirectory else {
            if manifest.previousManifestSHA256 != nil {
                record(name, true, "not checked (pass --previous DIR)")
            } else {
                record(name, true, "\(PackageFile.manifest) names no previous package")
            }
            return
        }
        let previousPath = (previousDirectory.hasSuffix("/") ? previousDirectory : previousDirectory + "/") + PackageFile.manifest
        guard let link = manifest.previousManifestSHA256 else {
            record(name, false, "\(PackageFile.manifest) names no previous package, so it is not linked to \(previousDirectory)")
            return
        }
        guard let data = FileManager.default.contents(atPath: previousPath) else {
            record(name, false, "\(previousPath) cannot be read")
            return
        }
        let digest = SHA256.hash([UInt8](data)).hexString
        guard digest == link.lowercased() else {
            record(
                name, false,
                "\(PackageFile.manifest) links to a previous manifest with SHA-256 \(link), but \(previousPath) has SHA-256 \(digest)")
            return
        }
        let period = (try? EvidenceManifest.decode(data)).map { " (period \($0.period.label), to \($0.period.toUTC))" } ?? ""
        record(name, true, "\(previousPath)\(period) has SHA-256 \(digest), as \(PackageFile.manifest) links")
    }
}

// MARK: - Reading files

/// One pass over a file: its size and SHA-256, and for CSV and JSON Lines its records.
struct FileScan {
    enum Rows {
        case notCounted
        case csv(Int)
        /// Lines, and the `outcome` of each line tallied (for exchanges.jsonl).
        case jsonLines(Int, outcomes: [String: Int])
        case malformed(String)
    }

    var bytes: Int
    var sha256: String
    var rows: Rows

    static let chunkSize = 1 << 20

    static func read(path: String, name: String) throws -> FileScan {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var hasher = SHA256()
        var bytes = 0
        var csv: CSVRecordCounter? = name.hasSuffix(".csv") ? CSVRecordCounter() : nil
        var jsonl: JSONLinesCounter? = name.hasSuffix(".jsonl") ? JSONLinesCounter() : nil
        while let chunk = try handle.read(upToCount: chunkSize), !chunk.isEmpty {
            chunk.withUnsafeBytes { raw in
                hasher.update(raw)
                csv?.consume(raw)
                jsonl?.consume(raw)
            }
            bytes += chunk.count
        }
        let rows: Rows
        if var counter = csv {
            rows = counter.finish().map(Rows.csv) ?? .malformed(counter.error ?? "not valid CSV")
        } else if var counter = jsonl {
            rows = counter.finish().map { .jsonLines($0, outcomes: counter.outcomes) } ?? .malformed(counter.error ?? "not valid JSON Lines")
        } else {
            rows = .notCounted
        }
        return FileScan(bytes: bytes, sha256: hasher.finalize().hexString, rows: rows)
    }
}

/// Counts the records of an RFC 4180 file as a stream: quoted fields may hold commas, CR, LF and
/// doubled quotes, so lines are not records. Also checks that every record has as many fields as
/// the header, which catches a cut or merged row.
struct CSVRecordCounter {
    private enum State { case fieldStart, unquoted, quoted, quoteInQuoted, afterCR }

    private var state = State.fieldStart
    private var records = 0
    private var fields = 0
    private var headerFields = 0
    private var recordStarted = false
    private var line = 1
    private(set) var error: String?

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        guard error == nil else { return }
        for byte in bytes {
            consume(byte)
            if error != nil { return }
        }
    }

    private mutating func consume(_ byte: UInt8) {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), cr: UInt8 = 0x0d, lf: UInt8 = 0x0a
        recordStarted = true
        switch state {
        case .fieldStart, .unquoted:
            switch byte {
            case quote where state == .fieldStart: state = .quoted
            case quote: fail("a quote inside an unquoted field")
            case comma:
                fields += 1
                state = .fieldStart
            case cr: state = .afterCR
            case lf: endRecord()
            default: state = .unquoted
            }
        case .quoted:
            if byte == quote { state = .quoteInQuoted } else if byte == lf { line += 1 }
        case .quoteInQuoted:
            switch byte {
            case quote: state = .quoted
            case comma:
                fields += 1
                state = .fieldStart
            case cr: state = .afterCR
            case lf: endRecord()
            default: fail("text after the closing quote of a field")
            }
        case .afterCR:
            if byte == lf { endRecord() } else { fail("a CR not followed by LF outside quotes") }
        }
    }

    private mutating func fail(_ reason: String) {
        error = "not valid RFC 4180 CSV at line \(line) (record \(records + 1)): \(reason)"
    }

    private mutating func endRecord() {
        let count = fields + 1
        if records == 0 {
            headerFields = count
        } else if count != headerFields {
            error = "record \(records + 1) (line \(line)) has \(count) fields, the header has \(headerFields)"
        }
        records += 1
        line += 1
        fields = 0
        state = .fieldStart
        recordStarted = false
    }

    /// Data records after the header; nil when the file is not valid CSV (see `error`).
    mutating func finish() -> Int? {
        guard error == nil else { return nil }
        if state == .quoted {
            fail("a quoted field is not closed before the end of the file")
            return nil
        }
        // The last record may end without a line break (RFC 4180 §2.2).
        if recordStarted { endRecord() }
        guard error == nil else { return nil }
        guard records > 0 else {
            error = "the file is empty: no header line"
            return nil
        }
        return records - 1
    }
}

/// Counts JSON Lines as a stream: each line must be one JSON object. Tallies each line's `outcome`
/// so the manifest's outcome counts can be checked against the rows themselves.
struct JSONLinesCounter {
    private var current: [UInt8] = []
    private var lines = 0
    private(set) var outcomes: [String: Int] = [:]
    private(set) var error: String?

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        guard error == nil else { return }
        var start = bytes.startIndex
        while start < bytes.endIndex {
            guard let newline = bytes[start...].firstIndex(of: 0x0a) else {
                current.append(contentsOf: bytes[start...])
                return
            }
            current.append(contentsOf: bytes[start..<newline])
            endLine()
            if error != nil { return }
            start = newline + 1
        }
    }

    private mutating func endLine() {
        lines += 1
        defer { current.removeAll(keepingCapacity: true) }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(current))) as? [String: Any] else {
            error = current.allSatisfy({ $0 == 0x20 || $0 == 0x0d || $0 == 0x09 })
                ? "not valid JSON Lines: line \(lines) is empty"
                : "not valid JSON Lines: line \(lines) is not a JSON object"
            return
        }
        // The exporter counts a missing outcome as `incomplete` (a request with no response).
        let outcome = object["outcome"] as? String ?? "incomplete"
        outcomes[outcome, default: 0] += 1
    }

    /// Lines; nil when one is not a JSON object (see `error`).
    mutating func finish() -> Int? {
        // The last line may end without a line break.
        if error == nil && !current.isEmpty { endLine() }
        return error == nil ? lines : nil
    }
}
