import AuditCore

/// The on-disk format of spool segments (`segment-<first seq>.agspool`).
///
/// A segment starts with a header naming its chain and where the chain stands entering it, so the
/// chain head is known from the spool alone after a restart, even when every record was shipped.
/// Records follow as frames: `u32 length ‖ u32 CRC-32C ‖ payload`, so a torn write at the tail is
/// recognised and cut off, never shipped.
enum SpoolFormat {
    static let magic: [UInt8] = Array("AGSPOOL1".utf8)
    static let frameHeaderSize = 8
    static let payloadVersion: UInt8 = 1

    struct SegmentHeader: Equatable {
        var chainID: String
        var firstSeq: Int64
        var prevHash: [UInt8]
    }

    static func fileName(firstSeq: Int64) -> String {
        let digits = String(firstSeq)
        return "segment-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".agspool"
    }

    static func firstSeq(fileName: String) -> Int64? {
        guard fileName.hasPrefix("segment-"), fileName.hasSuffix(".agspool") else { return nil }
        return Int64(fileName.dropFirst(8).dropLast(8))
    }

    static func encodeHeader(_ header: SegmentHeader) -> [UInt8] {
        var out = magic
        appendUInt64(UInt64(bitPattern: header.firstSeq), to: &out)
        out.append(contentsOf: header.prevHash)
        let chain = Array(header.chainID.utf8)
        out.append(UInt8(chain.count >> 8))
        out.append(UInt8(chain.count & 0xff))
        out.append(contentsOf: chain)
        appendUInt32(CRC32C.checksum(out), to: &out)
        return out
    }

    /// Decodes a header at the start of `bytes`; returns it and its length.
    static func decodeHeader(_ bytes: [UInt8]) -> (SegmentHeader, Int)? {
        guard bytes.count >= 52, Array(bytes[0..<8]) == magic else { return nil }
        let firstSeq = Int64(bitPattern: readUInt64(bytes, at: 8))
        let prevHash = Array(bytes[16..<48])
        let chainLength = Int(bytes[48]) << 8 | Int(bytes[49])
        let end = 50 + chainLength
        guard bytes.count >= end + 4, readUInt32(bytes, at: end) == CRC32C.checksum(Array(bytes[0..<end])) else { return nil }
        let chainID = String(decoding: bytes[50..<end], as: UTF8.self)
        return (SegmentHeader(chainID: chainID, firstSeq: firstSeq, prevHash: prevHash), end + 4)
    }

    static func encodeFrame(_ record: AuditRecord, canonical known: [UInt8]? = nil, into out: inout [UInt8]) {
        var payload = [UInt8]()
        let canonical = known ?? CanonicalEncoding.encode(record)
        payload.reserveCapacity(80 + canonical.count + (record.fields.body?.utf8.count ?? 0))
        payload.append(payloadVersion)
        payload.append(contentsOf: record.prevHash)
        payload.append(contentsOf: record.hash)
        appendUInt32(UInt32(canonical.count), to: &payload)
        payload.append(contentsOf: canonical)
        if let body = record.fields.body {
            payload.append(1)
            appendUInt32(UInt32(body.utf8.count), to: &payload)
            payload.append(contentsOf: body.utf8)
        } else {
            payload.append(0)
        }
        appendUInt32(UInt32(payload.count), to: &out)
        appendUInt32(CRC32C.checksum(payload), to: &out)
        out.append(contentsOf: payload)
    }

    enum FrameResult {
        case record(AuditRecord, length: Int)
        /// Not enough bytes for a whole frame (a torn tail, or the writer is mid-write).
        case incomplete
        /// The bytes are there but wrong: checksum, version or encoding.
        case corrupt
    }

    static func decodeFrame(_ bytes: [UInt8], at offset: Int) -> FrameResult {
        guard bytes.count - offset >= frameHeaderSize else { return .incomplete }
        let length = Int(readUInt32(bytes, at: offset))
        let checksum = readUInt32(bytes, at: offset + 4)
        let start = offset + frameHeaderSize
        guard bytes.count - start >= length else { return .incomplete }
        let payload = bytes[start..<start + length]
        guard payload.withUnsafeBytes({ CRC32C.checksum($0) }) == checksum, length >= 70,
            payload[payload.startIndex] == payloadVersion
        else { return .corrupt }
        let base = payload.startIndex
        let prevHash = Array(payload[base + 1..<base + 33])
        let hash = Array(payload[base + 33..<base + 65])
        let canonicalLength = Int(readUInt32(bytes, at: base + 65))
        let canonicalStart = base + 69
        guard canonicalStart + canonicalLength < payload.endIndex,
            let values = CanonicalEncoding.decode(payload[canonicalStart..<canonicalStart + canonicalLength])
        else { return .corrupt }
        var cursor = canonicalStart + canonicalLength
        var body: String?
        if payload[cursor] == 1 {
            let bodyLength = Int(readUInt32(bytes, at: cursor + 1))
            guard cursor + 5 + bodyLength <= payload.endIndex else { return .corrupt }
            body = String(decoding: payload[cursor + 5..<cursor + 5 + bodyLength], as: UTF8.self)
            cursor += 5 + bodyLength
        }
        guard let record = CanonicalEncoding.record(values: values, prevHash: prevHash, hash: hash, body: body) else {
            return .corrupt
        }
        return .record(record, length: frameHeaderSize + length)
    }

    static func appendUInt32(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(value >> 24))
        out.append(UInt8(value >> 16 & 0xff))
        out.append(UInt8(value >> 8 & 0xff))
        out.append(UInt8(value & 0xff))
    }

    static func appendUInt64(_ value: UInt64, to out: inout [UInt8]) {
        appendUInt32(UInt32(value >> 32), to: &out)
        appendUInt32(UInt32(value & 0xffff_ffff), to: &out)
    }

    static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    static func readUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        UInt64(readUInt32(bytes, at: offset)) << 32 | UInt64(readUInt32(bytes, at: offset + 4))
    }
}
