import AuditJournal
import Prometheus

/// The gateway's Prometheus metrics, on a registry of its own (so tests can build many gateways).
public struct GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    static let latencyBuckets: [Double] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    func call(api: String, status: Int, outcome: String) {
        registry.makeCounter(
            name: "auditgate_calls_total", labels: [("api", api), ("status", String(status)), ("outcome", outcome)]
        ).increment()
    }

    func tokens(team: String?, model: String?, input: Int64?, output: Int64?) {
        let labels = [("team", team ?? ""), ("model", model ?? "")]
        if let input, input > 0 { registry.makeCounter(name: "auditgate_input_tokens_total", labels: labels).increment(by: input) }
        if let output, output > 0 { registry.makeCounter(name: "auditgate_output_tokens_total", labels: labels).increment(by: output) }
    }

    func latency(api: String, milliseconds: Int64, ttfb: Int64?) {
        registry.makeValueHistogram(name: "auditgate_latency_ms", labels: [("api", api)], buckets: Self.latencyBuckets)
            .record(Double(milliseconds))
        if let ttfb {
            registry.makeValueHistogram(name: "auditgate_ttfb_ms", labels: [("api", api)], buckets: Self.latencyBuckets)
                .record(Double(ttfb))
        }
    }

    func storeFailure() {
        registry.makeCounter(name: "auditgate_record_failures_total", labels: []).increment()
    }

    /// The Prometheus text, with the journal's gauges read at scrape time.
    public func render(journal: JournalStatus) -> [UInt8] {
        registry.makeGauge(name: "auditgate_journal_backlog_records", labels: []).set(to: Double(journal.backlog))
        registry.makeGauge(name: "auditgate_spool_bytes", labels: []).set(to: Double(journal.spoolBytes))
        registry.makeGauge(name: "auditgate_spool_max_bytes", labels: []).set(to: Double(journal.spoolMaxBytes))
        registry.makeGauge(name: "auditgate_store_reachable", labels: []).set(to: journal.storeReachable ? 1 : 0)
        registry.makeGauge(name: "auditgate_store_errors", labels: []).set(to: Double(journal.storeErrors))
        registry.makeGauge(name: "auditgate_shipper_stalled", labels: []).set(to: journal.shipperStalledSeconds == nil ? 0 : 1)
        registry.makeGauge(name: "auditgate_shipper_stalled_seconds", labels: []).set(to: Double(journal.shipperStalledSeconds ?? 0))
        registry.makeGauge(name: "auditgate_unstorable_records", labels: []).set(to: Double(journal.unstorableRecords))
        registry.makeGauge(name: "auditgate_durability_spool", labels: []).set(to: journal.durability == .spool ? 1 : 0)
        return registry.emitToBuffer()
    }
}
