"""Gateway behaviour a user notices: provider prefixes, credential forms, auth modes, malformed bodies,
upstream failures and timeouts, mid-stream failures, end_user/client_ip, chunk-split streams, response
headers, operations endpoints and log hygiene, the egress proxy, and TLS upstreams (egress.ca_file,
certificate verification, CONNECT tunnels). Each proxied call's `audit.exchanges` row is checked too.

Stand-in formulas: input tokens = words of the request text + 3; the default answer is
"Hello 안녕하세요 🙂 from the" (5 output tokens).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import anthropic
import openai
import pytest

from conftest import (ANTHROPIC_PROVIDER_KEY, OPENAI_PROVIDER_KEY, REPO_ROOT, custom_config_yaml, free_port,
                      gateway_env, http, proxy_free_env, sign_server_cert, start_tls_front)
from forward_proxy import ForwardProxy
from test_sdk_compat import (ANTHROPIC_MODEL, CHAT_MODEL, DEFAULT_ANSWER, GATEWAY_ID_HEADER, NULL_OR_FALSE,
                             alice, bob, check_row, key_id, words)

# Every prompt sent from this module contains this phrase; the gateway's log must never show it.
PROMPT_SECRET = "zebra-quartz-lantern-" + uuid.uuid4().hex[:10]

# Extra gateways' log files, checked at the end of the module.
EXTRA_LOGS: list = []


def tag() -> str:
    return "behave-" + uuid.uuid4().hex[:16]


def prompt(t: str) -> str:
    return f"Please answer {PROMPT_SECRET} {t}"


def anthropic_body(t: str, **extra) -> bytes:
    body = {"model": ANTHROPIC_MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": prompt(t)}]}
    body.update(extra)
    return json.dumps(body).encode()


def chat_body(t: str, **extra) -> bytes:
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": prompt(t)}]}
    body.update(extra)
    return json.dumps(body).encode()


AJSON = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
OJSON = {"content-type": "application/json"}


def is_anthropic_error(body: dict) -> bool:
    return body.get("type") == "error" and isinstance(body.get("error"), dict) and "type" in body["error"] \
        and "message" in body["error"]


def is_openai_error(body: dict) -> bool:
    return body.get("type") != "error" and isinstance(body.get("error"), dict) and "message" in body["error"] \
        and "type" in body["error"]


def ac(stack, base_url=None, key=None, timeout=60):
    return anthropic.Anthropic(api_key=key or stack.alice_key, base_url=base_url or stack.base_url,
                               max_retries=0, timeout=timeout)


def oc(stack, base_url=None, key=None, timeout=60):
    return openai.OpenAI(api_key=key or stack.bob_key, base_url=base_url or stack.openai_base_url,
                         max_retries=0, timeout=timeout)


def remember(gw):
    EXTRA_LOGS.append(gw.log_path)
    return gw


# ------------------------------------------------------------------------------------------------
# 1. provider prefixes


def test_anthropic_prefix(stack, exchange):
    t = tag()
    client = ac(stack, base_url=stack.base_url + "/anthropic")
    raw = client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt(t)}])
    msg = raw.parse()
    assert msg.content[0].text == DEFAULT_ANSWER
    recs = stack.standin.find(t)
    assert len(recs) == 1 and recs[0]["path"] == "/v1/messages", \
        f"the provider should get /v1/messages (prefix stripped), got {[r['path'] for r in recs]}"
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), api="anthropic.messages", provider="anthropic", model=ANTHROPIC_MODEL,
              status_code=200, outcome="ok", input_tokens=msg.usage.input_tokens, output_tokens=5)


def test_openai_prefix(stack, exchange):
    t = tag()
    client = oc(stack, base_url=stack.base_url + "/openai/v1")
    raw = client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": prompt(t)}])
    comp = raw.parse()
    assert comp.choices[0].message.content == DEFAULT_ANSWER
    recs = stack.standin.find(t)
    assert len(recs) == 1 and recs[0]["path"] == "/v1/chat/completions", \
        f"the provider should get /v1/chat/completions (prefix stripped), got {[r['path'] for r in recs]}"
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **bob(stack), api="openai.chat_completions", provider="openai", model=CHAT_MODEL,
              status_code=200, outcome="ok", input_tokens=comp.usage.prompt_tokens,
              output_tokens=comp.usage.completion_tokens)


def test_wrong_provider_prefix_404(stack, exchange):
    t = tag()
    r = http("POST", stack.base_url + "/anthropic/v1/chat/completions",
             {**OJSON, "authorization": f"Bearer {stack.bob_key}"}, chat_body(t))
    assert r.status == 404, (r.status, r.body[:300])
    assert stack.standin.find(t) == [], "a 404 path must not be forwarded"
    body = r.json()
    assert is_anthropic_error(body), f"/anthropic/... should answer in the Anthropic error shape: {body}"
    rid = r.headers.get(GATEWAY_ID_HEADER)
    if rid:
        check_row(exchange(rid), **bob(stack), status_code=404, outcome="client_error")


# ------------------------------------------------------------------------------------------------
# 2. credential forms


@pytest.mark.parametrize("form", ["bearer", "bare_authorization", "x-api-key", "x-goog-api-key"])
def test_credential_forms(stack, exchange, form):
    k = stack.alice_key
    cred = {"bearer": {"authorization": f"Bearer {k}"}, "bare_authorization": {"authorization": k},
            "x-api-key": {"x-api-key": k}, "x-goog-api-key": {"x-goog-api-key": k}}[form]
    t = tag()
    r = http("POST", stack.base_url + "/v1/messages", {**AJSON, **cred}, anthropic_body(t))
    assert r.status == 200, (r.status, r.body[:300])
    assert r.json()["content"][0]["text"] == DEFAULT_ANSWER
    recs = stack.standin.find(t)
    assert len(recs) == 1
    for name, value in recs[0]["headers"]:
        assert k not in value, f"client key forwarded upstream in {name!r}"
    hm = recs[0]["header_map"]
    assert "x-goog-api-key" not in hm, hm.keys()
    assert hm.get("x-api-key") == ANTHROPIC_PROVIDER_KEY, "the provider key should be sent as x-api-key"
    assert "authorization" not in hm or ANTHROPIC_PROVIDER_KEY in hm["authorization"], hm.get("authorization")
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), status_code=200, outcome="ok",
              api="anthropic.messages")


# ------------------------------------------------------------------------------------------------
# 3. auth modes


def test_strict_guards_healthz(stack):
    r = http("GET", stack.base_url + "/healthz")
    assert r.status == 401, (r.status, r.body)
    r = http("GET", stack.base_url + "/healthz", {"x-api-key": stack.alice_key})
    assert r.status == 200 and r.json() == {"status": "ok"}, (r.status, r.body)


def test_all_except_health(stack, make_gateway, exchange):
    gw = remember(make_gateway("aeh", auth_mode="all_except_health", health_key=None))
    r = http("GET", gw.url + "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}, (r.status, r.body)
    r = http("GET", gw.url + "/readyz")
    assert r.status == 401, (r.status, r.body)
    t = tag()
    r = http("POST", gw.url + "/v1/messages", AJSON, anthropic_body(t))
    assert r.status == 401 and is_anthropic_error(r.json()), (r.status, r.body)
    assert stack.standin.find(t) == []
    rid = r.headers.get(GATEWAY_ID_HEADER)
    if rid:
        check_row(exchange(rid), status_code=401, outcome="denied")
    # with a key it works
    r = http("POST", gw.url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, anthropic_body(tag()))
    assert r.status == 200, (r.status, r.body[:300])
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), outcome="ok")
    r = http("GET", gw.url + "/readyz", {"x-api-key": stack.alice_key})
    assert r.status == 200, (r.status, r.body)


def test_auth_off_loopback(stack, make_gateway, exchange):
    gw = remember(make_gateway("off", auth_mode="off", health_key=None))
    t = tag()
    client = anthropic.Anthropic(api_key="not-a-key", base_url=gw.url, max_retries=0, timeout=60)
    # no credential at all
    r = http("POST", gw.url + "/v1/messages", AJSON, anthropic_body(t))
    assert r.status == 200, (r.status, r.body[:300])
    assert r.json()["content"][0]["text"] == DEFAULT_ANSWER
    row = exchange(r.headers.get(GATEWAY_ID_HEADER))
    check_row(row, user_id=None, status_code=200, outcome="ok")
    recs = stack.standin.find(t)
    assert len(recs) == 1 and recs[0]["header_map"].get("x-api-key") == ANTHROPIC_PROVIDER_KEY
    # an SDK with some placeholder key works too, and the placeholder is not forwarded
    t2 = tag()
    raw = client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt(t2)}])
    assert raw.parse().content[0].text == DEFAULT_ANSWER
    rec = stack.standin.find(t2)[0]
    assert all("not-a-key" not in v for _, v in rec["headers"])


def test_auth_off_on_all_interfaces_refused(stack):
    d = stack.workdir / f"gw-off-lan-{uuid.uuid4().hex[:6]}"
    d.mkdir()
    (d / "spool").mkdir()
    cfg = d / "auditgate.yaml"
    cfg.write_text(custom_config_yaml(stack, port=free_port(), chain_id="off-lan", spool_dir=d / "spool",
                                      auth_mode="off", host="0.0.0.0"))
    chk = subprocess.run([str(stack.bin_dir / "auditgate"), "check-config", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=REPO_ROOT, env=gateway_env(), timeout=60)
    out = chk.stdout + chk.stderr
    assert chk.returncode != 0, f"check-config accepted auth.mode off on 0.0.0.0:\n{out}"
    assert "auth.mode" in out, out
    text = _serve_must_refuse(stack, cfg, "with auth.mode off on 0.0.0.0")
    assert "auth.mode" in text, text


def _serve_must_refuse(stack, cfg, what: str) -> str:
    """Runs `auditgate serve --config cfg`, which must exit non-zero within 30 s; returns its output."""
    proc = subprocess.Popen([str(stack.bin_dir / "auditgate"), "serve", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=REPO_ROOT, env=gateway_env())
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        pytest.fail(f"auditgate serve kept running {what}:\n{out.decode(errors='replace')}")
    text = out.decode(errors="replace")
    assert proc.returncode != 0, text
    return text


# ------------------------------------------------------------------------------------------------
# 4. malformed JSON


def test_malformed_json_anthropic(stack, exchange):
    t = tag()
    body = ('{"model": "%s", "max_tokens": 64, "messages": [{"role": "user", "content": "%s"' % (ANTHROPIC_MODEL, t)).encode()
    r = http("POST", stack.base_url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, body)
    assert r.status == 400, (r.status, r.body[:300])
    err = r.json()
    assert is_anthropic_error(err), err
    assert err["error"]["type"] == "invalid_request_error", err
    assert stack.standin.find(t) == [], "a malformed body must not be forwarded"
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), status_code=400, outcome="client_error")


def test_malformed_json_openai(stack, exchange):
    t = tag()
    body = ('{"model": "%s", "messages": [{"role": "user", "content": "%s"}' % (CHAT_MODEL, t)).encode()
    r = http("POST", stack.base_url + "/v1/chat/completions", {**OJSON, "authorization": f"Bearer {stack.bob_key}"}, body)
    assert r.status == 400, (r.status, r.body[:300])
    err = r.json()
    assert is_openai_error(err), err
    assert err["error"]["type"] == "invalid_request_error", err
    assert stack.standin.find(t) == [], "a malformed body must not be forwarded"
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **bob(stack), status_code=400, outcome="client_error")


# ------------------------------------------------------------------------------------------------
# 5./6. upstream unreachable, slow head, long stream


def test_upstream_unreachable_502(stack, make_gateway, exchange):
    gw = remember(make_gateway("unreach", anthropic_base_url="http://127.0.0.1:1",
                               openai_base_url="http://127.0.0.1:1"))
    client = ac(stack, base_url=gw.url)
    with pytest.raises(anthropic.APIStatusError) as ei:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64,
                               messages=[{"role": "user", "content": prompt(tag())}])
    resp = ei.value.response
    assert resp.status_code == 502, (resp.status_code, resp.text)
    assert is_anthropic_error(resp.json()), resp.text
    check_row(exchange(resp.headers.get(GATEWAY_ID_HEADER)), **alice(stack), status_code=502,
              outcome="upstream_error")
    # OpenAI shape on the OpenAI side
    with pytest.raises(openai.APIStatusError) as ei2:
        oc(stack, base_url=gw.url + "/v1").chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": prompt(tag())}])
    resp = ei2.value.response
    assert resp.status_code == 502 and is_openai_error(resp.json()), (resp.status_code, resp.text)
    check_row(exchange(resp.headers.get(GATEWAY_ID_HEADER)), **bob(stack), status_code=502,
              outcome="upstream_error")


def test_expect_100_continue_is_answered(stack, exchange):
    """curl sends `Expect: 100-continue` before a larger body and waits (1 s) for the go-ahead: the
    gateway gives it at once, reads the body, and does not pass `Expect` on to the provider."""
    import socket
    t = tag()
    body = anthropic_body(t)
    host, port = stack.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nx-api-key: {stack.alice_key}\r\n"
                f"content-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
                f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n")
        sock.sendall(head.encode())
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim[:200]
        sock.sendall(body)
        answer = b""
        while b"\r\n0\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    rec = stack.standin.find(t)[0]
    assert "expect" not in rec["header_map"], rec["header_map"]
    rid = next(line.split(b":", 1)[1].strip().decode() for line in answer.split(b"\r\n")
               if line.lower().startswith(b"x-auditgate-request-id:"))
    check_row(exchange(rid), **alice(stack), status_code=200, outcome="ok")


def test_http_1_0_client_gets_a_whole_answer(stack, exchange):
    """An HTTP/1.0 client (no chunked encoding, no keep-alive): the answer is delimited by the
    connection's close, and arrives whole."""
    t = tag()
    proc = subprocess.run(
        ["curl", "-sS", "--http1.0", "-D", "-", "-H", f"x-api-key: {stack.alice_key}",
         "-H", "content-type: application/json", "-H", "anthropic-version: 2023-06-01",
         "--data-binary", anthropic_body(t).decode(), stack.base_url + "/v1/messages"],
        capture_output=True, timeout=30, env=proxy_free_env())
    assert proc.returncode == 0, proc.stderr
    head, _, body = proc.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200"), head
    assert "transfer-encoding" not in head.lower(), head
    assert json.loads(body)["content"][0]["text"] == DEFAULT_ANSWER, (head, body[:300])
    rid = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
               if line.lower().startswith("x-auditgate-request-id:"))
    check_row(exchange(rid), **alice(stack), status_code=200, outcome="ok")


def test_client_leaving_mid_stream_is_recorded_with_the_whole_usage(stack, exchange):
    """The client closes its connection after the first event of a 20-event stream: the gateway still
    reads the provider's answer to its end, and records it with the full usage and
    `client_disconnected`."""
    import socket
    t = tag()
    body = anthropic_body(t, stream=True)
    host, port = stack.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall((f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nx-api-key: {stack.alice_key}\r\n"
                      f"content-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
                      f"x-standin-events: 20\r\nx-standin-event-interval: 0.05\r\n"
                      f"content-length: {len(body)}\r\n\r\n").encode() + body)
        seen = b""
        while b"content_block_delta" not in seen:
            chunk = sock.recv(65536)
            assert chunk, seen[-300:]
            seen += chunk
    rid = next(line.split(b":", 1)[1].strip().decode() for line in seen.split(b"\r\n")
               if line.lower().startswith(b"x-auditgate-request-id:"))
    row = exchange(rid, timeout=30)
    assert row["output_tokens"] == 20, f"the rest of the answer was not read and metered: {row}"
    detail = stack.psql(f"SELECT detail FROM audit.events WHERE request_id = '{rid}' AND kind = 'response'")
    assert '"client_disconnected":true' in detail, detail


def test_pipelined_requests_are_answered_in_order(stack, exchange):
    """Two requests written back to back on one connection (HTTP/1.1 pipelining): the second waits for
    the first answer's end, then both are answered, in order, each with its own record."""
    import socket
    tags = [tag(), tag()]
    host, port = stack.base_url.removeprefix("http://").split(":")
    wire = b""
    for t in tags:
        body = anthropic_body(t)
        wire += (f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nx-api-key: {stack.alice_key}\r\n"
                 f"content-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
                 f"content-length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(wire)
        answer = b""
        while answer.count(b"\r\n0\r\n\r\n") < 2:
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {answer.count(b'HTTP/1.1 200')} answers: {answer[-300:]!r}"
            answer += chunk
    assert answer.count(b"HTTP/1.1 200") == 2, answer[:600]
    ids = [line.split(b":", 1)[1].strip().decode() for line in answer.split(b"\r\n")
           if line.lower().startswith(b"x-auditgate-request-id:")]
    assert len(ids) == 2 and ids[0] != ids[1], ids
    first, second = (stack.standin.find(t) for t in tags)
    assert len(first) == 1 and len(second) == 1, (first, second)
    for rid in ids:
        check_row(exchange(rid), **alice(stack), status_code=200, outcome="ok")


class _IdleClosingProvider:
    """A provider that closes a keep-alive connection after 0.3 s idle, without a word (as load balancers
    in front of the real APIs do), and counts the connections it accepted."""

    ANSWER = json.dumps({"id": "msg_idle", "type": "message", "role": "assistant", "model": "m",
                         "content": [{"type": "text", "text": "fine"}], "stop_reason": "end_turn",
                         "usage": {"input_tokens": 3, "output_tokens": 1}}).encode()

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        owner = self
        self.connections = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 0.3

            def setup(self):
                owner.connections += 1
                super().setup()

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(owner.ANSWER)))
                self.end_headers()
                self.wfile.write(owner.ANSWER)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        import threading
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_provider_closing_idle_connections_costs_no_call(stack, make_gateway, exchange):
    """A pooled connection the provider closed while it sat idle is dropped from the pool, not used for
    the next call (which, being a POST, would not be retried and would fail with 502)."""
    provider = _IdleClosingProvider()
    try:
        gw = remember(make_gateway("idle-close", anthropic_base_url=provider.url))
        for round in range(3):
            r = http("POST", gw.url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, anthropic_body(tag()))
            assert r.status == 200, (round, r.status, r.body[:300], gw.log(30))
            check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), status_code=200, outcome="ok")
            time.sleep(1.0)  # the provider closes the idle connection meanwhile
        assert provider.connections == 3, f"{provider.connections} connections for 3 calls: the closed ones were not dropped"
    finally:
        provider.stop()


@pytest.fixture
def slow_gw(make_gateway):
    return remember(make_gateway("fbt", first_byte_timeout_seconds=1))


def test_slow_head_504(stack, slow_gw, exchange):
    client = ac(stack, base_url=slow_gw.url)
    t0 = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as ei:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64,
                               messages=[{"role": "user", "content": prompt(tag())}],
                               extra_headers={"x-standin-delay": "3"})
    elapsed = time.monotonic() - t0
    resp = ei.value.response
    assert resp.status_code == 504, (resp.status_code, resp.text)
    assert is_anthropic_error(resp.json()), resp.text
    assert elapsed < 2.9, f"the 504 came after {elapsed:.1f} s, not after the 1 s first-byte timeout"
    check_row(exchange(resp.headers.get(GATEWAY_ID_HEADER)), **alice(stack), status_code=504,
              outcome="upstream_error")


def _stream_thirty_events(stack, client, exchange, interval: str) -> None:
    """A 30-event Anthropic stream through `client`, whole, with its exchange metered."""
    p = prompt(tag())
    with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": p}],
                                extra_headers={"x-standin-events": "30", "x-standin-event-interval": interval}) as s:
        rid = s.response.headers.get(GATEWAY_ID_HEADER)
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert len(text.split()) == 30, text
    assert final.usage.output_tokens == 30
    check_row(exchange(rid), **alice(stack), stream=True, status_code=200, outcome="ok",
              input_tokens=words(p) + 3, output_tokens=30)


def test_long_stream_is_not_a_timeout(stack, slow_gw, exchange):
    _stream_thirty_events(stack, ac(stack, base_url=slow_gw.url), exchange, interval="0.1")


# ------------------------------------------------------------------------------------------------
# 7. mid-stream failures


def test_midstream_error_event_anthropic(stack, anthropic_client, exchange):
    p = prompt(tag())
    seen = []
    rid = None
    with pytest.raises(anthropic.APIError) as ei:
        with anthropic_client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64,
                                              messages=[{"role": "user", "content": p}],
                                              extra_headers={"x-standin-stream-error": "overloaded_error"}) as s:
            rid = s.response.headers.get(GATEWAY_ID_HEADER)
            for ev in s:
                seen.append(ev.type)
    assert "overloaded" in str(ei.value).lower() or "overloaded" in repr(getattr(ei.value, "body", "")), ei.value
    row = exchange(rid)
    check_row(row, **alice(stack), stream=True, outcome="upstream_error", input_tokens=words(p) + 3)


def test_midstream_error_chunk_openai(stack, openai_client, exchange):
    rid = None
    with pytest.raises(openai.APIError):
        stream = openai_client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": prompt(tag())}], stream=True,
            extra_headers={"x-standin-stream-error": "overloaded_error"})
        rid = stream.response.headers.get(GATEWAY_ID_HEADER)
        list(stream)
    check_row(exchange(rid), **bob(stack), stream=True, outcome="upstream_error")




def test_midstream_reset_anthropic(stack, anthropic_client, exchange):
    p = prompt(tag())
    rid = None
    text = []
    raised = None
    try:
        with anthropic_client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64,
                                              messages=[{"role": "user", "content": p}],
                                              extra_headers={"x-standin-reset-after-events": "3",
                                                             "x-standin-event-interval": "0.05"}) as s:
            rid = s.response.headers.get(GATEWAY_ID_HEADER)
            for chunk in s.text_stream:
                text.append(chunk)
            s.get_final_message()
    except Exception as e:  # noqa: BLE001 - the SDK or its HTTP library raises
        raised = e
    assert "".join(text) != DEFAULT_ANSWER
    # the row first: outcome upstream_error, usage seen so far (input_tokens from message_start)
    row = exchange(rid)
    check_row(row, **alice(stack), stream=True, status_code=200, outcome="upstream_error",
              input_tokens=words(p) + 3)
    assert raised is not None, "the SDK saw a clean end of a stream the provider cut off"


def test_midstream_reset_openai(stack, openai_client, exchange):
    rid = None
    raised = None
    chunks = []
    try:
        stream = openai_client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": prompt(tag())}], stream=True,
            extra_headers={"x-standin-reset-after-events": "3", "x-standin-event-interval": "0.05"})
        rid = stream.response.headers.get(GATEWAY_ID_HEADER)
        for c in stream:
            chunks.append(c)
    except Exception as e:  # noqa: BLE001
        raised = e
    check_row(exchange(rid), **bob(stack), stream=True, status_code=200, outcome="upstream_error")
    assert raised is not None, f"the SDK saw a clean end of a stream the provider cut off ({len(chunks)} chunks)"


# ------------------------------------------------------------------------------------------------
# 8. end_user and client_ip


def test_end_user_anthropic(stack, anthropic_client, exchange):
    raw = anthropic_client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt(tag())}],
        metadata={"user_id": "u-123"})
    raw.parse()
    check_row(exchange(raw.headers.get(GATEWAY_ID_HEADER)), **alice(stack), end_user="u-123",
              client_ip="127.0.0.1", outcome="ok")


def test_end_user_openai(stack, openai_client, exchange):
    raw = openai_client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": prompt(tag())}], user="u-456")
    raw.parse()
    check_row(exchange(raw.headers.get(GATEWAY_ID_HEADER)), **bob(stack), end_user="u-456",
              client_ip="127.0.0.1", outcome="ok")


# ------------------------------------------------------------------------------------------------
# 9. chunk-split streams


def test_chunk_split_anthropic(stack, anthropic_client, exchange):
    p = prompt(tag())
    with anthropic_client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64,
                                          messages=[{"role": "user", "content": p}],
                                          extra_headers={"x-standin-chunk-split": "1"}) as s:
        rid = s.response.headers.get(GATEWAY_ID_HEADER)
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == DEFAULT_ANSWER
    assert final.usage.output_tokens == 5 and final.usage.input_tokens == words(p) + 3
    check_row(exchange(rid), **alice(stack), stream=True, outcome="ok", input_tokens=words(p) + 3, output_tokens=5)


def test_chunk_split_openai_without_include_usage(stack, openai_client, exchange):
    p = prompt(tag())
    stream = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": p}], stream=True,
        extra_headers={"x-standin-chunk-split": "1"})
    rid = stream.response.headers.get(GATEWAY_ID_HEADER)
    chunks = list(stream)
    assert all(c.choices for c in chunks), "a chunk with no choices (a usage-only chunk) reached the client"
    assert all(c.usage is None for c in chunks), "usage reached a client that did not ask for it"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == DEFAULT_ANSWER
    check_row(exchange(rid), **bob(stack), stream=True, outcome="ok", input_tokens=words(p) + 3, output_tokens=5)


# ------------------------------------------------------------------------------------------------
# 10. response headers passed back


def test_response_headers_anthropic(stack, anthropic_client, exchange):
    t = tag()
    raw = anthropic_client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt(t)}])
    raw.parse()
    rec = stack.standin.find(t)[0]
    h = raw.headers
    assert h.get("request-id") == rec["response_request_id"], dict(h)
    rl = [k for k in h.keys() if k.lower().startswith("anthropic-ratelimit-")]
    assert rl, f"no anthropic-ratelimit-* header reached the client: {dict(h)}"
    check_row(exchange(h.get(GATEWAY_ID_HEADER)), outcome="ok")


def test_response_headers_openai(stack, openai_client, exchange):
    t = tag()
    raw = openai_client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": prompt(t)}])
    raw.parse()
    rec = stack.standin.find(t)[0]
    h = raw.headers
    assert h.get("x-request-id") == rec["response_request_id"], dict(h)
    for name, want in (("x-ratelimit-limit-requests", "10000"), ("x-ratelimit-remaining-tokens", "9999990"),
                       ("x-ratelimit-reset-requests", "6ms")):
        assert h.get(name) == want, f"{name}: {h.get(name)!r}; headers: {dict(h)}"
    check_row(exchange(h.get(GATEWAY_ID_HEADER)), outcome="ok")


def test_response_headers_stream(stack, anthropic_client, exchange):
    with anthropic_client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64,
                                          messages=[{"role": "user", "content": prompt(tag())}]) as s:
        h = s.response.headers
        "".join(s.text_stream)
    assert h.get("request-id"), dict(h)
    assert any(k.lower().startswith("anthropic-ratelimit-") for k in h.keys()), dict(h)


# ------------------------------------------------------------------------------------------------
# 12. egress proxy


@pytest.fixture
def fproxy():
    p = ForwardProxy().start()
    yield p
    p.stop()


def _proxied_call(stack, gw, t):
    r = http("POST", gw.url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, anthropic_body(t))
    assert r.status == 200, (r.status, r.body[:300], gw.log(40))
    assert r.json()["content"][0]["text"] == DEFAULT_ANSWER
    assert len(stack.standin.find(t)) == 1
    return r


def _standin_target(stack) -> str:
    return stack.standin_url.removeprefix("http://")


def test_egress_proxy_configured(stack, make_gateway, fproxy, exchange):
    gw = remember(make_gateway("egress", egress_proxy=fproxy.url))
    t = tag()
    r = _proxied_call(stack, gw, t)
    served = fproxy.served
    target = _standin_target(stack)
    assert any(target in s[1] for s in served), f"the call did not go through egress.proxy; proxy served {served}"
    rec = stack.standin.find(t)[0]
    assert rec["header_map"].get("x-api-key") == ANTHROPIC_PROVIDER_KEY
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), outcome="ok", status_code=200)


def test_egress_env_no_proxy_bypasses(stack, make_gateway, fproxy, exchange):
    env = proxy_free_env()
    env["AUDITGATE_COMPAT_ANTHROPIC_KEY"] = ANTHROPIC_PROVIDER_KEY
    env["AUDITGATE_COMPAT_OPENAI_KEY"] = OPENAI_PROVIDER_KEY
    env["HTTP_PROXY"] = fproxy.url
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    gw = remember(make_gateway("egress-np", env=env))
    t = tag()
    r = _proxied_call(stack, gw, t)
    assert fproxy.served == [], f"NO_PROXY=127.0.0.1 should bypass HTTP_PROXY; proxy served {fproxy.served}"
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), outcome="ok")


def test_egress_env_http_proxy(stack, make_gateway, fproxy, exchange):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["AUDITGATE_COMPAT_ANTHROPIC_KEY"] = ANTHROPIC_PROVIDER_KEY
    env["AUDITGATE_COMPAT_OPENAI_KEY"] = OPENAI_PROVIDER_KEY
    env["HTTP_PROXY"] = fproxy.url
    gw = remember(make_gateway("egress-env", env=env))
    t = tag()
    r = _proxied_call(stack, gw, t)
    target = _standin_target(stack)
    assert any(target in s[1] for s in fproxy.served), \
        f"HTTP_PROXY without NO_PROXY should be used; proxy served {fproxy.served}"
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), outcome="ok")


# ------------------------------------------------------------------------------------------------
# 13. TLS upstreams: egress.ca_file, certificate verification, CONNECT tunnels (tls_front in conftest)


def _tls_url(front, host: str = "localhost") -> str:
    return f"https://{host}:{front.port}"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_tls_upstream_with_ca_file(stack, make_gateway, tls_front, exchange, host):
    front, ca = tls_front
    gw = remember(make_gateway("tls", anthropic_base_url=_tls_url(front, host), egress_ca_file=ca))
    # two calls: the second may reuse the pooled TLS connection
    for _ in range(2):
        t = tag()
        r = _proxied_call(stack, gw, t)
        rec = stack.standin.find(t)[0]
        assert rec["header_map"].get("x-api-key") == ANTHROPIC_PROVIDER_KEY
        assert rec["header_map"].get("host") == f"{host}:{front.port}", rec["header_map"].get("host")
        check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), api="anthropic.messages",
                  provider="anthropic", outcome="ok", status_code=200)
    assert front.handshakes >= 1 and not front.handshake_errors, (front.handshakes, front.handshake_errors)
    # SNI carries host names, never IP addresses (RFC 6066)
    want_sni = None if host[0].isdigit() else host
    assert set(front.server_names) == {want_sni}, f"SNI sent: {front.server_names}, expected {want_sni!r}"


def test_tls_upstream_through_connect_tunnel(stack, make_gateway, tls_front, fproxy, exchange):
    front, ca = tls_front
    gw = remember(make_gateway("tls-connect", anthropic_base_url=_tls_url(front), egress_ca_file=ca,
                               egress_proxy=fproxy.url))
    t = tag()
    r = _proxied_call(stack, gw, t)
    served = fproxy.served
    assert ("connect", f"localhost:{front.port}") in served, \
        f"the https upstream was not reached through a CONNECT tunnel; proxy served {served}"
    assert all(kind == "connect" for kind, _ in served), f"plaintext requests went to the proxy: {served}"
    assert front.handshakes >= 1 and not front.handshake_errors, (front.handshakes, front.handshake_errors)
    rec = stack.standin.find(t)[0]
    assert rec["header_map"].get("x-api-key") == ANTHROPIC_PROVIDER_KEY
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), outcome="ok", status_code=200)


def test_tls_upstream_wrong_name_is_refused(stack, make_gateway, throwaway_pki, exchange):
    """A certificate from the trusted CA, but for another name: hostname verification refuses it."""
    cert, key = sign_server_cert(throwaway_pki, "other-name", "other.example", "DNS:other.example")
    front = start_tls_front(stack, cert, key)
    try:
        gw = remember(make_gateway("tls-name", anthropic_base_url=_tls_url(front),
                                   egress_ca_file=throwaway_pki["ca"]))
        t = tag()
        r = http("POST", gw.url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, anthropic_body(t))
        assert r.status == 502 and is_anthropic_error(r.json()), (r.status, r.body[:300], gw.log(40))
        assert stack.standin.find(t) == [], "a certificate for other.example was accepted for localhost"
        assert front.accepted >= 1, "the gateway never connected to the TLS upstream (the 502 has another cause)"
        check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), status_code=502,
                  outcome="upstream_error")
    finally:
        front.stop()


def test_tls_upstream_unknown_ca_is_refused(stack, make_gateway, tls_front, exchange):
    front, _ = tls_front
    gw = remember(make_gateway("tls-noca", anthropic_base_url=_tls_url(front)))
    t = tag()
    r = http("POST", gw.url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, anthropic_body(t))
    assert r.status == 502, (r.status, r.body[:300], gw.log(40))
    body = r.json()
    assert is_anthropic_error(body) and body["error"]["type"] == "api_error", body
    message = body["error"]["message"]
    assert "CERTIFICATE_VERIFY_FAILED" in message, f"the 502 does not say the certificate was refused: {message}"
    assert "/" not in message.split("(", 1)[-1], f"the 502 carries a source path: {message}"
    assert stack.standin.find(t) == [], "a certificate from an unknown CA was accepted: the request reached the provider"
    assert front.accepted >= 1, "the gateway never connected to the TLS upstream (the 502 has another cause)"
    assert front.handshakes == 0, f"{front.handshakes} TLS handshakes completed with an untrusted certificate"
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), status_code=502,
              outcome="upstream_error")


def test_tls_upstream_stream(stack, make_gateway, tls_front, exchange):
    front, ca = tls_front
    gw = remember(make_gateway("tls-stream", anthropic_base_url=_tls_url(front), egress_ca_file=ca))
    client = ac(stack, base_url=gw.url)
    _stream_thirty_events(stack, client, exchange, interval="0.02")
    # and a plain default stream right after, on the same gateway (pooled TLS connection)
    with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64,
                                messages=[{"role": "user", "content": prompt(tag())}]) as s:
        rid = s.response.headers.get(GATEWAY_ID_HEADER)
        assert "".join(s.text_stream) == DEFAULT_ANSWER
    check_row(exchange(rid), **alice(stack), stream=True, status_code=200, outcome="ok", output_tokens=5)


def test_tls_ip_upstream_through_proxy_is_refused_at_start(stack, tls_front):
    """An https upstream given as an IP address behind egress.proxy: without a server name TLS would
    check the certificate against the connected address, which through a tunnel is the proxy's. The
    gateway refuses to start and says why, instead of checking the wrong address."""
    front, ca = tls_front
    d = stack.workdir / f"gw-tls-ip-proxy-{uuid.uuid4().hex[:6]}"
    d.mkdir()
    (d / "spool").mkdir()
    cfg = d / "auditgate.yaml"
    cfg.write_text(custom_config_yaml(stack, port=free_port(), chain_id="tls-ip-proxy", spool_dir=d / "spool",
                                      anthropic_base_url=_tls_url(front, "127.0.0.1"), egress_ca_file=ca,
                                      egress_proxy="http://127.0.0.1:9"))
    text = _serve_must_refuse(stack, cfg, "with an IP https upstream behind a proxy")
    assert "IP address" in text and "proxy" in text, text


def test_tls_upstream_host_name_starting_with_digit(stack, make_gateway, throwaway_pki, exchange):
    cert, key = sign_server_cert(throwaway_pki, "digit-name", "1host.test", "DNS:1host.test")
    front = start_tls_front(stack, cert, key)
    # the name resolves nowhere: reach it through the proxy, which maps it to 127.0.0.1
    proxy = ForwardProxy(resolve={"1host.test": "127.0.0.1"}).start()
    try:
        gw = remember(make_gateway("tls-digit", anthropic_base_url=f"https://1host.test:{front.port}",
                                   egress_ca_file=throwaway_pki["ca"], egress_proxy=proxy.url))
        t = tag()
        r = _proxied_call(stack, gw, t)
        assert front.server_names == ["1host.test"], f"SNI sent: {front.server_names}"
        check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), outcome="ok", status_code=200)
    finally:
        proxy.stop()
        front.stop()


# ------------------------------------------------------------------------------------------------
# 11. operations (last: the log check covers every call above)


def test_readyz(stack):
    r = http("GET", stack.base_url + "/readyz", {"x-api-key": stack.alice_key})
    assert r.status == 200, (r.status, r.body)
    assert '"durability":"spool"' in r.body.decode().replace(" ", ""), r.body


def test_metrics(stack, anthropic_client, openai_client):
    anthropic_client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64,
                                     messages=[{"role": "user", "content": prompt(tag())}])
    openai_client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": prompt(tag())}])
    r = http("GET", stack.base_url + "/metrics", {"x-api-key": stack.alice_key})
    assert r.status == 200, (r.status, r.body[:300])
    text = r.body.decode()
    for name in ("auditgate_calls_total", "auditgate_latency_ms", "auditgate_spool_bytes"):
        assert name in text, f"{name} missing from /metrics:\n{text[:3000]}"
    token_lines = [ln for ln in text.splitlines() if not ln.startswith("#") and "token" in ln.split("{")[0].split(" ")[0]]
    assert token_lines, f"no token counter in /metrics:\n{text[:3000]}"
    assert any(float(ln.rsplit(" ", 1)[1]) > 0 for ln in token_lines), token_lines


def test_metrics_token_counters_per_team(stack, anthropic_client, exchange):
    raw = anthropic_client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt(tag())}])
    raw.parse()
    check_row(exchange(raw.headers.get(GATEWAY_ID_HEADER)), team_id="risk", outcome="ok")
    text = http("GET", stack.base_url + "/metrics", {"x-api-key": stack.alice_key}).body.decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("auditgate_input_tokens_total{")]
    assert any('team="risk"' in ln and f'model="{ANTHROPIC_MODEL}"' in ln for ln in lines), lines


def _log_leaks(text: str, stack) -> list:
    found = []
    for label, secret in (("alice client key", stack.alice_key), ("bob client key", stack.bob_key),
                          ("anthropic provider key", ANTHROPIC_PROVIDER_KEY),
                          ("openai provider key", OPENAI_PROVIDER_KEY), ("prompt text", PROMPT_SECRET)):
        for line in text.splitlines():
            if secret in line:
                found.append(f"{label}: {line[:300]}")
                break
    return found


def test_session_log_has_no_secrets_or_prompts(stack):
    text = stack.log_path.read_text(errors="replace")
    assert text.strip(), "the session gateway's log is empty"
    leaks = _log_leaks(text, stack)
    assert not leaks, "the gateway log shows:\n" + "\n".join(leaks)


def test_extra_gateway_logs_have_no_secrets_or_prompts(stack):
    leaks = []
    for p in EXTRA_LOGS:
        leaks += [f"{p.parent.name}: {l}" for l in _log_leaks(p.read_text(errors="replace"), stack)]
    assert not leaks, "extra gateways' logs show:\n" + "\n".join(leaks)
