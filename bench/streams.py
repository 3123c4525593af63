#!/usr/bin/env python3
"""Holds many streamed Anthropic Messages calls open at once (bench/streams.sh).

Opens STREAMS connections to URL, RAMP seconds apart in all, each POSTing one streamed call with
`x-bench-stream: 1` (the nginx upstream of bench/lib.sh then sends bench/sse/messages.sse slowly).
For every stream it measures the time from sending the request to the first byte of the first SSE
event (time to first event), reads the stream to its end, and checks that it ended with
`message_stop`. Prints one JSON object: counts, time-to-first-event percentiles, the largest number
of streams open at the same moment, and writes the x-auditgate-request-id of every completed stream
to --ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

BODY = json.dumps({
    "model": "claude-sonnet-4-6", "max_tokens": 256, "stream": True,
    "messages": [{"role": "user", "content": "Tell me a long story about audit trails."}],
}).encode()


class Tally:
    def __init__(self) -> None:
        self.open_now = 0
        self.open_max = 0
        self.ttfe: list[float] = []
        self.completed_ids: list[str] = []
        self.completed = 0
        self.failures: dict[str, int] = {}

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1


async def one_stream(host: str, port: int, path: str, key: str, tally: Tally, timeout: float) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except Exception as e:  # noqa: BLE001 - every failure is counted by kind
        tally.fail(f"connect: {type(e).__name__}")
        return
    tally.open_now += 1
    tally.open_max = max(tally.open_max, tally.open_now)
    try:
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
                f"anthropic-version: 2023-06-01\r\nx-api-key: {key}\r\nx-bench-stream: 1\r\n"
                f"content-length: {len(BODY)}\r\nconnection: close\r\n\r\n").encode()
        writer.write(head + BODY)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.split()
        status = int(parts[1]) if len(parts) > 1 else 0
        request_id = None
        chunked = False
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "x-auditgate-request-id":
                request_id = value.strip()
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if status != 200:
            tally.fail(f"status {status}")
            return
        body = bytearray()
        first = True
        while True:
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                break
            if first:
                tally.ttfe.append(time.perf_counter() - started)
                first = False
            body += data
        text = bytes(body)
        if chunked and not text.endswith(b"0\r\n\r\n"):
            tally.fail("stream broken off (no end of chunked body)")
        elif b"event: message_stop" not in text:
            tally.fail("no message_stop")
        else:
            tally.completed += 1
            if request_id:
                tally.completed_ids.append(request_id)
    except asyncio.TimeoutError:
        tally.fail("timeout")
    except Exception as e:  # noqa: BLE001
        tally.fail(f"{type(e).__name__}")
    finally:
        tally.open_now -= 1
        writer.close()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="origin, e.g. http://127.0.0.1:8045")
    parser.add_argument("--key", default="none")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which the streams are opened")
    parser.add_argument("--timeout", type=float, default=120.0, help="longest wait for any single read")
    parser.add_argument("--ids", help="file for the request ids of the completed streams")
    args = parser.parse_args()
    parts = urlsplit(args.url)
    tally = Tally()
    started = time.perf_counter()
    tasks = []
    for i in range(args.streams):
        tasks.append(asyncio.create_task(one_stream(parts.hostname, parts.port, "/v1/messages", args.key, tally, args.timeout)))
        await asyncio.sleep(args.ramp / args.streams)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    if args.ids:
        with open(args.ids, "w") as f:
            f.writelines(i + "\n" for i in tally.completed_ids)
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    print(json.dumps({
        "streams": args.streams, "completed": tally.completed, "failures": tally.failures,
        "open_max": tally.open_max, "seconds": round(elapsed, 1),
        "ttfe_ms": {"p50": ms(percentile(tally.ttfe, 0.5)), "p90": ms(percentile(tally.ttfe, 0.9)),
                    "p99": ms(percentile(tally.ttfe, 0.99)), "max": ms(max(tally.ttfe) if tally.ttfe else None)},
    }))
    return 0 if tally.completed == args.streams else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
