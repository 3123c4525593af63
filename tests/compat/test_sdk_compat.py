"""The official SDKs against a running AuditGate, and the audit row of every call.

Token expectations follow the stand-in's documented formulas (tools/standin/standin.py):
input = words of the request text + 3; output = words of the answer (default 5 words,
"Hello 안녕하세요 🙂 from the"); embeddings = words of the inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import anthropic
import openai
import pytest

from conftest import ANTHROPIC_PROVIDER_KEY, OPENAI_PROVIDER_KEY, http

ANTHROPIC_MODEL = "claude-sonnet-4-6"
CHAT_MODEL = "gpt-4o-mini"
EMBED_MODEL = "text-embedding-3-small"
DEFAULT_ANSWER = "Hello 안녕하세요 🙂 from the"
GATEWAY_ID_HEADER = "x-auditgate-request-id"

NULL_OR_ZERO = object()  # expectation: the column is NULL or 0
NULL_OR_FALSE = object()  # expectation: the column is NULL or false


def words(s: str) -> int:
    return len(s.split())


def marker() -> str:
    return "compat-" + uuid.uuid4().hex[:16]


def key_id(key: str) -> str:
    """config/auditgate.yaml: the key id recorded in audit rows is the first 12 hex of key_sha256."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def check_row(row: dict, **expected) -> None:
    """Every expected column at once, so one failure shows every mismatch."""
    diffs = []
    for col, want in expected.items():
        got = row.get(col, "<column missing>")
        if want is NULL_OR_ZERO:
            ok = got in (None, 0)
        elif want is NULL_OR_FALSE:
            ok = got in (None, False)
        else:
            ok = got == want
        if not ok:
            shown = {NULL_OR_ZERO: "NULL or 0", NULL_OR_FALSE: "NULL or false"}.get(want, repr(want))
            diffs.append(f"{col}: expected {shown}, got {got!r}")
    shown_row = {k: (v[:300] + "…" if isinstance(v, str) and len(v) > 300 else v) for k, v in row.items()}
    assert not diffs, "audit.exchanges row mismatch:\n  " + "\n  ".join(diffs) + f"\nrow: {json.dumps(shown_row, ensure_ascii=False)}"


def alice(stack) -> dict:
    return dict(user_id="alice", team_id="risk", key_id=key_id(stack.alice_key))


def bob(stack) -> dict:
    return dict(user_id="bob", team_id="ops", key_id=key_id(stack.bob_key))


def only_record(stack, tag: str) -> dict:
    recs = stack.standin.find(tag)
    assert len(recs) == 1, f"the stand-in received {len(recs)} requests carrying {tag}: {[r['path'] for r in recs]}"
    return recs[0]


def assert_no_client_key(rec: dict, *client_keys: str) -> None:
    for name, value in rec["headers"]:
        for k in client_keys:
            assert k not in value, f"the client key was forwarded upstream in header {name!r}"


# ------------------------------------------------------------------------------------------------
# Anthropic


def test_messages_non_stream(stack, anthropic_client, exchange):
    tag = marker()
    prompt = f"Say hello please {tag}"
    raw = anthropic_client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt}])
    msg = raw.parse()
    assert msg.content[0].text == DEFAULT_ANSWER
    assert msg.usage.input_tokens == words(prompt) + 3
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), api="anthropic.messages", provider="anthropic", method="POST", path="/v1/messages",
              model=ANTHROPIC_MODEL, stream=False, status_code=200, outcome="ok",
              input_tokens=msg.usage.input_tokens, output_tokens=msg.usage.output_tokens,
              cache_read_tokens=NULL_OR_ZERO, cache_write_tokens=NULL_OR_ZERO)
    assert row["request_body"] and tag in row["request_body"], "request_body should hold the (redacted) request"
    assert row["response_body"] and "from the" in row["response_body"], "response_body should hold the answer"
    assert row["latency_ms"] is not None and row["latency_ms"] >= 0
    assert row["chain_id"] == "compat"
    assert row["response_seq"] > row["request_seq"]


def test_messages_stream(stack, anthropic_client, exchange):
    tag = marker()
    prompt = f"Stream me something {tag}"
    with anthropic_client.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt}]
    ) as s:
        rid = s.response.headers.get(GATEWAY_ID_HEADER)
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == DEFAULT_ANSWER
    assert final.usage.input_tokens == words(prompt) + 3 and final.usage.output_tokens == 5
    row = exchange(rid)
    check_row(row, **alice(stack), api="anthropic.messages", provider="anthropic", model=ANTHROPIC_MODEL, stream=True,
              status_code=200, outcome="ok",
              input_tokens=final.usage.input_tokens, output_tokens=final.usage.output_tokens)
    assert row["ttfb_ms"] is not None


def test_messages_cache_tokens(stack, anthropic_client, exchange):
    raw = anthropic_client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": f"cache me {marker()}"}],
        extra_headers={"x-standin-cache-read": "11", "x-standin-cache-write": "7"})
    msg = raw.parse()
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, outcome="ok", input_tokens=msg.usage.input_tokens, output_tokens=msg.usage.output_tokens,
              cache_read_tokens=11, cache_write_tokens=7)


def test_count_tokens(stack, anthropic_client, exchange):
    prompt = f"How many tokens is this {marker()}"
    raw = anthropic_client.messages.with_raw_response.count_tokens(
        model=ANTHROPIC_MODEL, messages=[{"role": "user", "content": prompt}])
    counted = raw.parse()
    assert counted.input_tokens == words(prompt) + 3
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), api="anthropic.count_tokens", provider="anthropic", path="/v1/messages/count_tokens",
              model=ANTHROPIC_MODEL, stream=NULL_OR_FALSE, status_code=200, outcome="ok",
              input_tokens=counted.input_tokens, output_tokens=NULL_OR_ZERO)


def test_models_list_anthropic(stack, anthropic_client, exchange):
    raw = anthropic_client.models.with_raw_response.list()
    page = raw.parse()
    ids = [m.id for m in page.data]
    assert "claude-sonnet-4-6" in ids and all(m.type == "model" for m in page.data), ids
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), api="anthropic.models", provider="anthropic", method="GET", stream=NULL_OR_FALSE,
              status_code=200, outcome="ok", input_tokens=NULL_OR_ZERO, output_tokens=NULL_OR_ZERO)


def test_models_list_openai(stack, openai_client, exchange):
    raw = openai_client.models.with_raw_response.list()
    page = raw.parse()
    ids = [m.id for m in page.data]
    assert "gpt-4o-mini" in ids and all(m.object == "model" for m in page.data), ids
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **bob(stack), api="openai.models", provider="openai", method="GET", stream=NULL_OR_FALSE,
              status_code=200, outcome="ok", input_tokens=NULL_OR_ZERO, output_tokens=NULL_OR_ZERO)


# ------------------------------------------------------------------------------------------------
# OpenAI Chat Completions


def test_chat_non_stream(stack, openai_client, exchange):
    prompt = f"Hello chat {marker()}"
    raw = openai_client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": prompt}])
    comp = raw.parse()
    assert comp.choices[0].message.content == DEFAULT_ANSWER
    assert comp.usage.prompt_tokens == words(prompt) + 3
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **bob(stack), api="openai.chat_completions", provider="openai", path="/v1/chat/completions",
              model=CHAT_MODEL, stream=False, status_code=200, outcome="ok",
              input_tokens=comp.usage.prompt_tokens, output_tokens=comp.usage.completion_tokens)


def test_chat_stream_with_include_usage(stack, openai_client, exchange):
    prompt = f"Stream with usage {marker()}"
    stream = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": prompt}], stream=True,
        stream_options={"include_usage": True})
    rid = stream.response.headers.get(GATEWAY_ID_HEADER)
    chunks = list(stream)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == [], "the SDK must see exactly one usage chunk"
    usage = usage_chunks[0].usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_ANSWER
    row = exchange(rid)
    check_row(row, **bob(stack), api="openai.chat_completions", model=CHAT_MODEL, stream=True, status_code=200,
              outcome="ok", input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)


def test_chat_stream_without_include_usage(stack, openai_client, exchange):
    prompt = f"Stream without usage please {marker()}"
    stream = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": prompt}], stream=True)
    rid = stream.response.headers.get(GATEWAY_ID_HEADER)
    chunks = list(stream)
    bad = [c.model_dump() for c in chunks if not c.choices or c.usage is not None]
    assert not bad, f"the SDK received chunk(s) it did not ask for (empty choices / usage): {bad}"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == DEFAULT_ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"
    row = exchange(rid)
    check_row(row, **bob(stack), api="openai.chat_completions", model=CHAT_MODEL, stream=True, status_code=200,
              outcome="ok", input_tokens=words(prompt) + 3, output_tokens=words(DEFAULT_ANSWER))


# ------------------------------------------------------------------------------------------------
# OpenAI Responses and Embeddings


def test_responses_non_stream(stack, openai_client, exchange):
    prompt = f"Respond please {marker()}"
    raw = openai_client.responses.with_raw_response.create(model=CHAT_MODEL, input=prompt, instructions="Be brief")
    resp = raw.parse()
    assert resp.output_text == DEFAULT_ANSWER
    assert resp.usage.input_tokens == words(prompt) + words("Be brief") + 3
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **bob(stack), api="openai.responses", provider="openai", path="/v1/responses", model=CHAT_MODEL,
              stream=False, status_code=200, outcome="ok",
              input_tokens=resp.usage.input_tokens, output_tokens=resp.usage.output_tokens)


def test_responses_stream(stack, openai_client, exchange):
    prompt = f"Respond streaming {marker()}"
    stream = openai_client.responses.create(model=CHAT_MODEL, input=prompt, stream=True)
    rid = stream.response.headers.get(GATEWAY_ID_HEADER)
    events = list(stream)
    done = [e for e in events if e.type == "response.completed"]
    assert len(done) == 1, [e.type for e in events]
    usage = done[0].response.usage
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == DEFAULT_ANSWER
    row = exchange(rid)
    check_row(row, **bob(stack), api="openai.responses", model=CHAT_MODEL, stream=True, status_code=200, outcome="ok",
              input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


EMBED_INPUT = "the quick brown fox jumps over the lazy dog"


def test_embeddings_float(stack, openai_client, exchange):
    tag = marker()
    raw = openai_client.embeddings.with_raw_response.create(
        model=EMBED_MODEL, input=[EMBED_INPUT, tag], encoding_format="float")
    emb = raw.parse()
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
    assert emb.usage.prompt_tokens == words(EMBED_INPUT) + 1
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **bob(stack), api="openai.embeddings", provider="openai", path="/v1/embeddings", model=EMBED_MODEL,
              stream=NULL_OR_FALSE, status_code=200, outcome="ok",
              input_tokens=emb.usage.prompt_tokens, output_tokens=NULL_OR_ZERO)


def test_embeddings_base64_sdk_default(stack, openai_client, exchange):
    tag = marker()
    raw = openai_client.embeddings.with_raw_response.create(model=EMBED_MODEL, input=[EMBED_INPUT, tag])
    emb = raw.parse()
    rec = only_record(stack, tag)
    assert rec["body_json"].get("encoding_format") == "base64", "the SDK default should be base64 (test premise)"
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
    assert all(isinstance(x, float) for x in emb.data[0].embedding)
    # the stand-in's vectors depend on the text only: same input, same floats (exact in float32)
    direct = openai_client.embeddings.create(model=EMBED_MODEL, input=EMBED_INPUT, encoding_format="float")
    assert emb.data[0].embedding == direct.data[0].embedding
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **bob(stack), api="openai.embeddings", model=EMBED_MODEL, status_code=200, outcome="ok",
              input_tokens=emb.usage.prompt_tokens, output_tokens=NULL_OR_ZERO)


# ------------------------------------------------------------------------------------------------
# What reaches the provider


def test_provider_key_and_original_body_anthropic(stack, anthropic_client, exchange):
    tag = marker()
    raw = anthropic_client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=32, system="You are terse.",
        messages=[{"role": "user", "content": f"Check my key {tag} and mail me at key.check@example.com"}])
    raw.parse()
    rec = only_record(stack, tag)
    h = rec["header_map"]
    assert h.get("x-api-key") == ANTHROPIC_PROVIDER_KEY, f"x-api-key upstream: {h.get('x-api-key')!r}"
    assert "authorization" not in h or ANTHROPIC_PROVIDER_KEY in h["authorization"], h.get("authorization")
    assert_no_client_key(rec, stack.alice_key, stack.bob_key)
    assert rec["path"] == "/v1/messages"
    assert json.loads(rec["body_text"]) == json.loads(raw.http_request.content), "the provider got a different body"
    assert "key.check@example.com" in rec["body_text"], "the provider must get the unredacted body"
    exchange(raw.headers.get(GATEWAY_ID_HEADER))


def test_provider_key_and_original_body_openai(stack, openai_client, exchange):
    tag = marker()
    raw = openai_client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": f"Check my key {tag} call +1 415 555 0100"}])
    raw.parse()
    rec = only_record(stack, tag)
    h = rec["header_map"]
    assert h.get("authorization") == f"Bearer {OPENAI_PROVIDER_KEY}", f"authorization upstream: {h.get('authorization')!r}"
    assert "x-api-key" not in h, "an x-api-key header reached the OpenAI upstream"
    assert_no_client_key(rec, stack.alice_key, stack.bob_key)
    assert rec["path"] == "/v1/chat/completions"
    assert json.loads(rec["body_text"]) == json.loads(raw.http_request.content), "the provider got a different body"
    exchange(raw.headers.get(GATEWAY_ID_HEADER))


def test_anthropic_beta_header_unchanged(stack, anthropic_client, exchange):
    tag = marker()
    raw = anthropic_client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=16, messages=[{"role": "user", "content": f"beta {tag}"}],
        extra_headers={"anthropic-beta": "a-beta,b-beta"})
    raw.parse()
    rec = only_record(stack, tag)
    betas = [v for k, v in rec["headers"] if k.lower() == "anthropic-beta"]
    assert betas == ["a-beta,b-beta"], f"anthropic-beta upstream: {betas}"
    assert rec["header_map"].get("anthropic-version"), "anthropic-version must be forwarded"
    exchange(raw.headers.get(GATEWAY_ID_HEADER))


def test_query_string_kept(stack, exchange):
    tag = marker()
    body = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 16,
                       "messages": [{"role": "user", "content": f"query {tag}"}]}).encode()
    r = http("POST", stack.base_url + "/v1/messages?beta=true", {
        "x-api-key": stack.alice_key, "anthropic-version": "2023-06-01", "content-type": "application/json",
        "anthropic-beta": "claude-code-20250219"}, body)
    assert r.status == 200, f"{r.status} {r.body[:500]!r}"
    assert r.json()["content"][0]["text"] == DEFAULT_ANSWER
    rec = only_record(stack, tag)
    assert rec["path"] == "/v1/messages?beta=true", f"path upstream: {rec['path']!r}"
    row = exchange(r.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), api="anthropic.messages", model=ANTHROPIC_MODEL, status_code=200, outcome="ok",
              input_tokens=words(f"query {tag}") + 3, output_tokens=5)
    assert row["path"].startswith("/v1/messages"), row["path"]


# ------------------------------------------------------------------------------------------------
# Streaming is not buffered


def test_stream_first_event_not_buffered_anthropic(stack, anthropic_client, exchange):
    t0 = time.monotonic()
    with anthropic_client.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": f"slow {marker()}"}],
        extra_headers={"x-standin-pause-after-first-event": "1.0"},
    ) as s:
        rid = s.response.headers.get(GATEWAY_ID_HEADER)
        first_type = None
        first_at = None
        for ev in s:
            if first_at is None:
                first_at = time.monotonic() - t0
                first_type = ev.type
        total = time.monotonic() - t0
        final = s.get_final_message()
    assert first_type == "message_start"
    assert first_at < 0.9, f"first event after {first_at:.2f} s: the gateway held it back (total {total:.2f} s)"
    assert total >= 1.0, f"the whole stream took {total:.2f} s, less than the stand-in's 1.0 s pause"
    row = exchange(rid)
    check_row(row, outcome="ok", stream=True, input_tokens=final.usage.input_tokens,
              output_tokens=final.usage.output_tokens)


def test_stream_first_chunk_not_buffered_openai_chat(stack, openai_client, exchange):
    # without include_usage: the gateway's usage-chunk filter is in the path
    t0 = time.monotonic()
    stream = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": f"slow chat {marker()}"}], stream=True,
        extra_headers={"x-standin-pause-after-first-event": "1.0"})
    rid = stream.response.headers.get(GATEWAY_ID_HEADER)
    first_at = None
    for _ in stream:
        if first_at is None:
            first_at = time.monotonic() - t0
    total = time.monotonic() - t0
    assert first_at < 0.9, f"first chunk after {first_at:.2f} s: the gateway held it back (total {total:.2f} s)"
    assert total >= 1.0, f"the whole stream took {total:.2f} s"
    check_row(exchange(rid), outcome="ok", stream=True, output_tokens=5)


# ------------------------------------------------------------------------------------------------
# Redaction


def rrn_check_digit(first12: str) -> int:
    weights = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
    return (11 - sum(int(d) * w for d, w in zip(first12, weights)) % 11) % 10


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


EMAIL = "jane.doe.compat@example.com"
CARD = "4111 1111 1111 1111"
RRN_BASE = "900101-123456"
RRN = RRN_BASE + str(rrn_check_digit(RRN_BASE.replace("-", "")))
EMPLOYEE = "EMP-123456"
PII = [EMAIL, CARD, RRN, EMPLOYEE]


def spool_bytes(spool_dir: Path) -> list:
    out = []
    for root, _dirs, files in os.walk(spool_dir):
        for name in files:
            p = Path(root) / name
            try:
                out.append((p, p.read_bytes()))
            except OSError:
                pass  # shipped and removed meanwhile
    return out


def assert_not_in_spool(spool_dir: Path) -> None:
    for p, data in spool_bytes(spool_dir):
        for value in PII + [CARD.replace(" ", "")]:
            assert value.encode() not in data, f"raw {value!r} found in spool file {p}"


def test_redaction(stack, anthropic_client, exchange):
    assert luhn_valid(CARD) and RRN == "900101-1234568"
    tag = marker()
    prompt = f"{tag} customer {EMAIL} paid with {CARD} rrn {RRN} handled by {EMPLOYEE} thanks"
    raw = anthropic_client.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=200, messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-standin-echo": "1"})
    msg = raw.parse()
    # the client gets the provider's answer unchanged (the echo carries the raw values back)
    assert msg.content[0].text == " ".join(prompt.split())
    assert_not_in_spool(stack.spool_dir)  # right after the call: the request record is on disk
    rec = only_record(stack, tag)
    for value in PII:
        assert value in rec["body_text"], f"the provider did not receive {value!r} unchanged"
    row = exchange(raw.headers.get(GATEWAY_ID_HEADER))
    check_row(row, outcome="ok", input_tokens=msg.usage.input_tokens, output_tokens=msg.usage.output_tokens)
    assert row["redactions"] is not None and row["redactions"] >= 4, f"redactions = {row['redactions']}"
    assert row["request_body"] and tag in row["request_body"], "the redacted request body should still be recorded"
    bodies = stack.all_bodies_text()
    assert tag in bodies
    for value in PII:
        assert value not in bodies, f"raw {value!r} found in audit.bodies"
    assert CARD.replace(" ", "") not in bodies
    assert_not_in_spool(stack.spool_dir)


# ------------------------------------------------------------------------------------------------
# Errors


def test_unknown_key_denied(stack, exchange):
    tag = marker()
    client = anthropic.Anthropic(api_key="agk_" + "0" * 64, base_url=stack.base_url, max_retries=0, timeout=60)
    with pytest.raises(anthropic.AuthenticationError) as ei:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=16, messages=[{"role": "user", "content": tag}])
    assert ei.value.status_code == 401
    assert stack.standin.find(tag) == [], "a call with an unknown key was forwarded"
    row = exchange(ei.value.response.headers.get(GATEWAY_ID_HEADER))
    check_row(row, status_code=401, outcome="denied", user_id=None, team_id=None,
              input_tokens=NULL_OR_ZERO, output_tokens=NULL_OR_ZERO)


def test_unknown_path_404_openai_shape(stack, openai_client, exchange):
    tag = marker()
    r = http("POST", stack.base_url + "/v1/completions-nope", {
        "authorization": f"Bearer {stack.bob_key}", "content-type": "application/json"},
        json.dumps({"model": CHAT_MODEL, "prompt": tag}).encode())
    assert r.status == 404, f"{r.status} {r.body[:300]!r}"
    err = r.json()
    assert isinstance(err.get("error"), dict) and "message" in err["error"] and "type" in err["error"], err
    assert err.get("type") != "error", f"Anthropic error shape on an OpenAI-style path: {err}"
    row = exchange(r.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **bob(stack), status_code=404, outcome="client_error")
    # the same through the SDK: its usual exception
    with pytest.raises(openai.NotFoundError) as ei:
        openai_client.post("/completions-nope", body={"model": CHAT_MODEL, "prompt": tag}, cast_to=object)
    assert ei.value.status_code == 404
    assert stack.standin.find(tag) == [], "an unknown path was forwarded"
    check_row(exchange(ei.value.response.headers.get(GATEWAY_ID_HEADER)), status_code=404, outcome="client_error")


def test_body_too_large_413(stack, anthropic_client, exchange):
    tag = marker()
    big = tag + " " + ("x" * 1100 * 1024)
    with pytest.raises(anthropic.APIStatusError) as ei:
        anthropic_client.messages.create(model=ANTHROPIC_MODEL, max_tokens=16, messages=[{"role": "user", "content": big}])
    assert ei.value.status_code == 413, f"{ei.value.status_code}: {ei.value}"
    assert stack.standin.find(tag) == [], "an oversize body was forwarded"
    row = exchange(ei.value.response.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), status_code=413, outcome="client_error")


def test_rate_limit_429_anthropic(stack, anthropic_client, exchange):
    tag = marker()
    with pytest.raises(anthropic.RateLimitError) as ei:
        anthropic_client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=16, messages=[{"role": "user", "content": f"limit {tag}"}],
            extra_headers={"x-standin-status": "429", "x-standin-retry-after": "7"})
    assert ei.value.response.headers.get("retry-after") == "7"
    assert len(stack.standin.find(tag)) == 1
    row = exchange(ei.value.response.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **alice(stack), api="anthropic.messages", model=ANTHROPIC_MODEL, status_code=429,
              outcome="upstream_error")


def test_rate_limit_429_openai(stack, openai_client, exchange):
    tag = marker()
    with pytest.raises(openai.RateLimitError) as ei:
        openai_client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": f"limit {tag}"}],
            extra_headers={"x-standin-status": "429", "x-standin-retry-after": "7"})
    assert ei.value.response.headers.get("retry-after") == "7"
    row = exchange(ei.value.response.headers.get(GATEWAY_ID_HEADER))
    check_row(row, **bob(stack), api="openai.chat_completions", status_code=429, outcome="upstream_error")
