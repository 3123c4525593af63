/// What the audit record needs from a request body, read without building an object tree.
///
/// Only TOP-LEVEL members count: the scanner walks the top-level object and skips (while
/// validating) every value it does not need, so a `"model"` key inside `messages` or a tool schema
/// never counts. Keys are compared after unescaping (`"mo\u0064el"` is `model`), and with duplicate
/// keys the last one wins, as in the parsers the providers and SDKs use.
public struct RequestFacts: Sendable, Equatable {
    /// Top-level `model`, when it is a string.
    public var model: String?
    /// Top-level `stream` is the literal `true`. Anything else (absent, false, `"true"`, 1) is not a
    /// stream: the upstream either treats it as false or rejects the request.
    public var stream: Bool
    /// Who the caller says the end user is: Anthropic `metadata.user_id`, else OpenAI
    /// `safety_identifier` (the field OpenAI now documents for that purpose), else OpenAI `user`.
    /// The individual fields are kept below as well.
    public var endUser: String?
    /// Top-level `stream_options.include_usage` is the literal `true`.
    public var includeUsage: Bool
    /// Anthropic `metadata.user_id`.
    public var metadataUserID: String?
    /// OpenAI top-level `user` (deprecated by OpenAI, still sent by many clients).
    public var user: String?
    /// OpenAI top-level `safety_identifier`.
    public var safetyIdentifier: String?

    public init(
        model: String? = nil, stream: Bool = false, endUser: String? = nil, includeUsage: Bool = false,
        metadataUserID: String? = nil, user: String? = nil, safetyIdentifier: String? = nil
    ) {
        self.model = model
        self.stream = stream
        self.endUser = endUser
        self.includeUsage = includeUsage
        self.metadataUserID = metadataUserID
        self.user = user
        self.safetyIdentifier = safetyIdentifier
    }

    private static let keys = JSONKeys("model", "stream", "metadata", "user", "safety_identifier", "stream_options")

    /// Reads the facts, or returns nil when the body is not exactly one valid JSON object (strict
    /// RFC 8259, valid UTF-8, nothing but whitespace around it): the gateway answers 400 then.
    public init?(requestBody body: [UInt8]) {
        let s = JSONScanner(body)
        guard let m = s.documentMembers(Self.keys) else { return nil }
        model = s.string(m[0])
        stream = s.isTrue(m[1])
        metadataUserID = s.string(s.value(atPath: ["user_id"], inObjectAt: m[2]?.lowerBound ?? -1))
        user = s.string(m[3])
        safetyIdentifier = s.string(m[4])
        includeUsage = s.isTrue(s.value(atPath: ["include_usage"], inObjectAt: m[5]?.lowerBound ?? -1))
        endUser = metadataUserID ?? safetyIdentifier ?? user
    }
}
