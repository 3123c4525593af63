#!/usr/bin/env python3
"""AuditGate provider stand-in: a loopback HTTP server that imitates the Anthropic and
OpenAI HTTP APIs closely enough for the official Python SDKs (anthropic 2.x, openai 3.x).

Python 3.11 standard library only.

    python3 tools/standin/standin.py --port 0 [--host 127.0.0.1] [--port-file PATH] [--log PATH]

Routes (matched on the path without its query string; a path prefix such as
/proxy/anthropic/v1/messages is accepted, but a doubled /v1/v1/... is a 404 like the real API):
  Anthropic  POST /v1/messages, POST /v1/messages/count_tokens
  OpenAI     POST /v1/chat/completions, POST /v1/responses, POST /v1/embeddings
  both       GET /v1/models, GET /v1/models/{id}  (Anthropic shape when the request carries
             `anthropic-version`, OpenAI shape otherwise)
  own        GET /_standin/health, GET /_standin/requests, POST /_standin/reset

DETERMINISTIC TOKEN FORMULAS (tests may rely on these)
  words(s)          = len(s.split())   (whitespace-separated words, Python str.split())
  request text      = every string found in
                        Anthropic: `system` (string or text blocks) + messages[].content
                                   (string, or blocks' "text"; nested "content" of e.g.
                                   tool_result blocks is searched too)
                        Chat:      messages[].content (string or parts' "text")
                        Responses: `instructions` + `input` (string, or items' content as
                                   string or parts' "text")
  input tokens      = sum(words(t) for t in request text) + 3
                        -> Anthropic usage.input_tokens and count_tokens' input_tokens,
                           Chat usage.prompt_tokens, Responses usage.input_tokens
  embeddings        = sum(words(s)) over the inputs (a token array counts len(array));
                      no +3. usage.prompt_tokens == usage.total_tokens
  answer            = N words, N = `x-standin-events` (default 5), taken cyclically from
                        ANSWER_WORDS = ["Hello", "안녕하세요", "🙂", "from", "the", "stand-in."]
                      and joined by single spaces; so the default answer is
                        "Hello 안녕하세요 🙂 from the"
                      With `x-standin-echo: 1` the answer is instead the words of the last
                      user message's text (N = their count, at least 1 word: "(empty)").
                      If the request's max_tokens (Anthropic, Chat: max_tokens or
                      max_completion_tokens; Responses: max_output_tokens) is < N, the answer
                      is cut to that many words and the stop is stop_reason "max_tokens" /
                      finish_reason "length" / Responses status "incomplete"
                      (reason "max_output_tokens", terminal event response.incomplete).
  output tokens     = words(answer) (= number of text deltas in a stream; one word per delta,
                      every delta after the first starts with a space)
  cache             = `x-standin-cache-read: R`, `x-standin-cache-write: W` (default 0):
                        Anthropic cache_read_input_tokens = R, cache_creation_input_tokens = W
                        (input_tokens unchanged: Anthropic's input_tokens excludes cache);
                        OpenAI cached_tokens = min(R, prompt/input tokens) (a subset).
  totals            = OpenAI total_tokens = prompt/input tokens + completion/output tokens.
  embedding vectors = `dimensions` floats (default 8) from SHA-256 of the input text, each a
                      multiple of 1/128 in [-1, 1) so float32 base64 round-trips exactly.

BEHAVIOUR ON DEMAND (request headers; all optional, per call)
  x-standin-status: 429              answer that status with the provider's error JSON
  x-standin-error-type / -error-code / -error-message   override the error's fields
  x-standin-retry-after: 7           add `retry-after: 7` (with a status)
  x-standin-retry-after-ms: 10       add `retry-after-ms: 10`
  x-standin-should-retry: false      add `x-should-retry: false`
  x-standin-delay: 0.5               sleep before sending the response head
  x-standin-events: N                number of text deltas / answer words (default 5)
  x-standin-event-interval: 0.01     seconds between text deltas in a stream (default 0)
  x-standin-pause-after-first-event: 1.0   flush the first SSE event, sleep, continue
  x-standin-chunk-split: 1           write the body in tiny HTTP chunks (x-standin-chunk-size,
                                     default 7 bytes), flushing each: SSE events and UTF-8
                                     characters get split across writes
  x-standin-reset-after-events: N    after N SSE events (ping and [DONE] count) abort the TCP
                                     connection without the terminating chunk
  x-standin-reset-mode: fin|rst      how to abort: FIN (shutdown+close, default) or RST
                                     (SO_LINGER 0)
  x-standin-stream-error: overloaded_error   after the first text delta send an in-stream
                                     error (Anthropic `event: error`; Chat `data: {"error":..}`;
                                     Responses `event: error`) and end the stream
  x-standin-echo: 1                  answer with the last user message's text
  x-standin-echo-credentials: 1      send back the x-api-key and authorization received, a
                                     proxy-authorization, and x-hop-secret named in Connection
  x-standin-gzip: 1                  gzip a non-streamed body (content-encoding: gzip)
  x-standin-break-plain-after: N     send a plain answer's head (full content-length) and N bytes
                                     of its body, then close the connection
  x-standin-cache-read / -cache-write: see formulas

CONCURRENCY
  ThreadingHTTPServer, one daemon thread per connection. Memory per idle/streaming connection
  is roughly the thread stack actually touched (we cap the reserved stack at 512 KiB with
  threading.stack_size; resident use is ~30-60 KiB) plus the socket buffers, so 3,000 open
  streams cost on the order of 150-300 MiB RSS. The listen backlog (request_queue_size) is
  4096 (the kernel caps it at net.core.somaxconn). Each open connection is one file
  descriptor: raise `ulimit -n` above the number of concurrent streams.
  GIL: every thread waiting for the GIL wakes once per switch interval, so with CPython's
  default 5 ms and ~3,000 threads wanting it at once (a burst of new connections) the process
  drowns in wake-ups (measured: 3,000 simultaneous short streams took 35-90 s). We set
  sys.setswitchinterval(0.2) (--switch-interval): the same burst then completes in ~7 s and
  3,000 streams of 20 deltas 0.5 s apart finish in ~15 s on 2 cores. Handler threads are
  I/O-bound and release the GIL at every socket write and sleep, so the long interval does
  not delay streams.
  Recording and logging take no lock (a Lock contended by thousands of threads convoys).
"""

from __future__ import annotations

import argparse
import base64
import collections
import gzip
import hashlib
import itertools
import json
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ANSWER_WORDS = ["Hello", "안녕하세요", "🙂", "from", "the", "stand-in."]
DEFAULT_EVENTS = 5
DEFAULT_CHUNK_SIZE = 7
DEFAULT_EMBEDDING_DIMENSIONS = 8
INPUT_OVERHEAD = 3
THREAD_STACK_BYTES = 512 * 1024
SWITCH_INTERVAL = 0.2

ANTHROPIC_MODELS = [
    ("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
]
OPENAI_MODELS = [
    ("gpt-4o-mini", 1721172741),
    ("gpt-4.1", 1744316542),
    ("text-embedding-3-small", 1705948997),
]

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
OPENAI_ERRORS = {  # status -> (type, code)
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", None),
    409: ("invalid_request_error", None),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}

REASONS = {529: "Overloaded"}

ROUTES = {
    ("POST", "/v1/messages"): "anthropic_messages",
    ("POST", "/v1/messages/count_tokens"): "anthropic_count_tokens",
    ("POST", "/v1/chat/completions"): "openai_chat",
    ("POST", "/v1/responses"): "openai_responses",
    ("POST", "/v1/embeddings"): "openai_embeddings",
    ("GET", "/v1/models"): "models_list",
}


class AbortConnection(Exception):
    """Raised after the stand-in deliberately aborted a connection."""


class ClientGone(Exception):
    """The client closed the connection while we were writing."""


# --------------------------------------------------------------------------------------------
# request recording


class Recorder:
    """Lock-free under the GIL: deque.append/clear, list(deque) and next(count) are atomic in
    CPython. (A threading.Lock here made thousands of handler threads convoy on lock + GIL.)"""

    def __init__(self, max_records: int):
        self._records: collections.deque = collections.deque(maxlen=max_records)
        self._seq = itertools.count(1)

    def add(self, method: str, path: str, headers, body: bytes, client: str) -> dict:
        try:
            body_json = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            body_json = None
        rec = {
            "seq": 0,
            "time": time.time(),
            "client": client,
            "method": method,
            "path": path,
            "headers": [[k, v] for k, v in headers.items()],
            "header_map": {k.lower(): v for k, v in headers.items()},
            "body_base64": base64.b64encode(body).decode("ascii"),
            "body_text": body.decode("utf-8", errors="replace"),
            "body_json": body_json,
            # filled in when the answer is decided (keys exist up front so that a concurrent
            # GET /_standin/requests never sees the dict change size)
            "response_status": None,
            "response_request_id": None,
        }
        rec["seq"] = next(self._seq)
        self._records.append(rec)
        return rec

    def dump(self) -> bytes:
        snapshot = list(self._records)
        snapshot.sort(key=lambda r: r["seq"])  # newest last
        return json.dumps(snapshot, ensure_ascii=False).encode("utf-8")

    def reset(self) -> None:
        self._records.clear()


class LogFile:
    """One JSON line per request, written by a single writer thread (no lock convoy)."""

    def __init__(self, path: str | None):
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._fh = open(path, "a", encoding="utf-8") if path else None
        self._thread = None
        if self._fh is not None:
            self._thread = threading.Thread(target=self._run, name="standin-log", daemon=True)
            self._thread.start()

    def write(self, obj: dict) -> None:
        if self._fh is not None:
            self._q.put(obj)

    def _run(self) -> None:
        while True:
            obj = self._q.get()
            if obj is None:
                break
            self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            if self._q.empty():
                self._fh.flush()
        self._fh.flush()

    def close(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(5)


# --------------------------------------------------------------------------------------------
# token helpers


def words(s: str) -> int:
    return len(s.split())


def collect_text(value, out: list) -> None:
    """Collect the text strings of message content (string, list of blocks/parts, nested content)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            collect_text(item, out)
    elif isinstance(value, dict):
        t = value.get("text")
        if isinstance(t, str):
            out.append(t)
        if "content" in value:
            collect_text(value["content"], out)


def anthropic_texts(body: dict) -> list:
    out: list = []
    collect_text(body.get("system"), out)
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            collect_text(m.get("content"), out)
    return out


def chat_texts(body: dict) -> list:
    out: list = []
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            collect_text(m.get("content"), out)
    return out


def responses_texts(body: dict) -> list:
    out: list = []
    if isinstance(body.get("instructions"), str):
        out.append(body["instructions"])
    inp = body.get("input")
    if isinstance(inp, str):
        out.append(inp)
    elif isinstance(inp, list):
        for item in inp:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                collect_text(item.get("content"), out)
                if item.get("type") in ("input_text", "output_text") and isinstance(item.get("text"), str):
                    out.append(item["text"])
    return out


def input_tokens_of(texts: list) -> int:
    return sum(words(t) for t in texts) + INPUT_OVERHEAD


def last_user_text(messages) -> str:
    if isinstance(messages, str):
        return messages
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role", "user") == "user":
            out: list = []
            collect_text(m.get("content"), out)
            return " ".join(out)
    return ""


def embedding_vector(text: str, dims: int) -> list:
    out: list = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode("utf-8")).digest()
        out.extend((b - 128) / 128.0 for b in digest)
        counter += 1
    return out[:dims]


def rfc3339(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


# --------------------------------------------------------------------------------------------
# the body writer: chunked SSE with split / pause / reset controls


class BodyWriter:
    def __init__(self, handler: "Handler", opts: dict):
        self.h = handler
        self.split = opts["chunk_split"]
        self.chunk_size = max(1, opts["chunk_size"])
        self.pause_first = opts["pause_after_first_event"]
        self.reset_after = opts["reset_after_events"]
        self.reset_mode = opts["reset_mode"]
        self.interval = opts["event_interval"]
        self.events = 0
        self.chunked = handler.request_version != "HTTP/1.0"  # 1.0 clients: raw body, then close

    def _raw(self, data: bytes) -> None:
        try:
            self.h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError) as e:
            raise ClientGone() from e

    def _chunk(self, data: bytes) -> None:
        if not data:
            return
        pieces = [data]
        if self.split:
            pieces = [data[i : i + self.chunk_size] for i in range(0, len(data), self.chunk_size)]
        for piece in pieces:
            self._raw(b"%x\r\n%s\r\n" % (len(piece), piece) if self.chunked else piece)

    def event(self, payload: bytes) -> None:
        self._chunk(payload)
        self.events += 1
        if self.events == 1 and self.pause_first > 0:
            time.sleep(self.pause_first)
        if self.reset_after is not None and self.events >= self.reset_after:
            self.abort()

    def sse(self, event: str | None, data) -> None:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if event is None:
            self.event(f"data: {text}\n\n".encode("utf-8"))
        else:
            self.event(f"event: {event}\ndata: {text}\n\n".encode("utf-8"))

    def delta_pause(self, index: int) -> None:
        if index > 0 and self.interval > 0:
            time.sleep(self.interval)

    def finish(self) -> None:
        if self.reset_after is not None:
            # asked for a reset but the stream had fewer events: still cut before the end
            self.abort()
        if self.chunked:
            self._raw(b"0\r\n\r\n")
        else:
            self.h.close_connection = True

    def abort(self) -> None:
        sock = self.h.connection
        try:
            if self.reset_mode == "rst":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass
        raise AbortConnection()


# --------------------------------------------------------------------------------------------
# HTTP handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "standin/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # each SSE write leaves at once
    timeout = 300  # idle keep-alive connections are closed after this many seconds

    # ---- plumbing -------------------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 - silence stderr access log
        pass

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _hdr(self, name: str, default=None):
        v = self.headers.get(name)
        return default if v is None else v.strip()

    def _float(self, name: str, default: float) -> float:
        try:
            return float(self._hdr(name, default))
        except (TypeError, ValueError):
            return default

    def _int(self, name: str, default):
        v = self._hdr(name)
        if v is None:
            return default
        try:
            return int(float(v))
        except ValueError:
            return default

    def _truthy(self, name: str) -> bool:
        return (self._hdr(name, "") or "").lower() in ("1", "true", "yes", "on")

    def _opts(self) -> dict:
        mode = (self._hdr("x-standin-reset-mode", "fin") or "fin").lower()
        return {
            "chunk_split": self._truthy("x-standin-chunk-split"),
            "chunk_size": self._int("x-standin-chunk-size", DEFAULT_CHUNK_SIZE),
            "pause_after_first_event": self._float("x-standin-pause-after-first-event", 0.0),
            "reset_after_events": self._int("x-standin-reset-after-events", None),
            "reset_mode": "rst" if mode == "rst" else "fin",
            "event_interval": self._float("x-standin-event-interval", 0.0),
            "events": max(0, self._int("x-standin-events", DEFAULT_EVENTS)),
            "stream_error": self._hdr("x-standin-stream-error"),
            "echo": self._truthy("x-standin-echo"),
            "gzip": self._truthy("x-standin-gzip"),
            "break_plain_after": self._int("x-standin-break-plain-after", None),
            "cache_read": max(0, self._int("x-standin-cache-read", 0)),
            "cache_write": max(0, self._int("x-standin-cache-write", 0)),
        }

    def _common_headers(self, provider: str) -> list:
        h = self._provider_headers(provider)
        if self._truthy("x-standin-echo-credentials"):
            # A careless provider or middlebox: the credentials it received come back, with a hop-by-hop
            # header named in Connection.
            h += [("x-api-key", self._hdr("x-api-key", "") or ""), ("authorization", self._hdr("authorization", "") or ""),
                  ("proxy-authorization", "Basic c3RhbmRpbjpzZWNyZXQ="), ("connection", "x-hop-secret"), ("x-hop-secret", "1")]
        return h

    def _provider_headers(self, provider: str) -> list:
        now = datetime.now(timezone.utc)
        if provider == "anthropic":
            self._request_id = "req_" + uuid.uuid4().hex[:24]
            reset = rfc3339(now + timedelta(seconds=1))
            h = [("request-id", self._request_id), ("anthropic-organization-id", "00000000-0000-4000-8000-00000057a4d1")]
            for kind, limit in (("requests", 4000), ("tokens", 2000000), ("input-tokens", 1600000), ("output-tokens", 400000)):
                h += [
                    (f"anthropic-ratelimit-{kind}-limit", str(limit)),
                    (f"anthropic-ratelimit-{kind}-remaining", str(limit - 1)),
                    (f"anthropic-ratelimit-{kind}-reset", reset),
                ]
            return h
        self._request_id = "req_" + uuid.uuid4().hex
        return [
            ("x-request-id", self._request_id),
            ("openai-organization", "standin-org"),
            ("openai-processing-ms", "1"),
            ("openai-version", "2020-10-01"),
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-reset-requests", "6ms"),
            ("x-ratelimit-limit-tokens", "10000000"),
            ("x-ratelimit-remaining-tokens", "9999990"),
            ("x-ratelimit-reset-tokens", "0s"),
        ]

    def version_string(self) -> str:
        return self.server_version

    def _send_head(self, status: int, headers: list) -> None:
        self._head_sent = True
        self.send_response(status, REASONS.get(status))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()

    def _send_json(self, status: int, obj, provider: str | None, extra: list | None = None, opts: dict | None = None) -> None:
        headers = list(self._common_headers(provider)) if provider else []
        if isinstance(obj, dict) and obj.get("type") == "error" and "request_id" in obj:
            obj["request_id"] = self._request_id  # Anthropic errors carry the request id
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers.append(("content-type", "application/json"))
        if opts and opts.get("gzip"):
            body = gzip.compress(body)
            headers.append(("content-encoding", "gzip"))
        headers.append(("content-length", str(len(body))))
        headers += extra or []
        self._status = status
        self._send_head(status, headers)
        if opts and opts.get("break_plain_after") is not None:
            # A provider breaking off a plain answer: the head promises the whole body, part comes.
            self.wfile.write(body[: opts["break_plain_after"]])
            self.wfile.flush()
            sock = self.connection
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass
            raise AbortConnection()
        if opts and opts.get("chunk_split"):
            size = max(1, opts["chunk_size"])
            for i in range(0, len(body), size):
                self.wfile.write(body[i : i + size])
        else:
            self.wfile.write(body)

    def _start_stream(self, provider: str) -> BodyWriter:
        headers = self._common_headers(provider) + [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
        ]
        if self.request_version != "HTTP/1.0":
            headers.append(("transfer-encoding", "chunked"))
        else:
            headers.append(("connection", "close"))
        self._status = 200
        self._send_head(200, headers)
        return BodyWriter(self, self._opts_cache)

    # ---- errors ---------------------------------------------------------------------------

    def _error_body(self, provider: str, status: int, message: str | None = None, etype: str | None = None, code=None):
        message = self._hdr("x-standin-error-message") or message or f"stand-in simulated HTTP {status}"
        if provider == "anthropic":
            et = self._hdr("x-standin-error-type") or etype or ANTHROPIC_ERROR_TYPES.get(
                status, "api_error" if status >= 500 else "invalid_request_error"
            )
            return {"type": "error", "error": {"type": et, "message": message}, "request_id": None}
        dtype, dcode = OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        return {
            "error": {
                "message": message,
                "type": self._hdr("x-standin-error-type") or etype or dtype,
                "param": None,
                "code": self._hdr("x-standin-error-code") or code or dcode,
            }
        }

    def _send_error(self, provider: str, status: int, message: str | None = None, etype: str | None = None, code=None) -> None:
        body = self._error_body(provider, status, message, etype, code)
        extra = []
        ra = self._hdr("x-standin-retry-after")
        if ra:
            extra.append(("retry-after", ra))
        ram = self._hdr("x-standin-retry-after-ms")
        if ram:
            extra.append(("retry-after-ms", ram))
        sr = self._hdr("x-standin-should-retry")
        if sr:
            extra.append(("x-should-retry", sr.lower()))
        self._send_json(status, body, provider, extra)

    # ---- dispatch -------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _route(self, method: str, path: str):
        for (m, suffix), name in ROUTES.items():
            if path == suffix or (path.endswith(suffix) and not path[: -len(suffix)].endswith("/v1")):
                if m == method:
                    return name, None
                return None, 405
        models = "/v1/models/"
        idx = path.rfind(models)
        if idx >= 0 and method == "GET" and not path[:idx].endswith("/v1") and "/" not in path[idx + len(models):]:
            return "models_get", None
        return None, 404

    def _provider_for(self, route: str | None, path: str) -> str:
        if route in ("anthropic_messages", "anthropic_count_tokens"):
            return "anthropic"
        if route in ("openai_chat", "openai_responses", "openai_embeddings"):
            return "openai"
        if self.headers.get("anthropic-version") is not None or "/messages" in path:
            return "anthropic"
        return "openai"

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        self._status = None
        self._request_id = None
        self._head_sent = False
        rec = None
        provider = "openai"
        raw_path = self.path
        path = urlsplit(raw_path).path
        try:
            body = self._read_body()
            if path.startswith("/_standin/"):
                self._own(method, path, body)
                return
            rec = self.server.recorder.add(method, raw_path, self.headers, body, self.client_address[0])
            self._opts_cache = opts = self._opts()
            route, err = self._route(method, path)
            provider = self._provider_for(route, path)

            delay = self._float("x-standin-delay", 0.0)
            if delay > 0:
                time.sleep(delay)

            if err is not None:
                self._send_error(provider, err, f"Invalid URL ({method} {path})" if provider == "openai"
                                 else f"stand-in: no route for {method} {path}")
                return
            forced = self._int("x-standin-status", None)
            if forced is not None and forced != 200:
                self._send_error(provider, forced)
                return

            req = None
            if method == "POST":
                try:
                    req = json.loads(body) if body else None
                except (ValueError, UnicodeDecodeError):
                    req = None
                if not isinstance(req, dict):
                    self._send_error(provider, 400, "stand-in: the request body is not a JSON object")
                    return
                if not isinstance(req.get("model"), str):
                    self._send_error(provider, 400, "model: field required")
                    return
            getattr(self, "_h_" + route)(req or {}, opts, urlsplit(raw_path).query)
        except AbortConnection:
            self.close_connection = True
        except ClientGone:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as e:  # a stand-in bug: answer 500 in the provider's shape if we still can
            self.close_connection = True
            sys.stderr.write(f"standin: internal error on {method} {raw_path}: {e!r}\n")
            if not self._head_sent:
                try:
                    self._send_error(provider, 500, f"stand-in internal error: {e!r}")
                except OSError:
                    pass
        finally:
            if rec is not None:
                rec["response_status"] = self._status
                rec["response_request_id"] = self._request_id
                self.server.logfile.write({
                    "time": time.time(), "method": method, "path": raw_path, "status": self._status,
                    "ms": round((time.monotonic() - started) * 1000, 1),
                })

    def _own(self, method: str, path: str, body: bytes) -> None:
        if path == "/_standin/health" and method == "GET":
            self._send_json(200, {"status": "ok"}, None)
        elif path == "/_standin/requests" and method == "GET":
            payload = self.server.recorder.dump()
            self._status = 200
            self._send_head(200, [("content-type", "application/json"), ("content-length", str(len(payload)))])
            self.wfile.write(payload)
        elif path == "/_standin/reset" and method == "POST":
            self.server.recorder.reset()
            self._send_json(200, {"status": "reset"}, None)
        else:
            self._send_json(404, {"error": {"message": f"no stand-in endpoint {method} {path}", "type": "not_found"}}, None)

    # ---- answer ---------------------------------------------------------------------------

    @staticmethod
    def _answer(opts: dict, echo_source: str, max_tokens) -> tuple[list, bool]:
        """Return (list of delta strings, truncated?)."""
        if opts["echo"]:
            ws = echo_source.split() or ["(empty)"]
        else:
            ws = [ANSWER_WORDS[i % len(ANSWER_WORDS)] for i in range(opts["events"])]
        truncated = False
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 <= max_tokens < len(ws):
            ws = ws[:max_tokens]
            truncated = True
        return [w if i == 0 else " " + w for i, w in enumerate(ws)], truncated

    # ---- Anthropic ------------------------------------------------------------------------

    def _anthropic_usage(self, inp: int, out: int, opts: dict) -> dict:
        return {
            "input_tokens": inp,
            "cache_creation_input_tokens": opts["cache_write"],
            "cache_read_input_tokens": opts["cache_read"],
            "output_tokens": out,
            "service_tier": "standard",
        }

    def _h_anthropic_messages(self, req: dict, opts: dict, query: str) -> None:
        inp = input_tokens_of(anthropic_texts(req))
        deltas, truncated = self._answer(opts, last_user_text(req.get("messages")), req.get("max_tokens"))
        text = "".join(deltas)
        out = words(text)
        stop = "max_tokens" if truncated else "end_turn"
        model = req["model"]
        msg_id = new_id("msg_01")
        if not req.get("stream"):
            self._send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": stop, "stop_sequence": None,
                "usage": self._anthropic_usage(inp, out, opts),
            }, "anthropic", opts=opts)
            return
        w = self._start_stream("anthropic")
        start_usage = self._anthropic_usage(inp, 1, opts)
        w.sse("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        w.sse("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}})
        w.sse("ping", {"type": "ping"})
        for i, d in enumerate(deltas):
            w.delta_pause(i)
            w.sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": d}})
            if i == 0 and opts["stream_error"]:
                et = opts["stream_error"]
                w.sse("error", {"type": "error", "error": {"type": et, "message": _error_message(et)},
                                "request_id": self._request_id})
                w.finish()
                return
        w.sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        w.sse("message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"input_tokens": inp,
                                          "cache_creation_input_tokens": opts["cache_write"],
                                          "cache_read_input_tokens": opts["cache_read"],
                                          "output_tokens": out}})
        w.sse("message_stop", {"type": "message_stop"})
        w.finish()

    def _h_anthropic_count_tokens(self, req: dict, opts: dict, query: str) -> None:
        self._send_json(200, {"input_tokens": input_tokens_of(anthropic_texts(req))}, "anthropic", opts=opts)

    # ---- models ---------------------------------------------------------------------------

    def _anthropic_model(self, m) -> dict:
        return {"type": "model", "id": m[0], "display_name": m[1], "created_at": m[2]}

    def _openai_model(self, m) -> dict:
        return {"id": m[0], "object": "model", "created": m[1], "owned_by": "openai"}

    def _h_models_list(self, req: dict, opts: dict, query: str) -> None:
        if self._provider_for("models_list", "") == "anthropic":
            q = parse_qs(query)
            try:
                limit = max(1, min(1000, int(q.get("limit", ["20"])[0])))
            except ValueError:
                limit = 20
            ids = [m[0] for m in ANTHROPIC_MODELS]
            models = list(ANTHROPIC_MODELS)
            if "after_id" in q and q["after_id"][0] in ids:
                models = models[ids.index(q["after_id"][0]) + 1 :]
                page = models[:limit]
                has_more = len(models) > limit
            elif "before_id" in q and q["before_id"][0] in ids:
                models = models[: ids.index(q["before_id"][0])]
                page = models[-limit:]
                has_more = len(models) > limit
            else:
                page = models[:limit]
                has_more = len(models) > limit
            data = [self._anthropic_model(m) for m in page]
            self._send_json(200, {"data": data, "has_more": has_more,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None}, "anthropic", opts=opts)
            return
        self._send_json(200, {"object": "list", "data": [self._openai_model(m) for m in OPENAI_MODELS]},
                        "openai", opts=opts)

    def _h_models_get(self, req: dict, opts: dict, query: str) -> None:
        model_id = urlsplit(self.path).path.rsplit("/", 1)[-1]
        provider = self._provider_for("models_get", "")
        if provider == "anthropic":
            for m in ANTHROPIC_MODELS:
                if m[0] == model_id:
                    self._send_json(200, self._anthropic_model(m), "anthropic", opts=opts)
                    return
            self._send_error("anthropic", 404, f"model: {model_id}", "not_found_error")
            return
        for m in OPENAI_MODELS:
            if m[0] == model_id:
                self._send_json(200, self._openai_model(m), "openai", opts=opts)
                return
        self._send_error("openai", 404, f"The model '{model_id}' does not exist", None, "model_not_found")

    # ---- OpenAI chat ----------------------------------------------------------------------

    def _openai_cached(self, prompt: int, opts: dict) -> int:
        return min(opts["cache_read"], prompt)

    def _h_openai_chat(self, req: dict, opts: dict, query: str) -> None:
        prompt = input_tokens_of(chat_texts(req))
        max_tokens = req.get("max_completion_tokens", req.get("max_tokens"))
        deltas, truncated = self._answer(opts, last_user_text(req.get("messages")), max_tokens)
        text = "".join(deltas)
        completion = words(text)
        finish = "length" if truncated else "stop"
        model = req["model"]
        cid = "chatcmpl-" + uuid.uuid4().hex[:29]
        created = int(time.time())
        usage = {
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self._openai_cached(prompt, opts), "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }
        if not req.get("stream"):
            self._send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                                     "annotations": []},
                             "logprobs": None, "finish_reason": finish}],
                "usage": usage, "service_tier": "default", "system_fingerprint": "fp_standin",
            }, "openai", opts=opts)
            return
        so = req.get("stream_options")
        include_usage = isinstance(so, dict) and so.get("include_usage") is True
        w = self._start_stream("openai")

        def chunk(delta: dict, finish_reason=None) -> dict:
            c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "service_tier": "default", "system_fingerprint": "fp_standin",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
            if include_usage:
                c["usage"] = None
            return c

        w.sse(None, chunk({"role": "assistant", "content": "", "refusal": None}))
        for i, d in enumerate(deltas):
            w.delta_pause(i)
            w.sse(None, chunk({"content": d}))
            if i == 0 and opts["stream_error"]:
                et = opts["stream_error"]
                w.sse(None, {"error": {"message": _error_message(et), "type": et, "param": None, "code": et}})
                w.finish()
                return
        w.sse(None, chunk({}, finish))
        if include_usage:
            w.sse(None, {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "service_tier": "default", "system_fingerprint": "fp_standin",
                         "choices": [], "usage": usage})
        w.sse(None, "[DONE]")
        w.finish()

    # ---- OpenAI responses -----------------------------------------------------------------

    def _h_openai_responses(self, req: dict, opts: dict, query: str) -> None:
        inp = input_tokens_of(responses_texts(req))
        src = req.get("input")
        echo_src = src if isinstance(src, str) else last_user_text(src if isinstance(src, list) else [])
        deltas, truncated = self._answer(opts, echo_src, req.get("max_output_tokens"))
        text = "".join(deltas)
        out = words(text)
        rid = "resp_" + uuid.uuid4().hex
        mid = "msg_" + uuid.uuid4().hex
        created = int(time.time())
        status = "incomplete" if truncated else "completed"
        usage = {"input_tokens": inp, "input_tokens_details": {"cached_tokens": self._openai_cached(inp, opts)},
                 "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": inp + out}

        def part(t: str) -> dict:
            return {"type": "output_text", "annotations": [], "logprobs": [], "text": t}

        def item(st: str, content: list) -> dict:
            return {"id": mid, "type": "message", "status": st, "content": content, "role": "assistant"}

        def response(st: str, output: list, u) -> dict:
            return {
                "id": rid, "object": "response", "created_at": created, "status": st,
                "background": False, "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if st == "incomplete" else None,
                "instructions": req.get("instructions"), "max_output_tokens": req.get("max_output_tokens"),
                "model": req["model"], "output": output, "parallel_tool_calls": True,
                "previous_response_id": req.get("previous_response_id"),
                "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
                "store": req.get("store", True), "temperature": 1.0,
                "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
                "truncation": "disabled", "usage": u, "user": None, "metadata": req.get("metadata") or {},
            }

        if not req.get("stream"):
            self._send_json(200, response(status, [item(status, [part(text)])], usage), "openai", opts=opts)
            return
        w = self._start_stream("openai")
        seq = [0]

        def ev(name: str, payload: dict) -> None:
            payload = {"type": name, "sequence_number": seq[0], **payload}
            seq[0] += 1
            w.sse(name, payload)

        ev("response.created", {"response": response("in_progress", [], None)})
        ev("response.in_progress", {"response": response("in_progress", [], None)})
        ev("response.output_item.added", {"output_index": 0, "item": item("in_progress", [])})
        ev("response.content_part.added", {"item_id": mid, "output_index": 0, "content_index": 0, "part": part("")})
        for i, d in enumerate(deltas):
            w.delta_pause(i)
            ev("response.output_text.delta", {"item_id": mid, "output_index": 0, "content_index": 0,
                                              "delta": d, "logprobs": []})
            if i == 0 and opts["stream_error"]:
                et = opts["stream_error"]
                ev("error", {"code": et, "message": _error_message(et), "param": None})
                w.finish()
                return
        ev("response.output_text.done", {"item_id": mid, "output_index": 0, "content_index": 0,
                                         "text": text, "logprobs": []})
        ev("response.content_part.done", {"item_id": mid, "output_index": 0, "content_index": 0, "part": part(text)})
        ev("response.output_item.done", {"output_index": 0, "item": item(status, [part(text)])})
        final = "response.incomplete" if truncated else "response.completed"
        ev(final, {"response": response(status, [item(status, [part(text)])], usage)})
        w.finish()

    # ---- OpenAI embeddings ----------------------------------------------------------------

    def _h_openai_embeddings(self, req: dict, opts: dict, query: str) -> None:
        inp = req.get("input")
        if isinstance(inp, str) or (isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp)):
            inputs = [inp]
        elif isinstance(inp, list):
            inputs = inp
        else:
            self._send_error("openai", 400, "'input' is a required property")
            return
        dims = req.get("dimensions")
        dims = dims if isinstance(dims, int) and dims > 0 else DEFAULT_EMBEDDING_DIMENSIONS
        b64 = req.get("encoding_format") == "base64"
        data, tokens = [], 0
        for i, x in enumerate(inputs):
            if isinstance(x, str):
                tokens += words(x)
                key = x
            elif isinstance(x, list):
                tokens += len(x)
                key = ",".join(str(t) for t in x)
            else:
                key = json.dumps(x)
            vec = embedding_vector(key, dims)
            emb = base64.b64encode(struct.pack("<%df" % dims, *vec)).decode("ascii") if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        self._send_json(200, {"object": "list", "data": data, "model": req["model"],
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, "openai", opts=opts)


def _error_message(etype: str) -> str:
    return {"overloaded_error": "Overloaded", "api_error": "Internal server error",
            "rate_limit_error": "Rate limited"}.get(etype, f"stand-in stream error: {etype}")


# --------------------------------------------------------------------------------------------
# server


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 4096
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, AbortConnection, ClientGone, OSError)):
            return
        super().handle_error(request, client_address)


class StandinServer6(StandinServer):
    address_family = socket.AF_INET6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="AuditGate provider stand-in (Anthropic + OpenAI imitation)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = a free port")
    ap.add_argument("--port-file", help="write the chosen port here")
    ap.add_argument("--log", help="append one JSON line per request here")
    ap.add_argument("--max-records", type=int, default=100000, help="recorded requests kept (oldest dropped)")
    ap.add_argument("--switch-interval", type=float, default=SWITCH_INTERVAL,
                    help="sys.setswitchinterval (GIL hand-off period); see CONCURRENCY above")
    args = ap.parse_args(argv)
    sys.setswitchinterval(args.switch_interval)

    threading.stack_size(THREAD_STACK_BYTES)
    cls = StandinServer6 if ":" in args.host else StandinServer
    server = cls((args.host, args.port), Handler)
    server.recorder = Recorder(args.max_records)
    server.logfile = LogFile(args.log)
    port = server.server_address[1]

    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{port}\n")
        os.replace(tmp, args.port_file)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    host = args.host if ":" not in args.host else f"[{args.host}]"
    print(f"standin listening on {host}:{port}", flush=True)
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    server.logfile.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
