import CLibPQ

/// An error from libpq or the server.
///
/// It carries libpq's primary message and the SQLSTATE, never the statement's parameters or row data:
/// messages of the data-exception (22) and integrity-violation (23) classes can quote values, so for
/// those only the condition is kept. The DETAIL field, which quotes keys, is never read.
public struct PGError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// Could not connect, or the connection broke: worth retrying later.
        case connection
        /// The server refused the statement.
        case server
        /// The client side went wrong (bad use of the API, COPY protocol error).
        case client
    }

    public let kind: Kind
    /// Five-character SQLSTATE when the server sent one (e.g. `42501` insufficient privilege).
    public let sqlState: String?
    public let message: String

    public init(kind: Kind, sqlState: String? = nil, message: String) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
    }

    public var description: String {
        if let sqlState { return "PostgreSQL error \(sqlState): \(message)" }
        return "PostgreSQL: \(message)"
    }

    /// True when the connection itself is gone and the caller should reconnect.
    public var isConnectionFailure: Bool {
        kind == .connection || (sqlState.map { $0.hasPrefix("08") || $0.hasPrefix("57P") } ?? false)
    }

    /// True when the server refused the statement for the data it carried (SQLSTATE class 22, data
    /// exception, such as 22021 for U+0000 in text; class 54, program limit exceeded, such as a value too
    /// large): sending the same values again can never succeed, unlike a connection or privilege error.
    public var refusesData: Bool {
        kind == .server && (sqlState.map { $0.hasPrefix("22") || $0.hasPrefix("54") } ?? false)
    }

    static func fromConnection(_ connection: OpaquePointer?) -> PGError {
        let raw = connection.flatMap { PQerrorMessage($0) }.map { String(cString: $0) } ?? "unknown error"
        return PGError(kind: .connection, message: PGError.firstLine(raw))
    }

    static func fromResult(_ result: OpaquePointer?, connection: OpaquePointer?) -> PGError {
        guard let result else { return fromConnection(connection) }
        let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        var message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            ?? PGError.firstLine(String(cString: PQresultErrorMessage(result)))
        if let sqlState, sqlState.hasPrefix("22") || sqlState.hasPrefix("23") {
            message = "data or integrity violation (\(sqlState)); values are not shown"
        }
        let connectionGone = connection.map { PQstatus($0) != CONNECTION_OK } ?? true
        return PGError(kind: connectionGone ? .connection : .server, sqlState: sqlState, message: message)
    }

    static func firstLine(_ text: String) -> String {
        let trimmed = text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? text
        return trimmed.trimmingCharacters(in: " \t")
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        var slice = Substring(self)
        while let first = slice.first, characters.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, characters.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
