import Foundation

/// Errors the gateway itself answers, in the error shape of the API that was called, so SDKs raise
/// their usual exceptions (`anthropic.AuthenticationError`, `openai.RateLimitError`, …).
public struct GatewayError: Error, Sendable {
    public var status: Int
    public var message: String
    /// The record's outcome for this refusal.
    public var outcome: String
    /// Why, as a short code a report can group by (`unknown_key`, `body_too_large`, …): the message
    /// says it to a person, this to a query.
    public var reason: String

    public init(status: Int, message: String, outcome: String, reason: String) {
        self.status = status
        self.message = message
        self.outcome = outcome
        self.reason = reason
    }

    public static func unauthorized(_ message: String, reason: String) -> GatewayError {
        .init(status: 401, message: message, outcome: "denied", reason: reason)
    }
    public static func notFound(_ path: String) -> GatewayError {
        .init(status: 404, message: "AuditGate does not forward \(path): not a route of this gateway", outcome: "client_error", reason: "unknown_route")
    }
    public static func badRequest(_ message: String, reason: String = "bad_request") -> GatewayError {
        .init(status: 400, message: message, outcome: "client_error", reason: reason)
    }
    public static func tooLarge(_ limit: Int) -> GatewayError {
        .init(status: 413, message: "request body is larger than this gateway accepts (\(limit) bytes)", outcome: "client_error", reason: "body_too_large")
    }
    public static func headersTooLarge(_ limit: Int) -> GatewayError {
        .init(status: 431, message: "request headers are larger than this gateway accepts (\(limit) bytes)", outcome: "client_error", reason: "headers_too_large")
    }
    public static func unavailable(_ message: String, reason: String = "store_unavailable") -> GatewayError {
        .init(status: 503, message: message, outcome: "gateway_error", reason: reason)
    }
    public static func badGateway(_ message: String) -> GatewayError {
        .init(status: 502, message: message, outcome: "upstream_error", reason: "upstream_unreachable")
    }
    public static func gatewayTimeout(_ message: String) -> GatewayError {
        .init(status: 504, message: message, outcome: "upstream_error", reason: "upstream_timeout")
    }

    /// The body in the provider's shape.
    public func body(for provider: Provider) -> String {
        let escaped = Self.jsonEscape(message)
        switch provider {
        case .anthropic:
            return "{\"type\":\"error\",\"error\":{\"type\":\"\(anthropicType)\",\"message\":\"\(escaped)\"}}"
        case .openai:
            return "{\"error\":{\"message\":\"\(escaped)\",\"type\":\"\(openAIType)\",\"param\":null,\"code\":\"\(openAICode)\"}}"
        }
    }

    var anthropicType: String {
        switch status {
        case 400: "invalid_request_error"
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 413: "request_too_large"
        case 431: "invalid_request_error"
        case 429: "rate_limit_error"
        case 504: "timeout_error"
        case 529: "overloaded_error"
        default: "api_error"
        }
    }

    var openAIType: String {
        switch status {
        case 400, 404, 413, 431: "invalid_request_error"
        case 401: "authentication_error"
        case 403: "permission_error"
        case 429: "rate_limit_exceeded"
        default: "server_error"
        }
    }

    var openAICode: String {
        switch status {
        case 401: "invalid_api_key"
        case 404: "not_found"
        case 413: "request_too_large"
        case 431: "request_header_fields_too_large"
        case 502: "bad_gateway"
        case 503: "audit_unavailable"
        case 504: "gateway_timeout"
        default: "gateway_error"
        }
    }

    static func jsonEscape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
