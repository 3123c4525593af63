"""Drive the provider stand-in directly with the official anthropic and openai SDKs.

    python3 -m pytest -q tools/standin/test_standin.py

The stand-in runs as a subprocess on a free port; every test that needs to find its own
requests in /_standin/requests tags them with a unique `x-test-tag` header.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")  # the transport of anthropic>=1 and openai>=3

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "standin.py"
WORDS = ["Hello", "안녕하세요", "🙂", "from", "the", "stand-in."]


def answer(n: int = 5) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


def in_tokens(*texts: str) -> int:
    return sum(len(t.split()) for t in texts) + 3


# ------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    d = tmp_path_factory.mktemp("standin")
    port_file = d / "port"
    log = d / "requests.log"
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--port", "0", "--port-file", str(port_file), "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("standin listening on 127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
    port = int(line.strip().rsplit(":", 1)[1])
    assert int(port_file.read_text().strip()) == port
    info = {"port": port, "base": f"http://127.0.0.1:{port}", "log": log, "proc": proc}
    yield info
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert rc == 0, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr


@pytest.fixture
def tag():
    return uuid.uuid4().hex


@pytest.fixture
def ant(standin):
    return anthropic.Anthropic(base_url=standin["base"], api_key="sk-ant-test", max_retries=0)


@pytest.fixture
def oai(standin):
    return openai.OpenAI(base_url=standin["base"] + "/v1", api_key="sk-test", max_retries=0)


def recorded(standin, tag=None):
    with urllib.request.urlopen(standin["base"] + "/_standin/requests", timeout=10) as r:
        recs = json.loads(r.read())
    if tag is None:
        return recs
    return [r for r in recs if r["header_map"].get("x-test-tag") == tag]


# ------------------------------------------------------------------------------------------
# Anthropic


def test_anthropic_non_stream(ant, standin, tag):
    msg = ant.messages.create(
        model="claude-sonnet-4-6", max_tokens=1024, system="You are terse.",
        messages=[{"role": "user", "content": "Hello there, stand-in"}],
        extra_headers={"x-test-tag": tag},
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.model == "claude-sonnet-4-6"
    assert msg.content[0].type == "text" and msg.content[0].text == answer(5)
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == in_tokens("You are terse.", "Hello there, stand-in")
    assert msg.usage.output_tokens == 5
    assert msg.usage.cache_creation_input_tokens == 0 and msg.usage.cache_read_input_tokens == 0
    assert msg._request_id and msg._request_id.startswith("req_")
    (rec,) = recorded(standin, tag)
    assert rec["response_status"] == 200 and rec["response_request_id"] == msg._request_id


def test_anthropic_messages_stream_helper(ant):
    blocks = [{"type": "text", "text": "one two three"}, {"type": "text", "text": "four"}]
    with ant.messages.stream(
        model="claude-haiku-4-5", max_tokens=100,
        system=[{"type": "text", "text": "sys prompt", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": blocks}],
        extra_headers={"x-standin-events": "8"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == answer(8)
    assert final.content[0].text == answer(8)
    assert final.usage.input_tokens == in_tokens("sys prompt", "one two three", "four")
    assert final.usage.output_tokens == 8
    assert final.stop_reason == "end_turn"


def test_anthropic_create_stream_event_sequence(ant):
    stream = ant.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, stream=True,
        messages=[{"role": "user", "content": "a b c d"}],
    )
    events = list(stream)
    types = [e.type for e in events]
    # the SDK drops `ping`
    assert types == (["message_start", "content_block_start"] + ["content_block_delta"] * 5
                     + ["content_block_stop", "message_delta", "message_stop"])
    assert events[0].message.usage.input_tokens == in_tokens("a b c d")
    assert events[0].message.usage.output_tokens == 1  # placeholder
    assert events[-2].usage.output_tokens == 5  # cumulative
    assert events[-2].usage.input_tokens == in_tokens("a b c d")
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == answer(5)


def test_anthropic_max_tokens_truncates(ant):
    msg = ant.messages.create(model="m", max_tokens=3, messages=[{"role": "user", "content": "x"}])
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 3
    assert msg.content[0].text == answer(3)


def test_anthropic_echo_and_cache_headers(ant):
    msg = ant.messages.create(
        model="m", max_tokens=100, messages=[{"role": "user", "content": "mail me at bob@example.com now"}],
        extra_headers={"x-standin-echo": "1", "x-standin-cache-read": "40", "x-standin-cache-write": "7"},
    )
    assert msg.content[0].text == "mail me at bob@example.com now"
    assert msg.usage.output_tokens == 5
    assert msg.usage.cache_read_input_tokens == 40 and msg.usage.cache_creation_input_tokens == 7
    assert msg.usage.input_tokens == in_tokens("mail me at bob@example.com now")


def test_anthropic_count_tokens(ant):
    r = ant.messages.count_tokens(
        model="claude-sonnet-4-6", system="be brief",
        messages=[{"role": "user", "content": "count these five words"}],
    )
    assert r.input_tokens == in_tokens("be brief", "count these five words")


def test_anthropic_models_list_paginates(ant):
    page = ant.models.list(limit=2)
    assert page.has_more is True and len(page.data) == 2
    ids = [m.id for m in ant.models.list(limit=2)]  # auto-pagination walks after_id
    assert ids == ["claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5-20251001"]
    m = ant.models.retrieve("claude-opus-4-7")
    assert m.display_name == "Claude Opus 4.7"


def test_anthropic_429_rate_limit(ant, standin, tag):
    with pytest.raises(anthropic.RateLimitError) as ei:
        ant.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-standin-status": "429", "x-standin-retry-after": "7", "x-test-tag": tag},
        )
    e = ei.value
    assert e.status_code == 429
    assert e.response.headers["retry-after"] == "7"
    assert e.body["type"] == "error" and e.body["error"]["type"] == "rate_limit_error"
    assert e.request_id and e.request_id.startswith("req_")
    assert len(recorded(standin, tag)) == 1


def test_anthropic_retry_honours_retry_after_ms(standin, tag):
    client = anthropic.Anthropic(base_url=standin["base"], api_key="k", max_retries=2)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-standin-status": "429", "x-standin-retry-after-ms": "10", "x-test-tag": tag},
        )
    recs = recorded(standin, tag)
    assert [r["header_map"]["x-stainless-retry-count"] for r in recs] == ["0", "1", "2"]


def test_should_retry_false_stops_retries(standin, tag):
    client = anthropic.Anthropic(base_url=standin["base"], api_key="k", max_retries=2)
    with pytest.raises(anthropic.InternalServerError) as ei:
        client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-standin-status": "500", "x-standin-should-retry": "false", "x-test-tag": tag},
        )
    assert ei.value.response.headers["x-should-retry"] == "false"
    assert len(recorded(standin, tag)) == 1


def test_anthropic_529_overloaded(ant):
    with pytest.raises(anthropic.APIStatusError) as ei:
        ant.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                            extra_headers={"x-standin-status": "529"})
    assert ei.value.status_code == 529
    assert ei.value.body["error"]["type"] == "overloaded_error"


def test_anthropic_in_stream_error(ant):
    stream = ant.messages.create(
        model="m", max_tokens=10, stream=True, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-stream-error": "overloaded_error"},
    )
    seen = []
    with pytest.raises(anthropic.APIStatusError) as ei:
        for ev in stream:
            seen.append(ev.type)
    assert seen == ["message_start", "content_block_start", "content_block_delta"]
    assert ei.value.status_code == 200
    assert ei.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_anthropic_pause_after_first_event(ant):
    t0 = time.monotonic()
    stream = ant.messages.create(
        model="m", max_tokens=10, stream=True, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-pause-after-first-event": "1.0"},
    )
    it = iter(stream)
    first = next(it)
    t_first = time.monotonic() - t0
    rest = list(it)
    t_all = time.monotonic() - t0
    assert first.type == "message_start"
    assert t_first < 0.8, t_first
    assert t_all >= 1.0, t_all
    assert rest[-1].type == "message_stop"


def test_anthropic_chunk_split_stream(ant):
    with ant.messages.stream(
        model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-chunk-split": "1", "x-standin-events": "12"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == answer(12) and "안녕하세요" in text and "🙂" in text
    assert final.usage.output_tokens == 12


def test_anthropic_chunk_split_non_stream(ant):
    msg = ant.messages.create(model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
                              extra_headers={"x-standin-chunk-split": "1"})
    assert msg.content[0].text == answer(5)


def test_anthropic_reset_after_events_raises(ant):
    stream = ant.messages.create(
        model="m", max_tokens=10, stream=True, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-reset-after-events": "4"},
    )
    seen = []
    # anthropic 2.12 does not wrap transport errors raised while iterating a stream: the raw
    # httpx2 exception escapes (openai wraps it in APIConnectionError)
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)) as ei:
        for ev in stream:
            seen.append(ev.type)
    # 4 wire events = message_start, content_block_start, ping (dropped by the SDK), first delta
    assert seen == ["message_start", "content_block_start", "content_block_delta"]
    assert "incomplete chunked read" in str(ei.value)


def test_anthropic_reset_rst_mode_raises(ant):
    stream = ant.messages.create(
        model="m", max_tokens=10, stream=True, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-reset-after-events": "2", "x-standin-reset-mode": "rst"},
    )
    seen = []
    with pytest.raises((anthropic.APIConnectionError, httpx2.ReadError)) as ei:
        for ev in stream:
            seen.append(ev.type)
    assert seen == ["message_start", "content_block_start"]
    assert "reset" in str(ei.value).lower()


def test_delay_triggers_client_timeout(standin):
    client = anthropic.Anthropic(base_url=standin["base"], api_key="k", max_retries=0, timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                               extra_headers={"x-standin-delay": "1.0"})
    assert time.monotonic() - t0 < 0.9


def test_delay_then_answer(ant):
    t0 = time.monotonic()
    msg = ant.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                              extra_headers={"x-standin-delay": "0.4"})
    assert time.monotonic() - t0 >= 0.4 and msg.usage.output_tokens == 5


def test_gzip_body_is_decoded(ant):
    msg = ant.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                              extra_headers={"x-standin-gzip": "1"})
    assert msg.content[0].text == answer(5)


def test_recorded_requests_show_headers_and_body(ant, standin, tag):
    ant.messages.create(
        model="claude-sonnet-4-6", max_tokens=7, metadata={"user_id": "u-1"},
        messages=[{"role": "user", "content": "record me 한국어"}],
        extra_headers={"x-test-tag": tag, "anthropic-beta": "feat-a,feat-b"},
    )
    (rec,) = recorded(standin, tag)
    assert rec["method"] == "POST" and rec["path"] == "/v1/messages"
    h = rec["header_map"]
    assert h["authorization"] == "Bearer sk-ant-test"
    assert h["anthropic-version"]
    assert h["anthropic-beta"] == "feat-a,feat-b"
    assert h["content-type"] == "application/json"
    raw = base64.b64decode(rec["body_base64"])
    assert raw.decode("utf-8") == rec["body_text"]
    body = json.loads(raw)
    assert body == rec["body_json"]
    assert body["model"] == "claude-sonnet-4-6" and body["max_tokens"] == 7
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["messages"][0]["content"] == "record me 한국어"


def test_reset_endpoint_and_health(standin):
    with urllib.request.urlopen(standin["base"] + "/_standin/health", timeout=5) as r:
        assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    req = urllib.request.Request(standin["base"] + "/_standin/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200
    assert recorded(standin) == []
    assert standin["log"].exists()


def test_query_string_and_prefix_recorded(standin, tag):
    client = anthropic.Anthropic(base_url=standin["base"] + "/some/prefix", api_key="k", max_retries=0)
    msg = client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
                                 extra_headers={"x-test-tag": tag}, extra_query={"beta": "true"})
    assert msg.usage.output_tokens == 5
    (rec,) = recorded(standin, tag)
    assert rec["path"] == "/some/prefix/v1/messages?beta=true"


def test_double_v1_is_404(standin):
    client = anthropic.Anthropic(base_url=standin["base"] + "/v1", api_key="k", max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


# ------------------------------------------------------------------------------------------
# OpenAI


def test_openai_chat_non_stream(oai):
    r = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "be nice"},
                  {"role": "user", "content": [{"type": "text", "text": "hi from a user"}]}],
    )
    assert r.object == "chat.completion" and r.model == "gpt-4o-mini"
    assert r.choices[0].message.content == answer(5) and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == in_tokens("be nice", "hi from a user")
    assert r.usage.completion_tokens == 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + 5
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r._request_id and r._request_id.startswith("req_")


def test_openai_chat_cached_tokens_subset(oai):
    r = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "a b"}],
                                    extra_headers={"x-standin-cache-read": "1000"})
    assert r.usage.prompt_tokens_details.cached_tokens == r.usage.prompt_tokens == in_tokens("a b")


def test_openai_chat_stream_without_usage(oai):
    chunks = list(oai.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hello"}]))
    assert all(c.usage is None for c in chunks)
    assert all(len(c.choices) == 1 for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answer(5)


def test_openai_chat_stream_with_usage(oai):
    chunks = list(oai.chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hello world"}],
        extra_headers={"x-standin-events": "3"}))
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == in_tokens("hello world")
    assert last.usage.completion_tokens == 3
    assert last.usage.total_tokens == in_tokens("hello world") + 3
    assert all(c.usage is None for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == answer(3)


def test_openai_chat_stream_helper_chunk_split(oai):
    with oai.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}],
        stream_options={"include_usage": True},
        extra_headers={"x-standin-chunk-split": "1", "x-standin-events": "9"},
    ) as s:
        for _ in s:
            pass
        final = s.get_final_completion()
    assert final.choices[0].message.content == answer(9)
    assert final.usage.completion_tokens == 9


def test_openai_chat_length_finish(oai):
    r = oai.chat.completions.create(model="m", max_completion_tokens=2, messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2


def test_openai_chat_in_stream_error(oai):
    with pytest.raises(openai.APIError) as ei:
        list(oai.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "x"}],
                                         extra_headers={"x-standin-stream-error": "server_error"}))
    assert "server_error" in str(ei.value)


def test_openai_chat_reset_raises(oai):
    stream = oai.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "x"}],
                                         extra_headers={"x-standin-reset-after-events": "2"})
    got = []
    with pytest.raises(openai.APIConnectionError):
        for c in stream:
            got.append(c)
    assert len(got) == 2


def test_openai_429(oai, standin, tag):
    with pytest.raises(openai.RateLimitError) as ei:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                    extra_headers={"x-standin-status": "429", "x-standin-retry-after": "7",
                                                   "x-test-tag": tag})
    e = ei.value
    assert e.status_code == 429 and e.response.headers["retry-after"] == "7"
    assert e.code == "rate_limit_exceeded" and e.type == "requests"
    assert e.request_id and e.request_id.startswith("req_")
    assert len(recorded(standin, tag)) == 1


def test_openai_retries_then_raises(standin, tag):
    client = openai.OpenAI(base_url=standin["base"] + "/v1", api_key="k", max_retries=1)
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="x",
                                 extra_headers={"x-standin-status": "429", "x-standin-retry-after-ms": "10",
                                                "x-test-tag": tag})
    assert [r["header_map"]["x-stainless-retry-count"] for r in recorded(standin, tag)] == ["0", "1"]


def test_openai_responses_non_stream(oai):
    r = oai.responses.create(model="gpt-4.1", instructions="be short", input="tell me a joke")
    assert r.status == "completed"
    assert r.output_text == answer(5)
    assert r.usage.input_tokens == in_tokens("be short", "tell me a joke")
    assert r.usage.output_tokens == 5
    assert r.usage.total_tokens == r.usage.input_tokens + 5
    assert r.usage.input_tokens_details.cached_tokens == 0


def test_openai_responses_stream_events(oai):
    events = list(oai.responses.create(
        model="gpt-4.1", stream=True,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "three little words"}]}]))
    types = [e.type for e in events]
    assert types == (["response.created", "response.in_progress", "response.output_item.added",
                      "response.content_part.added"] + ["response.output_text.delta"] * 5
                     + ["response.output_text.done", "response.content_part.done",
                        "response.output_item.done", "response.completed"])
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.usage is None
    final = events[-1].response
    assert final.usage.input_tokens == in_tokens("three little words")
    assert final.usage.output_tokens == 5 and final.usage.total_tokens == final.usage.input_tokens + 5
    assert final.output_text == answer(5)


def test_openai_responses_stream_helper_chunk_split(oai):
    with oai.responses.stream(model="gpt-4.1", input="hi",
                              extra_headers={"x-standin-chunk-split": "1", "x-standin-events": "7"}) as s:
        deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert "".join(deltas) == answer(7)
    assert final.output_text == answer(7)
    assert final.usage.output_tokens == 7 and final.usage.input_tokens == in_tokens("hi")


def test_openai_responses_incomplete(oai):
    events = list(oai.responses.create(model="gpt-4.1", stream=True, input="hi", max_output_tokens=2))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.status == "incomplete"
    assert events[-1].response.usage.output_tokens == 2


def test_openai_embeddings_float_and_base64(oai, standin, tag):
    f = oai.embeddings.create(model="text-embedding-3-small", input=["alpha beta", "gamma"],
                              encoding_format="float", extra_headers={"x-test-tag": tag})
    b = oai.embeddings.create(model="text-embedding-3-small", input=["alpha beta", "gamma"],
                              extra_headers={"x-test-tag": tag})
    assert f.usage.prompt_tokens == 3 and f.usage.total_tokens == 3
    assert b.usage.prompt_tokens == 3
    assert len(f.data) == 2 and len(f.data[0].embedding) == 8
    assert [d.embedding for d in f.data] == [d.embedding for d in b.data]
    recs = recorded(standin, tag)
    assert recs[0]["body_json"]["encoding_format"] == "float"
    assert recs[1]["body_json"]["encoding_format"] == "base64"  # the SDK's default


def test_openai_embeddings_dimensions(oai):
    r = oai.embeddings.create(model="text-embedding-3-small", input="x y z", dimensions=64)
    assert len(r.data[0].embedding) == 64 and r.usage.prompt_tokens == 3


def test_openai_models_list(oai):
    ids = [m.id for m in oai.models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4.1", "text-embedding-3-small"]
    assert oai.models.retrieve("gpt-4.1").id == "gpt-4.1"


def test_openai_pause_after_first_event(oai):
    t0 = time.monotonic()
    it = iter(oai.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "x"}],
                                          extra_headers={"x-standin-pause-after-first-event": "1.0"}))
    next(it)
    t_first = time.monotonic() - t0
    list(it)
    assert t_first < 0.8 and time.monotonic() - t0 >= 1.0


# ------------------------------------------------------------------------------------------
# wire-level checks (raw sockets)


def _raw_request(port: int, body: dict, headers: dict, path: str = "/v1/messages") -> bytes:
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" \
           f"Content-Length: {len(payload)}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + payload)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    return out


def _dechunk(raw: bytes) -> tuple[list, bool]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    chunks, complete = [], False
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            complete = True
            break
        chunks.append(rest[:n])
        rest = rest[n + 2:]
    return chunks, complete


def test_wire_chunk_split_splits_utf8(standin):
    raw = _raw_request(standin["port"], {"model": "m", "max_tokens": 50, "stream": True,
                                         "messages": [{"role": "user", "content": "hi"}]},
                       {"x-standin-chunk-split": "1"})
    chunks, complete = _dechunk(raw)
    assert complete and max(len(c) for c in chunks) <= 7
    broken = 0
    for c in chunks:
        try:
            c.decode("utf-8")
        except UnicodeDecodeError:
            broken += 1
    assert broken > 0  # some chunk boundary fell inside a multi-byte character
    text = b"".join(chunks).decode("utf-8")
    assert "event: message_start\n" in text and "[DONE]" not in text
    assert text.endswith("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


def test_wire_reset_leaves_body_unfinished(standin):
    raw = _raw_request(standin["port"], {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                       {"x-standin-reset-after-events": "3"}, path="/v1/chat/completions")
    chunks, complete = _dechunk(raw)
    assert not complete and len(chunks) == 3


def test_wire_chat_stream_ends_with_done(standin):
    raw = _raw_request(standin["port"], {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                       {}, path="/v1/chat/completions")
    chunks, complete = _dechunk(raw)
    assert complete and chunks[-1] == b"data: [DONE]\n\n"
    assert all(c.startswith(b"data: ") for c in chunks)


def test_keep_alive_reuses_connection(standin):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", standin["port"], timeout=10)
    for _ in range(3):
        conn.request("POST", "/v1/messages/count_tokens", body=json.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "a b"}]}),
            headers={"content-type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"input_tokens": 5}
        assert r.getheader("content-length")
    conn.close()


def test_many_concurrent_streams(standin):
    """300 streams open at once, each holding ~0.5 s."""
    n = 300
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def one():
        barrier.wait()
        raw = _raw_request(standin["port"], {"model": "m", "stream": True, "max_tokens": 10,
                                             "messages": [{"role": "user", "content": "x"}]},
                           {"x-standin-events": "10", "x-standin-event-interval": "0.05"})
        chunks, complete = _dechunk(raw)
        with lock:
            results.append(complete and chunks[-1].startswith(b"event: message_stop"))

    t0 = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count(True) == n
    assert time.monotonic() - t0 < 30
