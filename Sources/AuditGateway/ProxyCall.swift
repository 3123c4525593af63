import AuditCore
import AuditGateConfig
import AuditJournal
import AuditMetering
import Logging
import NIOCore
import NIOHTTP1

/// One forwarded call, on its client's event loop from start to end: the request record is made
/// durable, the provider is called over a pooled connection on the same loop, the answer streams back
/// through a metering tap as it arrives, and the answer's end waits for the response record.
///
/// No task or thread hop per call except the journal's: the writer thread syncs the records and hands
/// back to the loop.
final class ProxyCall: UpstreamDelegate {
    enum State { case recordingRequest, connecting, awaitingHead, streaming, recordingResponse, done }

    let gateway: Gateway
    let plan: ForwardPlan
    let started: ContinuousClock.Instant
    /// The client connection's handler context: the answer is written through it.
    let context: ChannelHandlerContext
    let clientVersion: HTTPVersion
    let keepAlive: Bool
    /// Called once the answer is complete or abandoned, with the write of its end (nil when nothing
    /// more was written): the connection may take its next request, or close after that write.
    let finished: (_ endWritten: EventLoopFuture<Void>?) -> Void

    private var state = State.recordingRequest
    private var connection: UpstreamConnection?
    private var connectionWasReused = false
    private var retried = false
    private var headTimer: Scheduled<Void>?
    private var tap: ResponseTap?
    private var status = 0
    private var isStream = false
    private var ttfb: Int64?
    private var providerRequestID: String?
    /// The last chunk of a plain answer, held until the response record is durable (with a known
    /// length its last chunk would complete the answer for the client).
    private var heldBack: ByteBuffer?
    private var clientGone = false
    /// The provider's connection is not reading (`autoRead` off) until the client catches up.
    private var upstreamPaused = false
    private var upstreamFailure: String?
    /// Ends the reading of an answer its client left (`clientClosed`).
    private var drainTimer: Scheduled<Void>?
    /// The answer was not read to its end: the client had left and the drain timeout passed.
    private var drainCut = false
    /// A plain answer's head, not yet written (`writePendingHead`).
    private var pendingHead: HTTPResponseHead?
    /// The provider's status when the client was given a 502 instead (the record's detail).
    private var detailProviderStatus: Int?

    init(
        gateway: Gateway, plan: ForwardPlan, started: ContinuousClock.Instant, context: ChannelHandlerContext,
        clientVersion: HTTPVersion, keepAlive: Bool, finished: @escaping (_ endWritten: EventLoopFuture<Void>?) -> Void
    ) {
        self.gateway = gateway
        self.plan = plan
        self.started = started
        self.context = context
        self.clientVersion = clientVersion
        self.keepAlive = keepAlive
        self.finished = finished
    }

    /// The call is over for the connection: counted out of its loop, the connection may go on.
    private func end(_ endWritten: EventLoopFuture<Void>?) {
        gateway.callEnded(on: context.eventLoop)
        finished(endWritten)
    }

    var requestID: String { plan.draft.requestID }
    var connector: UpstreamConnector { gateway.upstreams.connector(for: plan.route.provider) }

    /// A journal completion that runs `body` on this call's loop (the journal answers on the writer
    /// thread in `spool` mode, at once on the caller's in `async` mode or when syncing inline).
    private func onLoop<Value: Sendable>(_ body: @escaping (ProxyCall, Value) -> Void) -> @Sendable (Value) -> Void {
        let loop = context.eventLoop
        let bound = NIOLoopBound((call: self, body: body), eventLoop: loop)
        return { value in loop.executeHere { bound.value.body(bound.value.call, value) } }
    }

    private func onLoop(_ body: @escaping (ProxyCall) -> Void) -> @Sendable () -> Void {
        let completion = onLoop { (call, _: Void) in body(call) }
        return { completion(()) }
    }

    // MARK: - Request record, then the provider

    func start() {
        let loop = context.eventLoop
        gateway.callStarted(on: loop)
        gateway.journal.append(
            plan.draft, syncInline: gateway.mayBlockForSync(loop),
            completion: onLoop { call, result in
                if case .failure(let error) = result { call.requestRecorded(error) } else { call.requestRecorded(nil) }
            })
    }

    private func requestRecorded(_ failure: (any Error)?) {
        if let failure {
            gateway.metrics.storeFailure()
            if gateway.configuration.audit.onStoreFailure == .reject {
                gateway.logger.error("call refused: no durable record possible", metadata: ["request_id": "\(requestID)", "reason": "\(failure)"])
                gateway.metrics.call(api: plan.route.api, status: 503, outcome: "gateway_error")
                state = .done
                writeError(.unavailable("AuditGate cannot record this call right now, so it was not forwarded: \(failure)"))
                return
            }
            gateway.logger.critical(
                "forwarding WITHOUT a durable record (on_store_failure: continue)", metadata: ["request_id": "\(requestID)", "reason": "\(failure)"])
        }
        if clientGone { return notForwarded() }
        connect(fresh: false)
    }

    /// The client left before the request went out: it is not forwarded (nobody would read the
    /// answer, and the organisation would pay for it), and the record says so.
    private func notForwarded() {
        headTimer?.cancel()
        state = .recordingResponse
        var closing = RecordDraft(kind: .response, requestID: requestID)
        closing.statusCode = 499  // nginx's "client closed request"
        closing.outcome = .clientError
        closing.latencyMs = Gateway.milliseconds(since: started)
        closing.detail = "{\"client_disconnected\":true,\"forwarded\":false}"
        gateway.recordResponse(closing, api: plan.route.api, done: onLoop { call in
            call.state = .done
            call.end(nil)
        })
    }

    private func connect(fresh: Bool) {
        state = .connecting
        let future: EventLoopFuture<UpstreamConnection>
        if fresh {
            connectionWasReused = false
            future = connector.connect(on: context.eventLoop)
        } else {
            let found = connector.connection(on: context.eventLoop)
            connectionWasReused = found.reused
            future = found.future
        }
        future.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let connection): connected(connection)
            case .failure(let error): failBeforeHead(.badGateway("the provider could not be reached (\(UpstreamHandler.describe(error)))"))
            }
        }
    }

    private func connected(_ connection: UpstreamConnection) {
        guard state == .connecting else {
            // Timed out meanwhile: the connection is not this call's to use.
            connection.channel.close(promise: nil)
            return
        }
        if clientGone {
            // Unused, so as good as any idle one: into the pool, and the call is not forwarded.
            connector.release(connection)
            return notForwarded()
        }
        self.connection = connection
        state = .awaitingHead
        connection.handler.delegate = self
        connection.handler.awaitingHead = true
        // The first-byte timeout starts once the request goes out: connecting and TLS have their own.
        headTimer?.cancel()
        headTimer = context.eventLoop.assumeIsolated().scheduleTask(in: gateway.settings.firstByteTimeout) { [self] in timedOut() }
        let head = plan.upstreamHead
        let channel = connection.channel
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body = plan.upstreamBody { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    private func timedOut() {
        guard state == .awaitingHead else { return }
        let seconds = gateway.settings.firstByteTimeout.nanoseconds / 1_000_000_000
        dropConnection()
        failBeforeHead(.gatewayTimeout("the provider did not answer within \(seconds) s"))
    }

    private func dropConnection() {
        guard let connection else { return }
        self.connection = nil
        connection.handler.delegate = nil
        connection.channel.close(promise: nil)
    }

    /// The provider could not be reached or did not answer: a recorded 502/504 in the caller's shape.
    private func failBeforeHead(_ error: GatewayError) {
        guard state == .connecting || state == .awaitingHead else { return }
        headTimer?.cancel()
        state = .recordingResponse
        let closing = Gateway.errorRecord(error, requestID: requestID, started: started)
        gateway.recordResponse(closing, api: plan.route.api, syncInline: gateway.mayBlockForSync(context.eventLoop), done: onLoop { call in
            call.state = .done
            call.writeError(error)
        })
    }

    private func writeError(_ error: GatewayError) {
        guard !clientGone else { return end(nil) }
        let (status, headers, body) = gateway.errorResponse(error, shape: plan.route.provider, requestID: requestID)
        end(context.writeWholeAnswer(version: clientVersion, status: status, headers: headers, body: body, close: !keepAlive))
    }

    /// Ends the answer; without keep-alive, closes the connection once the end is written.
    private func writeEnd() -> EventLoopFuture<Void>? {
        guard !clientGone else { return nil }
        let written = context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
        if !keepAlive { context.close(after: written) }
        return written
    }

    // MARK: - The answer

    func upstreamHead(_ head: HTTPResponseHead) {
        guard state == .awaitingHead else { return }
        headTimer?.cancel()
        ttfb = Gateway.milliseconds(since: started)
        state = .streaming
        status = Int(head.status.code)
        isStream = head.headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
        providerRequestID = head.headers.first(name: "request-id") ?? head.headers.first(name: "x-request-id")
        let meteredAPI = MeteredAPI(rawValue: plan.route.api.hasSuffix(".models") ? "models" : plan.route.api) ?? .models
        tap = ResponseTap(api: meteredAPI, isStream: isStream, dropUsageChunk: plan.dropUsageChunk, maxText: gateway.settings.maxAssembledText)

        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 2)
        let listed = head.headers.contains(name: "connection") ? HeaderPolicy.connectionListed(head.headers) : []
        for (name, value) in head.headers {
            let lowercased = name.lowercased()
            guard HeaderPolicy.returnsResponseHeader(lowercased), listed.isEmpty || !listed.contains(lowercased) else { continue }
            headers.add(name: name, value: value)
        }
        headers.add(name: "x-auditgate-request-id", value: requestID)
        if !keepAlive { headers.add(name: "connection", value: "close") }
        let clientHead = HTTPResponseHead(version: clientVersion, status: head.status, headers: headers)
        if isStream {
            // A stream's head goes out at once (SDKs wait for it).
            if !clientGone { context.writeAndFlush(NIOAny(HTTPServerResponsePart.head(clientHead)), promise: nil) }
        } else {
            // A plain answer's head waits for its first body bytes to go out (with them in one write, at
            // the latest once the record is durable): a provider that breaks off before then is answered
            // with a 502 the client can read, not a bare close.
            pendingHead = clientHead
        }
        followClientPace()
    }

    func upstreamBody(_ buffer: ByteBuffer) {
        guard state == .streaming else { return }
        let out = buffer.readableBytesView.withContiguousStorageIfAvailable { tap!.feed(UnsafeRawBufferPointer($0)) }
            ?? tap!.feed(Array(buffer.readableBytesView))
        let outgoing: ByteBuffer
        switch out {
        case .same: outgoing = buffer
        case .bytes(let bytes): outgoing = ByteBuffer(bytes: bytes)
        }
        // Nothing to send (a dropped usage chunk): an empty buffer must not release the held one.
        if outgoing.readableBytes > 0 {
            if isStream {
                send(outgoing)
            } else {
                if let previous = heldBack { send(previous) }
                heldBack = outgoing
            }
        }
        followClientPace()
    }

    func upstreamEnd(keepAlive upstreamKeepAlive: Bool) {
        guard state == .streaming, let connection else { return }
        self.connection = nil
        if upstreamPaused { try? connection.channel.syncOptions?.setOption(.autoRead, value: true) }
        if upstreamKeepAlive { connector.release(connection) } else { connection.channel.close(promise: nil) }
        finishAnswer()
    }

    func upstreamFailed(_ reason: String) {
        switch state {
        case .awaitingHead:
            connection = nil
            // A pooled connection the provider had closed while idle: one fresh try for a request that
            // is safe to repeat. A POST is never sent twice (it may have reached the provider).
            if connectionWasReused, !retried, plan.upstreamHead.method == .GET {
                retried = true
                connect(fresh: true)
                return
            }
            failBeforeHead(.badGateway("the provider could not be reached (\(reason))"))
        case .streaming:
            connection = nil
            upstreamFailure = reason
            finishAnswer()
        default:
            break
        }
    }

    /// Stream events are flushed one by one; a plain answer's chunks are flushed together with its end,
    /// or earlier once more is buffered than the connection's high-water mark.
    private func send(_ buffer: ByteBuffer) {
        guard !clientGone, buffer.readableBytes > 0 else { return }
        writePendingHead()
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
        if isStream || !context.channel.isWritable { context.flush() }
    }

    /// A plain answer's head, once something of it goes to the client.
    private func writePendingHead() {
        guard let head = pendingHead else { return }
        pendingHead = nil
        if !clientGone { context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil) }
    }

    /// Backpressure toward a slow client: the provider's connection stops reading while the client's
    /// connection is not writable, and reads again once it is (or once the client is gone: the rest is
    /// still read, so the record has the whole usage). Toggling `autoRead` only then, rather than
    /// asking for each read, saves two `epoll_ctl` calls per answer. Called after every write to the
    /// client and whenever its writability changes.
    func followClientPace() {
        guard let channel = connection?.channel else { return }
        let pause = !clientGone && !context.channel.isWritable
        guard pause != upstreamPaused else { return }
        upstreamPaused = pause
        try? channel.syncOptions?.setOption(.autoRead, value: !pause)
    }

    /// The client went away; the answer is still read (for the record's usage), for at most
    /// `drainTimeout`, then the provider's connection is closed and the record completed.
    func clientClosed() {
        clientGone = true
        followClientPace()
        if state == .streaming, drainTimer == nil {
            drainTimer = context.eventLoop.assumeIsolated().scheduleTask(in: gateway.settings.drainTimeout) { [self] in drainTimedOut() }
        }
    }

    private func drainTimedOut() {
        guard state == .streaming else { return }
        drainCut = true
        dropConnection()
        finishAnswer()
    }

    private func finishAnswer() {
        state = .recordingResponse
        drainTimer?.cancel()
        let tail = tap?.finish() ?? []
        let usage = tap?.usage ?? MeteredUsage()
        var closing = RecordDraft(kind: .response, requestID: requestID)
        closing.statusCode = status
        closing.model = gateway.settings.bodies.headValue(RecordedValue.capped(usage.model), into: &closing) ?? plan.draft.model
        closing.inputTokens = usage.inputTokens
        closing.outputTokens = usage.outputTokens
        closing.cacheReadTokens = usage.cacheReadTokens
        closing.cacheWriteTokens = usage.cacheWriteTokens
        closing.latencyMs = Gateway.milliseconds(since: started)
        closing.ttfbMs = ttfb
        closing.outcome = Gateway.outcome(status: status, upstreamFailure: upstreamFailure, streamError: usage.streamError)
        if drainCut { closing.outcome = .clientError }
        if upstreamFailure != nil, pendingHead != nil {
            // Nothing of the answer reached the client: it gets a 502, and the record says so (and what
            // the provider had begun to answer).
            closing.statusCode = 502
            detailProviderStatus = status
        }
        var detail: [String] = []
        if let upstreamFailure { detail.append("\"upstream_failure\":\"\(GatewayError.jsonEscape(upstreamFailure))\"") }
        if let streamError = gateway.settings.bodies.headValue(usage.streamError, into: &closing) {
            detail.append("\"stream_error\":\"\(GatewayError.jsonEscape(streamError))\"")
        }
        if clientGone { detail.append("\"client_disconnected\":true") }
        if drainCut { detail.append("\"drain_cut_after_seconds\":\(gateway.settings.drainTimeout.nanoseconds / 1_000_000_000)") }
        if let providerRequestID { detail.append("\"provider_request_id\":\"\(GatewayError.jsonEscape(providerRequestID))\"") }
        if let detailProviderStatus { detail.append("\"provider_status\":\(detailProviderStatus)") }
        if let tap {
            let whole = (count: tap.digest.count, sha256: tap.digest.finalize())
            let facts =
                isStream
                ? gateway.settings.bodies.record(text: usage.text, into: &closing, whole: whole, partial: usage.truncated)
                : gateway.settings.bodies.record(tap.collectedBody, into: &closing, whole: whole, partial: tap.isPartial)
            detail += facts.detailMembers
        }
        if !detail.isEmpty { closing.detail = "{" + detail.joined(separator: ",") + "}" }
        let tailBuffer = tail.isEmpty ? nil : ByteBuffer(bytes: tail)
        gateway.recordResponse(
            closing, api: plan.route.api, team: plan.caller.teamID, usage: usage, syncInline: gateway.mayBlockForSync(context.eventLoop),
            done: onLoop { call in
            call.answerRecorded(tail: tailBuffer)
        })
    }

    /// The response record is durable: the answer may end.
    private func answerRecorded(tail: ByteBuffer?) {
        state = .done
        if let upstreamFailure, pendingHead != nil {
            // Broken off before anything went out: a whole 502 in the API's shape.
            pendingHead = nil
            heldBack = nil
            return writeError(.badGateway("the provider broke off its answer (\(upstreamFailure))"))
        }
        if let heldBack { send(heldBack) }
        heldBack = nil
        if let tail { send(tail) }
        writePendingHead()  // an answer with no body
        // A clean end only for a clean answer: when the provider broke off, the client's connection is
        // broken off too, so its SDK raises instead of taking a truncated answer as whole.
        if upstreamFailure != nil {
            if !clientGone { context.close(promise: nil) }
            end(nil)
        } else {
            end(writeEnd())
        }
    }
}
