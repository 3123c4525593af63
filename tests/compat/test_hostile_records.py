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
