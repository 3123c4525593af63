import AuditMetering
import Testing

@Suite struct SSEFramerTests {
    @Test func docStreamInOneChunk() {
        let input = Fixtures.anthropicDocStream.bytes
        let (events, trailing) = frame([input])
        #expect(trailing.isEmpty)
        #expect(events.flatMap(\.raw) == input)
        #expect(
            events.map(\.event) == [
                "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                "content_block_stop", "message_delta", "message_stop",
            ])
        #expect(events[2].dataString == #"{"type":"ping"}"#)
        #expect(events[7].raw == "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".bytes)
        #expect(events.allSatisfy { !$0.oversized && $0.endsEvent })
    }

    static let lineEnds = ["\n", "\r\n", "\r"]

    /// Every realistic stream, with every line-ending style: split at every byte offset into two
    /// chunks and in 1-byte chunks, the events are identical to the one-chunk framing, their raw
    /// bytes add up to the input, and the parsed fields do not depend on the line-ending style.
    @Test(arguments: 0..<3, lineEnds)
    func chunkingInvariance(streamIndex: Int, ending: String) {
        let source = Fixtures.streams[streamIndex].text
        let input = withLineEnds(source, ending).bytes
        let (baseline, trailing) = frame([input])
        #expect(trailing.isEmpty)
        #expect(baseline.flatMap(\.raw) == input)

        let lfEvents = frame([source.bytes]).events
        #expect(baseline.map(\.event) == lfEvents.map(\.event))
        #expect(baseline.map(\.data) == lfEvents.map(\.data))

        for offset in 0...input.count {
            let (events, rest) = frame([Array(input[..<offset]), Array(input[offset...])])
            #expect(rest.isEmpty)
            let same = sameEvents(events, baseline)
            #expect(same, "split at \(offset), line end \(ending.debugDescription)")
            if !same { break }
        }
        let (bytewise, rest) = frame(chunks(input, size: 1))
        #expect(rest.isEmpty)
        #expect(bytewise == baseline)
        #expect(frame(chunks(input, size: 7)).events == baseline)
    }

    @Test func fieldsFollowTheSSESpecification() throws {
        let input = """
            : comment line
            event:  two spaces
            data:no-space
            data: one
            data
            data:
            id: 7
            retry: 1000
            unknown field


            """.bytes
        let (events, trailing) = frame([input])
        #expect(trailing.isEmpty)
        try #require(events.count == 1)
        #expect(events[0].event == " two spaces")  // only ONE leading space is removed
        #expect(events[0].dataString == "no-space\none\n\n")
        #expect(events[0].raw == input)
    }

    @Test func commentOnlyBlocksAndStrayBlankLinesKeepTheirBytes() {
        let input = ": ping\n\n\n\r\ndata: x\n\n".bytes
        let (events, trailing) = frame(chunks(input, size: 1))
        #expect(trailing.isEmpty)
        #expect(events.map(\.raw) == [": ping\n\n".bytes, "\n".bytes, "\r\n".bytes, "data: x\n\n".bytes])
        #expect(events.map(\.data) == [[], [], [], "x".bytes])
        #expect(events.map(\.event) == [nil, nil, nil, nil])
    }

    @Test func blankLineEndingInCRWaitsForThePossibleLF() {
        var framer = SSEFramer()
        #expect(framer.feed("data: a\r\r".bytes).isEmpty)
        let next = framer.feed("\ndata: b\r\r".bytes)
        #expect(next.map(\.raw) == ["data: a\r\r\n".bytes])
        // No LF follows this time: the held event goes out as soon as the next byte is seen.
        let third = framer.feed("data: c\n\n".bytes)
        #expect(third.map(\.raw) == ["data: b\r\r".bytes, "data: c\n\n".bytes])
        #expect(third.map(\.dataString) == ["b", "c"])
        #expect(framer.feed("data: d\r\r".bytes).isEmpty)
        let end = framer.finish()
        #expect(end.events.map(\.dataString) == ["d"])
        #expect(end.trailing.isEmpty)
    }

    @Test func unfinishedEventIsReturnedAsTrailingBytes() {
        var framer = SSEFramer()
        let events = framer.feed("data: a\n\nevent: x\ndata: {\"partial\"".bytes)
        #expect(events.map(\.dataString) == ["a"])
        #expect(framer.bufferedByteCount == "event: x\ndata: {\"partial\"".utf8.count)
        let end = framer.finish()
        #expect(end.events.isEmpty)
        #expect(end.trailing == "event: x\ndata: {\"partial\"".bytes)
        #expect(framer.bufferedByteCount == 0)
    }

    @Test func crlfSplitBetweenCRAndLF() {
        var framer = SSEFramer()
        #expect(framer.feed("data: a\r\n\r".bytes).isEmpty)
        let events = framer.feed("\n".bytes)
        #expect(events.map(\.raw) == ["data: a\r\n\r\n".bytes])
        #expect(framer.finish() == SSEFinish(events: [], trailing: []))
    }

    @Test func byteOrderMarkAtStreamStartIsIgnoredForParsing() {
        let input = [0xEF, 0xBB, 0xBF] + "data: x\n\ndata: y\n\n".bytes
        let (events, _) = frame(chunks(input, size: 1))
        #expect(events.map(\.dataString) == ["x", "y"])
        #expect(events.flatMap(\.raw) == input)
    }

    @Test func multiByteUTF8SplitAcrossChunksIsReassembled() {
        let input = "event: t\ndata: 안녕 👋🏽\n\n".bytes
        for offset in 0...input.count {
            let (events, _) = frame([Array(input[..<offset]), Array(input[offset...])])
            #expect(events.count == 1)
            #expect(events.first?.dataString == "안녕 👋🏽")
        }
    }

    @Test func unsafeBufferAndClosureFeed() {
        var framer = SSEFramer()
        var seen: [SSEEvent] = []
        let input = "data: 1\n\ndata: 2\n\n".bytes
        input.withUnsafeBytes { framer.feed($0) { seen.append($0) } }
        #expect(seen.map(\.dataString) == ["1", "2"])
    }

    /// An event over the limit is passed through in pieces, flagged, not parsed; the events around
    /// it are unaffected, whatever the chunking, and memory stays near the limit.
    @Test func oversizedEventPassesThroughUnparsed() {
        let big = "event: huge\ndata: " + String(repeating: "x", count: 300) + "\ndata: more\n\n"
        let input = ("data: before\n\n" + big + "data: after\n\n").bytes
        let limit = 64
        var splits: [[[UInt8]]] = [[input], chunks(input, size: 1), chunks(input, size: 50)]
        for offset in 0...input.count { splits.append([Array(input[..<offset]), Array(input[offset...])]) }
        for chunking in splits {
            var framer = SSEFramer(maxEventBytes: limit)
            var events: [SSEEvent] = []
            for chunk in chunking {
                events += framer.feed(chunk)
                #expect(framer.bufferedByteCount <= limit + chunk.count)
            }
            let end = framer.finish()
            events += end.events
            #expect(end.trailing.isEmpty)
            #expect(events.flatMap(\.raw) == input)
            let normal = events.filter { !$0.oversized }
            #expect(normal.map(\.dataString) == ["before", "after"])
            let pieces = events.filter(\.oversized)
            #expect(pieces.flatMap(\.raw) == big.bytes)
            #expect(pieces.filter(\.endsEvent).count == 1)
            #expect(pieces.last?.endsEvent == true)
            #expect(pieces.allSatisfy { $0.event == nil && $0.data.isEmpty })
        }
    }

    @Test func eventAtTheLimitIsStillParsed() {
        let event = "data: " + String(repeating: "y", count: 20) + "\n\n"
        let (events, _) = frame([event.bytes], maxEventBytes: event.utf8.count)
        #expect(events.count == 1)
        #expect(events[0].oversized == false)
        #expect(events[0].data.count == 20)
    }
}
