/// Which refused calls get records of their own, and which are only counted into a summary record.
///
/// A flood of refused calls (keyless, oversized, malformed, past a limit) must not fill the spool or
/// the store, yet every refusal must stay countable by reason and client address. So, per window of
/// `window` seconds:
/// - the first `perKey` refusals of each (reason, client address, status) and at most `total` refusals
///   in all are recorded one by one, as an exchange each, as before;
/// - every further one is counted, and when the window closes each counted key becomes one summary
///   exchange (`api = 'refusals'`, the client address, the status, and in `detail` the reason and
///   `"refusals": N`, the count it stands for);
/// - at most `maxKeys` keys are counted per window; refusals of further keys are counted under the
///   client address `other`, so a flood from many addresses is still bounded.
/// So a window writes at most `total + maxKeys + 1` exchanges, however many calls are refused, and the
/// refusals of a window add up to its individual exchanges plus its summaries' counts.
///
/// A value type with no I/O: its owner serialises access and writes the summaries it returns.
struct RefusalLedger {
    struct Key: Hashable, Sendable {
        var reason: String
        var clientIP: String
        var status: Int
        var outcome: String
    }

    /// One summary exchange to write: `count` refusals of `key` not recorded one by one, in the window
    /// that began `windowStart` (seconds on the owner's clock).
    struct Summary: Equatable, Sendable {
        var key: Key
        var count: Int
        var windowStart: Int64
        var windowSeconds: Int64
    }

    enum Decision: Equatable {
        /// Record this refusal as an exchange of its own.
        case record
        /// Counted into a summary.
        case counted
    }

    var perKey = 5
    var total = 200
    var maxKeys = 1000
    var window: Int64 = 1

    private var windowStart: Int64?
    private var individual: [Key: Int] = [:]
    private var individualTotal = 0
    private var counted: [Key: Int] = [:]

    init(perKey: Int = 5, total: Int = 200, maxKeys: Int = 1000, window: Int64 = 1) {
        self.perKey = perKey
        self.total = total
        self.maxKeys = maxKeys
        self.window = window
    }

    /// Decides for one refusal at `now` (whole seconds); returns the summaries of a window that closed.
    mutating func refusal(_ key: Key, now: Int64) -> (Decision, [Summary]) {
        let closed = roll(now: now)
        let seen = individual[key, default: 0]
        if seen < perKey, individualTotal < total {
            individual[key] = seen + 1
            individualTotal += 1
            return (.record, closed)
        }
        var countedKey = key
        if counted[key] == nil, counted.count >= maxKeys { countedKey.clientIP = "other" }
        counted[countedKey, default: 0] += 1
        return (.counted, closed)
    }

    /// The summaries of the current window if it has closed by `now` (a timer calls this, so a flood
    /// that stops is still summarised), or of every count at once with `force` (shutdown).
    mutating func flush(now: Int64, force: Bool = false) -> [Summary] {
        if force {
            defer { reset(start: nil) }
            return summaries()
        }
        return roll(now: now)
    }

    private mutating func roll(now: Int64) -> [Summary] {
        guard let start = windowStart else {
            windowStart = now - now % window
            return []
        }
        guard now >= start + window else { return [] }
        let closed = summaries()
        reset(start: now - now % window)
        return closed
    }

    private func summaries() -> [Summary] {
        guard let start = windowStart else { return [] }
        return counted.map { Summary(key: $0.key, count: $0.value, windowStart: start, windowSeconds: window) }
            .sorted { ($0.key.clientIP, $0.key.reason, $0.key.status) < ($1.key.clientIP, $1.key.reason, $1.key.status) }
    }

    private mutating func reset(start: Int64?) {
        windowStart = start
        individual.removeAll(keepingCapacity: true)
        individualTotal = 0
        counted.removeAll(keepingCapacity: true)
    }
}
