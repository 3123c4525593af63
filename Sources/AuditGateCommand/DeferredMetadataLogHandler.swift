import Logging

/// The gateway's log handler: swift-log's `StreamLogHandler` (standard error), except that metadata
/// is formatted only when a line is written. `StreamLogHandler` formats its metadata on every change,
/// and Hummingbird sets a request id on every call's logger, so that formatting ran once per call
/// (1.9 % of the gateway's CPU under load, see docs/benchmarks.md) although few calls log anything.
struct DeferredMetadataLogHandler: LogHandler {
    private var output: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(label: String) {
        output = StreamLogHandler.standardError(label: label)
    }

    var logLevel: Logger.Level {
        get { output.logLevel }
        set { output.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty {
            event.metadata = event.metadata.map { metadata.merging($0) { _, explicit in explicit } } ?? metadata
        }
        output.log(event: event)
    }
}
