"""Records complete, private and shippable whatever a client or provider sends (issue 11).

Each test sends the hostile bytes through the running gateway and checks what the client sees, the
row in `audit.exchanges`, and that the store keeps taking records and verifies afterwards.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

from conftest import REPO_ROOT, http, proxy_free_env, report_verify, verified_chain
from test_sdk_compat import ANTHROPIC_MODEL, CHAT_MODEL, GATEWAY_ID_HEADER, alice, bob, check_row

AJSON = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
OJSON = {"content-type": "application/json"}
REPLACEMENT = "\ufffd"


def tag() -> str:
    return "hostile-" + uuid.uuid4().hex[:12]


def verify_both(stack) -> None:
    """`auditgate-report verify` and the independent verifier both find the gateway's chain intact."""
    swift = report_verify(stack.bin_dir, stack.db_url)
    assert swift.returncode == 0, swift.stdout + swift.stderr
    assert verified_chain(swift.stdout, "compat") is not None, swift.stdout
    python = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "verify_chain.py"), "--database", stack.db_url, "--chain-id", "compat"],
        capture_output=True, text=True, env=proxy_free_env(), timeout=300)
    assert python.returncode == 0 and re.search(r"^OK: 1 chain\(s\)", python.stdout, re.M), python.stdout + python.stderr


def test_nul_in_every_recorded_value_ships_and_the_gateway_keeps_serving(stack, exchange):
    """`\\u0000` in the model (echoed by the provider in its own `model`), in Anthropic's
    `metadata.user_id` and in OpenAI's `user` once stopped the store for good (SQLSTATE 22021)."""
    t = tag()
    body = ('{"model":"claude\\u0000x","max_tokens":16,"messages":[{"role":"user","content":"%s"}],'
            '"metadata":{"user_id":"u\\u0000ser"}}' % t).encode()
    r = http("POST", stack.base_url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, body)
    assert r.status == 200, r
    assert r.json()["model"] == "claude\u0000x", "the provider's answer reaches the client unchanged"
    assert stack.standin.find(t)[0]["body_text"] == body.decode(), "the body goes upstream byte for byte"
    row = exchange(r.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), model=f"claude{REPLACEMENT}x", end_user=f"u{REPLACEMENT}ser", outcome="ok",
              status_code=200)

    r = http("POST", stack.openai_base_url + "/chat/completions", {**OJSON, "authorization": f"Bearer {stack.bob_key}"},
             json.dumps({"model": CHAT_MODEL, "user": "a\u0000b", "messages": [{"role": "user", "content": tag()}]}).encode())
    assert r.status == 200, r
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **bob(stack), end_user=f"a{REPLACEMENT}b", outcome="ok")

    # A raw NUL byte and bytes that are not UTF-8 in a body the gateway cannot parse: refused as the
    # provider would refuse it, and recorded.
    r = http("POST", stack.base_url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key},
             b'{"model":"' + ANTHROPIC_MODEL.encode() + b'","max_tokens":1,"messages":[{"role":"user","content":"\x00\xff\xfe"}]}')
    assert r.status in (200, 400), r
    exchange(r.headers.get(GATEWAY_ID_HEADER))

    # The store still takes every later record, and says it is ready.
    r = http("POST", stack.base_url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key},
             json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": tag()}]}).encode())
    assert r.status == 200
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), model=ANTHROPIC_MODEL, outcome="ok")
    ready = http("GET", stack.base_url + "/readyz", {"x-api-key": stack.alice_key})
    assert ready.status == 200, ready
    assert stack.psql("SELECT count(*) FROM audit.unstorable_records").strip() == "0", \
        "sealed records are storable as text: nothing needs to be kept as bytes"
    verify_both(stack)


# ------------------------------------------------------------------------------------------------
# admission before work: the key and the declared size are checked on the head


def read_answer(sock, timeout: float = 10) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 answer from a raw socket: status, headers (lower-case names) and its body."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def connect(stack):
    import socket
    port = int(stack.base_url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def denied_rows(stack, since: str) -> list:
    out = stack.psql("SELECT outcome, status_code, path, coalesce(user_id, '') FROM audit.exchanges "
                     f"WHERE started_at > '{since}' ORDER BY started_at")
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def now(stack) -> str:
    return stack.psql("SELECT clock_timestamp()").strip()


def test_a_keyless_upload_is_refused_on_its_head_without_100_continue(stack):
    since = now(stack)
    with connect(stack) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"anthropic-version: 2023-06-01\r\nExpect: 100-continue\r\ncontent-length: 31457280\r\n\r\n")
        status, headers, body = read_answer(sock)
    assert status == 401, (status, headers)
    assert headers.get("x-should-retry") == "false" and headers.get("connection") == "close", headers
    assert json.loads(body)["error"]["type"] == "authentication_error"
    deadline = __import__("time").monotonic() + 10
    while not denied_rows(stack, since) and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.2)
    assert denied_rows(stack, since) == [("denied", "401", "/v1/messages", "")]


def test_a_declared_body_over_the_limit_gets_413_at_once(stack):
    with connect(stack) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"authorization: Bearer " + stack.bob_key.encode() + b"\r\ncontent-length: 4194304\r\n\r\n")
        status, headers, body = read_answer(sock)  # no byte of the body was sent
    assert status == 413, (status, headers)
    assert headers.get("x-should-retry") == "false"
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_a_chunked_body_stops_being_read_at_the_limit(stack):
    import select
    offered = 400 * 65536  # 25 MiB against a 1 MiB limit
    sent = 0
    with connect(stack) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"anthropic-version: 2023-06-01\r\nx-api-key: " + stack.alice_key.encode() +
                     b"\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        try:
            while sent < offered and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)  # blocks once the gateway stops reading and the buffers are full
                sent += 65536
        except OSError:
            pass
        status, headers, body = read_answer(sock)
    assert status == 413, (status, headers)
    assert headers.get("connection") == "close"
    assert json.loads(body)["error"]["type"] == "request_too_large"
    assert sent < offered, "the gateway read the whole oversized body before answering"


def test_thirty_two_keyless_30_mb_uploads_cost_no_memory(stack, make_gateway):
    """RSS stays within 50 MB of idle on a gateway that accepts 32 MiB bodies: the body of a request
    refused on its head is never read."""
    import threading
    gw = make_gateway("memory", max_body_bytes=32 * 1024 * 1024)
    pid = gw.proc.pid
    port = gw.port

    def rss_mb() -> float:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    idle = rss_mb()
    body = b"{" + b" " * (30 * 1024 * 1024 - 2) + b"}"
    peak = [idle]

    def upload():
        import socket
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n" % len(body))
                sock.sendall(body)  # as fast as the gateway takes it (it does not)
        except OSError:
            pass

    threads = [threading.Thread(target=upload) for _ in range(32)]
    for t in threads:
        t.start()
    for _ in range(20):
        peak[0] = max(peak[0], rss_mb())
        __import__("time").sleep(0.1)
    for t in threads:
        t.join(60)
    peak[0] = max(peak[0], rss_mb())
    assert peak[0] - idle < 50, f"RSS went from {idle:.0f} MB to {peak[0]:.0f} MB"
    # and the gateway still serves
    r = http("GET", gw.url + "/healthz", {"x-api-key": stack.alice_key})
    assert r.status == 200


# ------------------------------------------------------------------------------------------------
# credentials and hop-by-hop headers


def test_two_different_keys_are_refused_and_the_same_key_twice_is_one(stack, exchange):
    headers = {**AJSON, "x-api-key": stack.alice_key, "authorization": f"Bearer {stack.bob_key}"}
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": tag()}]}).encode()
    r = http("POST", stack.base_url + "/v1/messages", headers, body)
    assert r.status == 401 and "conflicting credentials" in r.json()["error"]["message"], r
    assert r.headers.get("x-should-retry") == "false"
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), outcome="denied", status_code=401, user_id=None)
    # Claude Code's apiKeyHelper sends its key in both forms.
    r = http("POST", stack.base_url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key,
                                                       "authorization": f"Bearer {stack.alice_key}"}, body)
    assert r.status == 200, r
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), outcome="ok")


def test_credentials_echoed_by_a_provider_and_connection_named_headers_do_not_cross(stack, exchange):
    t = tag()
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": t}]}).encode()
    # A raw socket: urllib replaces any Connection header with its own.
    with connect(stack) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"anthropic-version: 2023-06-01\r\nx-api-key: " + stack.alice_key.encode() +
                     b"\r\nx-standin-echo-credentials: 1\r\nconnection: keep-alive, x-client-hop\r\n"
                     b"x-client-hop: secret\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        status, headers, _ = read_answer(sock)
    assert status == 200, (status, headers)
    for name in ("x-api-key", "authorization", "proxy-authorization", "x-hop-secret"):
        assert name not in headers, f"{name} reached the client: {headers.get(name)}"
    sent = stack.standin.find(t)[0]
    names = {name.lower() for name, _ in sent["headers"]}
    assert "x-client-hop" not in names, "a header named in the client's Connection went upstream"
    check_row(exchange(headers.get(GATEWAY_ID_HEADER)), **alice(stack), outcome="ok")


def test_claude_codes_probes_get_200_and_leave_no_row(stack):
    since = now(stack)
    for path in ("/", "/api/hello"):
        r = http("HEAD", stack.base_url + path)
        assert r.status == 200, (path, r)
    r = http("GET", stack.base_url + "/v1/nowhere", {"x-api-key": stack.alice_key})
    assert r.status == 404 and r.headers.get("x-should-retry") == "false"
    __import__("time").sleep(1)
    assert [row[2] for row in denied_rows(stack, since)] == ["/v1/nowhere"], "the probes were recorded"


def test_a_key_in_the_query_string_is_a_credential_and_goes_nowhere(stack, exchange):
    t = tag()
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": t}]}).encode()
    r = http("POST", stack.base_url + f"/v1/messages?beta=true&key={stack.alice_key}", AJSON, body)
    assert r.status == 200, r
    sent = stack.standin.find(t)[0]
    assert sent["path"] == "/v1/messages?beta=true", sent["path"]
    row = exchange(r.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), path="/v1/messages?beta=true", outcome="ok")

    # Any parameter whose value is a client key is one too, and removed.
    r = http("POST", stack.base_url + f"/v1/messages?token={stack.alice_key}", AJSON, body)
    assert r.status == 200, r
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **alice(stack), path="/v1/messages", outcome="ok")

    # A wrong key there is refused, and not recorded either.
    r = http("POST", stack.base_url + "/v1/messages?api_key=agk_guessed", AJSON, body)
    assert r.status == 401 and r.headers.get("x-should-retry") == "false", r
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), path="/v1/messages", outcome="denied")
    assert "agk_guessed" not in stack.psql("SELECT string_agg(coalesce(path, ''), ' ') FROM audit.events")

    # One key in the header and another in the query: conflicting.
    r = http("POST", stack.base_url + f"/v1/messages?key={stack.bob_key}", {**AJSON, "x-api-key": stack.alice_key}, body)
    assert r.status == 401 and "conflicting credentials" in r.json()["error"]["message"], r


def test_an_http_1_0_keep_alive_client_gets_a_framed_stream_and_a_close(stack):
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "stream": True,
                       "messages": [{"role": "user", "content": tag()}]}).encode()
    with connect(stack) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.0\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"anthropic-version: 2023-06-01\r\nconnection: keep-alive\r\nx-api-key: " + stack.alice_key.encode() +
                     b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        sock.settimeout(15)
        data = b""
        while True:
            chunk = sock.recv(65536)  # a hang here is the bug: no framing and no close
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" not in head.lower(), "HTTP/1.0 has no chunked encoding"
    assert b"event: message_stop" in rest, rest[-300:]


# ------------------------------------------------------------------------------------------------
# complete records: the whole body's length and digest, truncation flagged, redaction before the cut


def body_facts(stack, request_id: str, kind: str) -> dict:
    detail = stack.psql(f"SELECT detail FROM audit.events WHERE request_id = '{request_id}' AND kind = '{kind}'").strip()
    return json.loads(detail)


def test_a_prompt_after_a_megabyte_of_whitespace_is_flagged_and_redaction_runs_before_the_cut(stack, make_gateway, exchange):
    import hashlib
    gw = make_gateway("bigbody", max_body_bytes=8 * 1024 * 1024)
    card = "4111 1111 1111 1111"
    t = tag()
    prefix = '{"model":"%s","max_tokens":8,"messages":[{"role":"user","content":"' % ANTHROPIC_MODEL
    # The card straddles the 1 MiB edge where the kept copy is cut.
    filler = "x" * (1024 * 1024 - len(prefix) - 9) + " "
    body = (prefix + filler + card + " then the real prompt " + t + '"}]' + " " * 200_000 + "}").encode()
    r = http("POST", gw.url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, body)
    assert r.status == 200, r
    assert stack.standin.find(t)[0]["body_text"].encode() == body, "the provider gets the body byte for byte"
    request_id = r.headers.get(GATEWAY_ID_HEADER)
    row = exchange(request_id)
    assert row["request_body_truncated"] is True and row["response_body_truncated"] is False, row
    facts = body_facts(stack, request_id, "request")
    assert facts == {"body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest(), "body_truncated": True}
    kept = row["request_body"]
    assert len(kept.encode()) <= 1024 * 1024 and t not in kept
    digits = re.sub(r"\D", "", kept[-40:])
    assert "111111" not in digits, f"card digits survived at the edge of the cut: {kept[-40:]!r}"
    assert row["redactions"] >= 1


def test_a_plain_answer_of_nine_megabytes_keeps_its_usage(stack, exchange):
    inputs = [f"word{i} " * 3 for i in range(320)]
    r = http("POST", stack.openai_base_url + "/embeddings", {**OJSON, "authorization": f"Bearer {stack.bob_key}"},
             json.dumps({"model": "text-embedding-3-small", "input": inputs, "dimensions": 3072}).encode(), timeout=120)
    assert r.status == 200 and len(r.body) > 8_000_000, (r.status, len(r.body))
    usage = r.json()["usage"]
    request_id = r.headers.get(GATEWAY_ID_HEADER)
    row = exchange(request_id)
    check_row(row, **bob(stack), outcome="ok", model="text-embedding-3-small", input_tokens=usage["prompt_tokens"])
    assert row["response_body_truncated"] is True
    import hashlib
    facts = body_facts(stack, request_id, "response")
    assert facts["body_bytes"] == len(r.body) and facts["body_sha256"] == hashlib.sha256(r.body).hexdigest()


def test_a_twenty_megabyte_model_name_is_forwarded_but_recorded_capped(stack, make_gateway, exchange):
    gw = make_gateway("bigmodel", max_body_bytes=32 * 1024 * 1024)
    model = "claude-" + "m" * (20 * 1024 * 1024)
    body = json.dumps({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": tag()}]}).encode()
    r = http("POST", gw.url + "/v1/messages", {**AJSON, "x-api-key": stack.alice_key}, body, timeout=120)
    assert r.status == 200, r.status
    row = exchange(r.headers.get(GATEWAY_ID_HEADER))
    assert row["model"].startswith("claude-mmm") and row["model"].endswith(f"…[{len(model)} bytes]"), row["model"][-40:]
    assert len(row["model"].encode()) < 300
    stored = stack.psql(f"SELECT max(length(model)) FROM audit.events WHERE request_id = '{row['request_id']}'").strip()
    assert int(stored) < 300


# ------------------------------------------------------------------------------------------------
# requests the HTTP parser refuses: answered in an API's shape, recorded


def raw_answer(stack, request: bytes) -> tuple[int, dict, bytes]:
    with connect(stack) as sock:
        sock.sendall(request)
        return read_answer(sock)


def test_requests_the_parser_refuses_get_an_error_body_and_a_row(stack):
    import time
    since = now(stack)
    key = stack.alice_key.encode()
    cases = [
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nx-api-key: " + key + b"\r\nno colon here\r\n\r\n", 400),
        (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + key +
         b"\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!", 400),
        (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + key +
         b"\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nx-big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    ]
    for request, expected in cases:
        status, headers, body = raw_answer(stack, request)
        assert status == expected, (request[:80], status, headers)
        error = json.loads(body)["error"]
        assert error["type"] == "invalid_request_error" and error["message"], error
        assert headers.get("x-should-retry") == "false" and headers.get("connection") == "close", headers
    deadline = time.monotonic() + 10
    rows = []
    while time.monotonic() < deadline:
        rows = [r for r in denied_rows(stack, since) if r[0] == "client_error"]
        if len(rows) >= len(cases):
            break
        time.sleep(0.2)
    assert sorted(r[1] for r in rows) == ["400", "400", "400", "431"], rows


# ------------------------------------------------------------------------------------------------
# client addresses behind load balancers, and the connection and memory limits


def send_and_answer(port: int, request: bytes) -> tuple[int, dict, bytes]:
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return read_answer(sock)


def anthropic_request(key: str, t: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": t}]}).encode()
    return (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
            b"x-api-key: " + key.encode() + b"\r\n" + extra + b"content-length: %d\r\n\r\n" % len(body) + body)


def upstream_header(stack, t: str, name: str) -> list:
    return [v for n, v in stack.standin.find(t)[0]["headers"] if n.lower() == name]


def test_forwarded_addresses_from_an_untrusted_peer_are_ignored(stack, exchange):
    t = tag()
    status, headers, _ = send_and_answer(int(stack.base_url.rsplit(":", 1)[1]), anthropic_request(
        stack.alice_key, t, b"x-forwarded-for: 203.0.113.9\r\nforwarded: for=198.51.100.1\r\nx-real-ip: 192.0.2.1\r\n"))
    assert status == 200
    check_row(exchange(headers.get(GATEWAY_ID_HEADER)), client_ip="127.0.0.1", outcome="ok")
    assert upstream_header(stack, t, "x-forwarded-for") == ["127.0.0.1"], "a client's own claim went upstream"
    assert upstream_header(stack, t, "forwarded") == [] and upstream_header(stack, t, "x-real-ip") == []


def test_behind_a_trusted_proxy_the_client_address_is_the_first_untrusted_hop(stack, make_gateway, exchange):
    gw = make_gateway("trusted", server_extra=["  trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]"])
    t = tag()
    status, headers, _ = send_and_answer(gw.port, anthropic_request(
        stack.alice_key, t, b"x-forwarded-for: 198.51.100.7, 203.0.113.9, 10.0.0.7\r\n"))
    assert status == 200
    check_row(exchange(headers.get(GATEWAY_ID_HEADER)), client_ip="203.0.113.9", outcome="ok")
    assert upstream_header(stack, t, "x-forwarded-for") == ["198.51.100.7, 203.0.113.9, 10.0.0.7, 127.0.0.1"]

    t = tag()
    status, headers, _ = send_and_answer(gw.port, anthropic_request(
        stack.alice_key, t, b'forwarded: for="[2001:db8::1]:4711";proto=https\r\n'))
    assert status == 200
    check_row(exchange(headers.get(GATEWAY_ID_HEADER)), client_ip="2001:db8::1", outcome="ok")

    t = tag()  # garbage in the chain: the last known hop is recorded, never the garbage
    status, headers, _ = send_and_answer(gw.port, anthropic_request(stack.alice_key, t, b"x-forwarded-for: <script>, 10.0.0.8\r\n"))
    assert status == 200
    check_row(exchange(headers.get(GATEWAY_ID_HEADER)), client_ip="10.0.0.8", outcome="ok")


def test_past_max_connections_a_request_gets_503_with_retry_after(stack, make_gateway):
    import socket
    gw = make_gateway("maxconn", server_extra=["  max_connections: 2"])
    held = [socket.create_connection(("127.0.0.1", gw.port), timeout=10) for _ in range(2)]
    try:
        __import__("time").sleep(0.3)
        status, headers, body = send_and_answer(gw.port, anthropic_request(stack.alice_key, tag()))
        assert status == 503 and headers.get("retry-after"), (status, headers)
        assert "connections" in json.loads(body)["error"]["message"]
    finally:
        for sock in held:
            sock.close()
    __import__("time").sleep(0.5)
    status, _, _ = send_and_answer(gw.port, anthropic_request(stack.alice_key, tag()))
    assert status == 200


def test_past_max_inflight_request_bytes_a_request_gets_503(stack, make_gateway):
    import socket
    gw = make_gateway("inflight", max_body_bytes=8 * 1024 * 1024, server_extra=["  max_inflight_request_bytes: 1048576"])
    # One upload announces 900 KB and sends it slowly; while it is held, another of 200 KB is refused.
    slow = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        slow.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"anthropic-version: 2023-06-01\r\nx-api-key: " + stack.alice_key.encode() +
                     b"\r\ncontent-length: 900000\r\n\r\n{")
        __import__("time").sleep(0.3)
        big = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "y" * 200_000}]})
        status, headers, body = send_and_answer(gw.port, (
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
            b"x-api-key: " + stack.alice_key.encode() + b"\r\ncontent-length: %d\r\n\r\n" % len(big) + big.encode()))
        assert status == 503 and headers.get("retry-after"), (status, headers)
        assert "request bodies" in json.loads(body)["error"]["message"]
    finally:
        slow.close()
    __import__("time").sleep(0.5)  # the held upload's share is given back when its connection goes
    status, _, _ = send_and_answer(gw.port, anthropic_request(stack.alice_key, tag()))
    assert status == 200


def test_a_flood_of_refused_calls_is_bounded_in_the_store_and_every_refusal_counted(stack, make_gateway):
    """300 keyless calls from one address: a few exchanges of their own, the rest in summary exchanges
    (api 'refusals') whose counts add up to every refusal."""
    import http.client
    import time
    gw = make_gateway("flood")
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    for _ in range(300):
        conn.request("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 401 and answer.getheader("x-should-retry") == "false"
    conn.close()
    chain = gw.config_path.read_text().split("chain_id: ")[1].split("\n")[0].strip('"')
    deadline = time.monotonic() + 15
    while True:
        out = stack.psql(
            "SELECT count(*) FILTER (WHERE d ? 'error'), coalesce(sum((d->>'refusals')::int), 0), "
            "coalesce(string_agg(DISTINCT d->>'reason', ','), '') "
            f"FROM (SELECT detail::jsonb AS d FROM audit.events WHERE chain_id = '{chain}' AND kind = 'response') r")
        individual, summarised, reasons = out.strip().split("|")
        individual, summarised = int(individual), int(summarised)
        if individual + summarised == 300 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert individual + summarised == 300, (individual, summarised)
    assert individual <= 5 * 4, f"{individual} exchanges of their own for one address and reason in a few seconds"
    assert reasons == "no_key", reasons
    exchanges = stack.psql(f"SELECT count(*) FROM audit.exchanges WHERE chain_id = '{chain}' AND api = 'refusals'").strip()
    assert 1 <= int(exchanges) <= 4, exchanges


def test_head_values_are_redacted_and_provider_keys_never_stored(stack, exchange):
    from conftest import ANTHROPIC_PROVIDER_KEY
    t = tag()
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 64, "metadata": {"user_id": "alice@example.com"},
                       "messages": [{"role": "user", "content": f"{t} the key is {ANTHROPIC_PROVIDER_KEY}"}]}).encode()
    r = http("POST", stack.base_url + "/v1/messages?note=bob%40example.com&beta=true",
             {**AJSON, "x-api-key": stack.alice_key, "x-standin-echo": "1"}, body)
    assert r.status == 200, r
    assert ANTHROPIC_PROVIDER_KEY in r.body.decode(), "the client still gets the answer as the provider sent it"
    row = exchange(r.headers.get(GATEWAY_ID_HEADER))
    assert "alice@example.com" not in (row["end_user"] or "") and "[REDACTED:" in row["end_user"], row["end_user"]
    assert "bob%40example.com" not in row["path"] and row["path"].endswith("beta=true"), row["path"]
    stored = stack.psql(f"SELECT string_agg(coalesce(b.body, ''), ' ') FROM audit.events e LEFT JOIN audit.bodies b "
                        f"USING (chain_id, seq, recorded_at) WHERE e.request_id = '{row['request_id']}'")
    assert ANTHROPIC_PROVIDER_KEY not in stored and "[REDACTED:provider_key]" in stored, stored[:400]
    everything = stack.psql("SELECT count(*) FROM audit.events e LEFT JOIN audit.bodies b USING (chain_id, seq, recorded_at) "
                            f"WHERE concat(e.detail, e.path, e.model, e.end_user, b.body) LIKE '%{ANTHROPIC_PROVIDER_KEY}%'")
    assert everything.strip() == "0"


def test_a_provider_breaking_off_a_plain_answer_is_an_upstream_error_the_client_notices(stack, exchange):
    """Before the head: 502 in the API's shape. After it: the client's answer is cut off too (its
    chunked framing never ends, so no client takes it as whole), and the record says upstream_error."""
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": tag()}]}).encode()
    with connect(stack) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"anthropic-version: 2023-06-01\r\nx-api-key: " + stack.alice_key.encode() +
                     b"\r\nx-standin-break-plain-after: 20\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        status, headers, rest = read_answer(sock, timeout=15)
    # Nothing had gone out when the provider broke off: a whole 502 the SDK can read.
    assert status == 502, (status, headers)
    assert json.loads(rest)["error"]["type"] == "api_error", rest
    row = exchange(headers.get(GATEWAY_ID_HEADER))
    check_row(row, outcome="upstream_error", status_code=502)
    detail = body_facts(stack, row["request_id"], "response")
    assert detail["provider_status"] == 200 and "upstream_failure" in detail, detail


# ------------------------------------------------------------------------------------------------
# timeouts: connect, TLS, first byte and idle, none capping another


def anthropic_call(url: str, key: str, headers: dict | None = None, timeout: float = 60):
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": tag()}]}).encode()
    return http("POST", url + "/v1/messages", {**AJSON, "x-api-key": key, **(headers or {})}, body, timeout=timeout)


def test_a_first_byte_timeout_longer_than_the_idle_timeout_is_honoured(stack, make_gateway, exchange):
    gw = make_gateway("slowhead", first_byte_timeout_seconds=6, upstreams_extra=["  idle_timeout_seconds: 1"])
    r = anthropic_call(gw.url, stack.alice_key, {"x-standin-delay": "2.5"})
    assert r.status == 200, (r.status, r.body[:200])
    check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), outcome="ok")
    # Past the idle timeout between two events of a stream, after the head: the idle timeout applies.
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 8, "stream": True,
                       "messages": [{"role": "user", "content": tag()}]}).encode()
    import socket
    with socket.create_connection(("127.0.0.1", gw.port), timeout=15) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"anthropic-version: 2023-06-01\r\nx-api-key: " + stack.alice_key.encode() +
                     b"\r\nx-standin-pause-after-first-event: 2.5\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert not data.endswith(b"0\r\n\r\n"), "a stream cut off by the idle timeout must not end as a whole one"
    request_id = re.search(rb"x-auditgate-request-id: (\S+)", data, re.I).group(1).decode()
    row = exchange(request_id)
    assert row["outcome"] == "upstream_error", row


def test_connect_and_tls_have_timeouts_of_their_own(stack, make_gateway, exchange):
    import socket
    import threading
    import time
    # A listener whose accept queue is full: a new connection's SYN is never answered.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", full.getsockname()[1]))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.2)
    # A listener that accepts and never says a word: a TLS handshake never completes.
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(16)
    accepted = []
    threading.Thread(target=lambda: accepted.append(mute.accept()), daemon=True).start()
    try:
        gw = make_gateway("connect-timeout", anthropic_base_url=f"http://127.0.0.1:{full.getsockname()[1]}",
                          first_byte_timeout_seconds=30, upstreams_extra=["  connect_timeout_seconds: 1"])
        started = time.monotonic()
        r = anthropic_call(gw.url, stack.alice_key)
        assert r.status == 502 and "connecting took longer than 1 s" in r.json()["error"]["message"], (r.status, r.body)
        assert time.monotonic() - started < 10
        check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), outcome="upstream_error", status_code=502)

        gw = make_gateway("tls-timeout", anthropic_base_url=f"https://127.0.0.1:{mute.getsockname()[1]}",
                          first_byte_timeout_seconds=30, upstreams_extra=["  tls_timeout_seconds: 1"])
        started = time.monotonic()
        r = anthropic_call(gw.url, stack.alice_key)
        assert r.status == 502 and "the TLS handshake took longer than 1 s" in r.json()["error"]["message"], (r.status, r.body)
        assert time.monotonic() - started < 10
    finally:
        for s in fillers:
            s.close()
        full.close()
        mute.close()


def test_an_endless_stream_its_client_left_is_read_for_the_drain_timeout_only(stack, make_gateway, exchange):
    import socket
    import time
    gw = make_gateway("drain", upstreams_extra=["  drain_timeout_seconds: 1"])
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 200000, "stream": True,
                       "messages": [{"role": "user", "content": tag()}]}).encode()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"anthropic-version: 2023-06-01\r\nx-api-key: " + stack.alice_key.encode() +
                     b"\r\nx-standin-events: 100000\r\nx-standin-event-interval: 0.01\r\n"
                     b"content-length: %d\r\n\r\n" % len(body) + body)
        seen = b""
        while b"content_block_delta" not in seen:
            seen += sock.recv(65536)
    left = time.monotonic()
    request_id = re.search(rb"x-auditgate-request-id: (\S+)", seen, re.I).group(1).decode()
    row = exchange(request_id, timeout=20)  # a 1,000 s stream: without the drain limit, no record for 1,000 s
    assert time.monotonic() - left < 10
    detail = body_facts(stack, request_id, "response")
    assert detail.get("client_disconnected") is True and detail.get("drain_cut_after_seconds") == 1, detail
    assert row["outcome"] == "client_error" and 0 < row["output_tokens"] < 100000, (row["outcome"], row["output_tokens"])


def test_the_client_idle_timeout_starts_again_after_every_answer(stack, make_gateway):
    import socket
    import time
    gw = make_gateway("idle", server_extra=["  idle_timeout_seconds: 2"])
    with socket.create_connection(("127.0.0.1", gw.port), timeout=15) as sock:
        # An answer that takes longer than the idle timeout does not count as idleness...
        sock.sendall(anthropic_request(stack.alice_key, tag(), b"x-standin-delay: 3\r\n"))
        status, _, _ = read_answer(sock, timeout=15)
        assert status == 200
        # ...and after it the whole timeout starts again: still open 1.2 s later.
        time.sleep(1.2)
        sock.sendall(anthropic_request(stack.alice_key, tag()))
        status, _, _ = read_answer(sock)
        assert status == 200
        # Idle past the timeout: the gateway closes the connection.
        time.sleep(3)
        sock.settimeout(5)
        assert sock.recv(1) == b"", "the idle connection was not closed"


def test_a_call_whose_client_left_before_it_went_out_is_not_forwarded(stack, make_gateway, exchange):
    """The provider's listener is full, so the gateway's connection waits for a SYN retry; the client
    leaves meanwhile. When the connection opens, nothing is sent on it, and the record says why."""
    import select
    import socket
    import time
    provider = socket.socket()
    provider.bind(("127.0.0.1", 0))
    provider.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", provider.getsockname()[1]))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.2)
    try:
        gw = make_gateway("gone", anthropic_base_url=f"http://127.0.0.1:{provider.getsockname()[1]}",
                          upstreams_extra=["  connect_timeout_seconds: 20"])
        t = tag()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as client:
            client.sendall(anthropic_request(stack.alice_key, t))
            client.settimeout(1.0)
            sent_at = time.monotonic()
            data = b""
            try:
                data = client.recv(100)
            except socket.timeout:
                pass
            assert data == b"", "the gateway answered while its connection to the provider could not open"
            request_id = None
        # The client has left. Free the provider's accept queue and read whatever the gateway sends.
        provider.setblocking(False)
        received = b""
        deadline = time.monotonic() + 8
        accepted = []
        while time.monotonic() < deadline:
            readable, _, _ = select.select([provider] + accepted, [], [], 0.2)
            for sock in readable:
                if sock is provider:
                    conn, _ = provider.accept()
                    accepted.append(conn)
                else:
                    chunk = sock.recv(65536)
                    received += chunk
                    if not chunk:
                        accepted.remove(sock)
        assert t.encode() not in received and b"POST" not in received, received[:200]
        out = stack.psql("SELECT request_id FROM audit.events WHERE kind = 'request' AND chain_id = "
                         f"(SELECT chain_id FROM audit.events WHERE recorded_at > now() - interval '1 minute' "
                         f"AND chain_id LIKE 'gone-%' LIMIT 1)")
        request_id = out.strip().splitlines()[-1]
        row = exchange(request_id)
        check_row(row, outcome="client_error", status_code=499)
        detail = body_facts(stack, request_id, "response")
        assert detail == {"client_disconnected": True, "forwarded": False}, detail
        assert time.monotonic() - sent_at < 20
    finally:
        for s in fillers:
            s.close()
        provider.close()


def test_readyz_says_when_the_store_takes_nothing_and_recovers(stack, make_gateway, exchange):
    import time
    gw = make_gateway("stall")
    gw.config_path.write_text(gw.config_path.read_text().replace("  durability: spool\n", "  durability: spool\n  shipper_stall_seconds: 1\n"))
    gw.stop()
    gw.start(stack.alice_key)
    stack.psql("REVOKE INSERT ON audit.events FROM auditgate_writer")
    try:
        r = anthropic_call(gw.url, stack.alice_key)
        assert r.status == 200, "calls are still taken: their records are durable in the spool"
        request_id = r.headers.get(GATEWAY_ID_HEADER)
        deadline = time.monotonic() + 15
        ready = None
        while time.monotonic() < deadline:
            ready = http("GET", gw.url + "/readyz", {"x-api-key": stack.alice_key})
            if ready.status == 503:
                break
            time.sleep(0.3)
        assert ready.status == 503, ready
        body = ready.json()
        assert body["status"] == "store_stalled" and "42501" in body["reason"] and body["backlog"] >= 2, body
        metrics = http("GET", gw.url + "/metrics", {"x-api-key": stack.alice_key}).body.decode()
        assert re.search(r"^auditgate_shipper_stalled 1(\.0)?$", metrics, re.M), metrics[:2000]
    finally:
        stack.psql("GRANT INSERT ON audit.events TO auditgate_writer")
    check_row(exchange(request_id, timeout=30), outcome="ok")
    deadline = time.monotonic() + 15
    while http("GET", gw.url + "/readyz", {"x-api-key": stack.alice_key}).status != 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert http("GET", gw.url + "/readyz", {"x-api-key": stack.alice_key}).status == 200


def test_a_provider_closing_before_its_head_is_a_502_in_the_apis_shape(stack, make_gateway, exchange):
    import socket
    import threading
    provider = socket.socket()
    provider.bind(("127.0.0.1", 0))
    provider.listen(8)

    def read_then_hang_up():
        while True:
            try:
                conn, _ = provider.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    threading.Thread(target=read_then_hang_up, daemon=True).start()
    try:
        gw = make_gateway("hangup", openai_base_url=f"http://127.0.0.1:{provider.getsockname()[1]}")
        r = http("POST", gw.url + "/v1/chat/completions", {**OJSON, "authorization": f"Bearer {stack.bob_key}"},
                 json.dumps({"model": CHAT_MODEL, "messages": [{"role": "user", "content": tag()}]}).encode())
        assert r.status == 502, (r.status, r.body)
        error = r.json()["error"]
        assert error["code"] == "bad_gateway" and "closed" in error["message"], error
        check_row(exchange(r.headers.get(GATEWAY_ID_HEADER)), **bob(stack), outcome="upstream_error", status_code=502)
    finally:
        provider.close()
