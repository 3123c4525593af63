/// Makes OpenAI chat streams carry usage, and finds the chunk that this adds.
///
/// Without `stream_options.include_usage` a chat stream has no usage at all, and the gateway must
/// meter every call; so it asks for usage on every streaming chat request, and, when the client had
/// not asked for it itself, removes the extra `choices: []` chunk from what the client receives,
/// because client code that indexes `choices[0]` would break on it.
///
/// The body is patched in place, never re-serialised: every byte the client sent stays as it was
/// (key order, number spelling, escapes, whitespace), only the usage request is inserted or one
/// literal replaced. The audit record can then show the client's body and the exact edit.
///
/// Only for `/chat/completions` requests: Anthropic streams always carry usage, and the Responses
/// API reports it in its terminal event (its `stream_options` has no `include_usage`).
public enum IncludeUsageRewriter {
    /// Inserted right after the top-level `{` when the request has no `stream_options`.
    /// The trailing comma is always valid there: the object has at least the `stream` member.
    public static let insertedMember: [UInt8] = Array(#""stream_options":{"include_usage":true},"#.utf8)

    /// Returns the body with `stream_options.include_usage` set to `true`, or nil when nothing needs
    /// changing: not a stream (`stream` is not literally `true`), usage already requested (`true`),
    /// malformed JSON (the gateway rejects it before this), or a `stream_options` that is neither an
    /// object nor null (the upstream rejects that; the gateway does not guess).
    ///
    /// A non-nil result therefore means "the client did not ask for usage": remember it, and drop
    /// the chunk `isUsageOnlyChunk` recognises from the client's copy of the stream. An explicit
    /// `"include_usage": false` is overridden too: metering is not optional, and the client still
    /// sees the stream it asked for because the chunk is removed.
    ///
    /// Cases: no `stream_options` → member inserted after the top-level `{`; `stream_options: null`
    /// → the `null` replaced by `{"include_usage":true}`; an object without `include_usage` →
    /// `"include_usage":true` inserted after its `{`; `include_usage` false/null/other → that value
    /// replaced by `true`. With duplicate keys the last one is patched, since that is the one parsers
    /// keep.
    public static func addIncludeUsage(toRequestBody body: [UInt8]) -> [UInt8]? {
        let s = JSONScanner(body)
        guard let m = s.documentMembers(streamKeys), s.isTrue(m[0]) else { return nil }
        let open = m.openBrace
        guard let options = m[1] else {
            return splice(body, replacing: (open + 1)..<(open + 1), with: insertedMember)
        }
        switch s.kind(of: options) {
        case .null:
            return splice(body, replacing: options, with: Array(#"{"include_usage":true}"#.utf8))
        case .object:
            guard let om = s.members(ofObjectAt: options.lowerBound, includeUsageKey) else { return nil }
            if let value = om[0] {
                if s.isTrue(value) { return nil }
                return splice(body, replacing: value, with: Array("true".utf8))
            }
            let afterBrace = options.lowerBound + 1
            let empty = s.skipWhitespace(afterBrace) == options.upperBound - 1
            let member = empty ? #""include_usage":true"# : #""include_usage":true,"#
            return splice(body, replacing: afterBrace..<afterBrace, with: Array(member.utf8))
        default:
            return nil
        }
    }

    private static let streamKeys = JSONKeys("stream", "stream_options")
    private static let includeUsageKey = JSONKeys("include_usage")
    private static let chunkKeys = JSONKeys("choices", "usage")

    private static func splice(_ body: [UInt8], replacing range: Range<Int>, with bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count - range.count + bytes.count)
        out.append(contentsOf: body[..<range.lowerBound])
        out.append(contentsOf: bytes)
        out.append(contentsOf: body[range.upperBound...])
        return out
    }

    /// True for the chunk `include_usage` adds: a chat chunk whose `choices` is an empty array and
    /// whose `usage` is an object. Every other chunk has at least one choice (and `usage: null`),
    /// so dropping exactly this event gives the client the stream it would have had.
    public static func isUsageOnlyChunk(_ event: SSEEvent) -> Bool {
        guard !event.oversized, event.endsEvent, !event.data.isEmpty else { return false }
        let s = JSONScanner(event.data)
        // Cheap rejection first: [DONE] and anything that is not an object.
        guard s.kind(at: s.skipWhitespace(0)) == .object,
            let m = s.documentMembers(chunkKeys)
        else { return false }
        return s.isEmptyArray(m[0]) && s.kind(of: m[1]) == .object
    }
}
