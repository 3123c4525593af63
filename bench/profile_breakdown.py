#!/usr/bin/env python3
"""Where the gateway's CPU goes, by part: reads `perf script` output (demangled) of a
`perf record -g` of `auditgate serve` (bench/gateway.sh PROFILE=DIR) and attributes each sample to
the part that owns the innermost frame of its stack that any part claims; samples no part claims go
to the NIO part when an event-loop frame is on the stack, else "other".

    perf script -i DIR/perf.data -F comm,tid,ip,sym | swift demangle --simplified > DIR/script.txt
    python3 bench/profile_breakdown.py DIR/script.txt
"""

from __future__ import annotations

import collections
import re
import sys

PARTS = [
    ("journal: sealing and spooling a record (on the call's thread)",
     r"Journal\.append|Journal\.enqueue|AuditRecord\.seal|SpoolFormat\.encode"),
    # The writer thread's loop may be inlined into its thread closure; the shipper's frames are inner to
    # its own closure, so they match the shipper first.
    ("journal: writing and syncing the spool (writer thread, or a call's loop inline)",
     r"Journal\.writerLoop|Journal\.completeBatch|Journal\.writeBatch|Journal\.syncInlineIfIdle|"
     r"closure #\d+ in Journal\.startBlocking"),
    ("journal: shipper thread (COPY into PostgreSQL)", r"Journal\.shipperLoop"),
    ("bodies: redaction and recording", r"BodyRecorder|Redactor|StreamingRedactor"),
    ("metering: request facts, response tap, usage", r"ResponseTap|UsageMeter|RequestFacts|SSEFramer|JSONScanner"),
    ("metrics (Prometheus registry)", r"GatewayMetrics|Prometheus"),
    ("identity and header policy", r"Gateway\.identify|HeaderPolicy|UpstreamConnector\.requestHead"),
    ("NIO HTTP/1 codec (parsing and encoding, both sides)",
     r"HTTPDecoder|llhttp|BetterHTTPParser|HTTPResponseEncoder|HTTPRequestEncoder|HTTPServerPipelineHandler|"
     r"HTTPServerProtocolErrorHandler|HTTPHeaders"),
    ("NIO channels, sockets (with the kernel's socket work), event loop",
     r"BaseSocketChannel|BaseStreamSocketChannel|PendingWrites|SelectableEventLoop|Selector\.|ChannelPipeline|"
     r"ChannelHandlerContext|IdleStateHandler|HeadChannelHandler|ClientBootstrap|ServerBootstrap"),
    ("gateway per-call code (Gateway, ProxyCall, connection handlers)",
     r"Gateway\.|ProxyCall|GatewayConnectionHandler|UpstreamHandler|UpstreamConnector|LoopPool"),
]
EVENT_LOOP = re.compile(
    r"SelectableEventLoop|BaseSocketChannel|BaseStreamSocketChannel|Selector|ChannelPipeline|"
    r"ChannelHandlerContext|ByteToMessage|HTTPDecoder|llhttp|PendingWrites")
COMPILED = [(name, re.compile(rx)) for name, rx in PARTS]


def stacks(path: str):
    current: list[str] = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if current:
                    yield current
                current = []
            elif line.startswith((" ", "\t")):
                fields = line.strip().split(" ", 1)
                current.append(fields[1] if len(fields) > 1 else fields[0])
            else:
                current = [line]
    if current:
        yield current


def main() -> int:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for stack in stacks(sys.argv[1]):
        frames = stack[1:]  # innermost first
        part = None
        for frame in frames:
            part = next((name for name, rx in COMPILED if rx.search(frame)), None)
            if part:
                break
        if part is None:
            part = ("NIO channels, sockets (with the kernel's socket work), event loop" if any(EVENT_LOOP.search(f) for f in frames)
                    else "other (kernel, allocator, threads outside the event loops)")
        counts[part] += 1
        total += 1
    print(f"| part | share of the gateway's CPU samples ({total}) |")
    print("|---|---:|")
    for name, n in counts.most_common():
        print(f"| {name} | {100 * n / total:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
