"""Every line of the README's "Point your client at AuditGate" table, run as written against the
running gateway: the real Claude Code CLI (both credential forms), litellm with `anthropic/` and
`openai/` models, the `llm` CLI with and without llm-anthropic, LangChain's two chat models and
openai-agents. Each call must reach the provider stand-in through the gateway and be one `ok`
exchange of the key's user in the store, on the route that client uses.

The tools live in their own virtual environment (`scripts/install-clients.sh`, which the test command
runs); AUDITGATE_CLIENTS_VENV names it. Without it these tests are skipped.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import proxy_free_env

VENV = os.environ.get("AUDITGATE_CLIENTS_VENV")
pytestmark = pytest.mark.skipif(not VENV, reason="AUDITGATE_CLIENTS_VENV is not set (scripts/install-clients.sh)")

STANDIN_ANSWER = "Hello"  # every stand-in answer starts with it


def claude_binary() -> Path:
    found = list(Path(VENV).glob("lib/python3*/site-packages/claude_agent_sdk/_bundled/claude"))
    assert found, f"no Claude Code CLI in {VENV}"
    return found[0]


def run_client(stack, argv: list, env: dict, *, home: Path | None = None, timeout: float = 180) -> str:
    full_env = {**proxy_free_env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
    if home is not None:
        full_env["HOME"] = str(home)
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        if name not in env:
            full_env.pop(name, None)
    proc = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=home or stack.workdir)
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert STANDIN_ANSWER in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def python(stack, code: str, env: dict) -> str:
    return run_client(stack, [f"{VENV}/bin/python", "-c", textwrap.dedent(code)], env)


def new_exchanges(stack, since: str) -> list[tuple[str, str, str, str]]:
    """(user, path, model, outcome) of the exchanges that started after `since`, oldest first."""
    deadline = time.monotonic() + 15
    while True:
        out = stack.psql(
            "SELECT user_id, path, model, outcome, response_seq IS NOT NULL FROM audit.exchanges "
            f"WHERE started_at > '{since}' ORDER BY started_at")
        rows = [line.split("|") for line in out.splitlines() if line]
        if (rows and all(r[4] == "t" for r in rows)) or time.monotonic() > deadline:
            return [tuple(r[:4]) for r in rows]
        time.sleep(0.2)


@pytest.fixture
def since(stack):
    return stack.psql("SELECT clock_timestamp()").strip()


def test_claude_code_with_auth_token(stack, since, tmp_path):
    run_client(stack, [str(claude_binary()), "-p", "say hello", "--model", "claude-sonnet-4-6"], {
        "ANTHROPIC_BASE_URL": stack.base_url, "ANTHROPIC_AUTH_TOKEN": stack.alice_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }, home=tmp_path)
    rows = new_exchanges(stack, since)
    assert ("alice", "/v1/messages?beta=true", "claude-sonnet-4-6", "ok") in rows, rows
    assert all(r[0] == "alice" and r[3] == "ok" for r in rows), rows


def test_claude_code_with_api_key_helper(stack, since, tmp_path):
    helper = tmp_path / "auditgate-key.sh"
    helper.write_text(f"#!/bin/sh\necho {stack.bob_key}\n")
    helper.chmod(0o700)
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.json").write_text(f'{{"apiKeyHelper": "{helper}"}}')
    run_client(stack, [str(claude_binary()), "-p", "say hello", "--model", "claude-sonnet-4-6"], {
        "ANTHROPIC_BASE_URL": stack.base_url, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }, home=tmp_path)
    rows = new_exchanges(stack, since)
    assert ("bob", "/v1/messages?beta=true", "claude-sonnet-4-6", "ok") in rows, rows


@pytest.mark.parametrize("api_base_suffix", ["", "/anthropic"])
def test_litellm_anthropic_models(stack, since, api_base_suffix):
    python(stack, f"""
        import litellm
        r = litellm.completion(model="anthropic/claude-sonnet-4-6", api_base="{stack.base_url}{api_base_suffix}",
                               api_key="{stack.alice_key}", max_tokens=50, messages=[{{"role": "user", "content": "hi"}}])
        print(r.choices[0].message.content)
    """, {})
    assert new_exchanges(stack, since) == [("alice", f"{api_base_suffix}/v1/messages", "claude-sonnet-4-6", "ok")]


def test_litellm_anthropic_models_with_v1_is_the_documented_mistake(stack):
    """The README says why `/v1` must not be added for `anthropic/`: litellm calls /v1/v1/messages."""
    code = f"""
        import litellm
        try:
            litellm.completion(model="anthropic/claude-sonnet-4-6", api_base="{stack.base_url}/v1",
                               api_key="{stack.alice_key}", max_tokens=50, messages=[{{"role": "user", "content": "hi"}}])
        except litellm.NotFoundError as e:
            print("NotFound", e)
    """
    proc = subprocess.run([f"{VENV}/bin/python", "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**proxy_free_env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, timeout=120)
    assert "NotFound" in proc.stdout and "/v1/v1/messages" in proc.stdout, proc.stdout + proc.stderr


def test_litellm_openai_models(stack, since):
    python(stack, f"""
        import litellm
        r = litellm.completion(model="openai/gpt-4.1", api_base="{stack.openai_base_url}",
                               api_key="{stack.alice_key}", messages=[{{"role": "user", "content": "hi"}}])
        print(r.choices[0].message.content)
    """, {})
    assert new_exchanges(stack, since) == [("alice", "/v1/chat/completions", "gpt-4.1", "ok")]


def test_llm_cli_openai(stack, since, tmp_path):
    run_client(stack, [f"{VENV}/bin/llm", "-m", "gpt-4.1", "hi"], {
        "OPENAI_BASE_URL": stack.openai_base_url, "OPENAI_API_KEY": stack.alice_key,
        "LLM_USER_PATH": str(tmp_path),
    })
    assert new_exchanges(stack, since) == [("alice", "/v1/chat/completions", "gpt-4.1", "ok")]


def test_llm_cli_anthropic_plugin(stack, since, tmp_path):
    run_client(stack, [f"{VENV}/bin/llm", "-m", "claude-sonnet-4.5", "hi"], {
        "ANTHROPIC_BASE_URL": stack.base_url, "ANTHROPIC_API_KEY": stack.alice_key,
        "LLM_USER_PATH": str(tmp_path),
    })
    assert new_exchanges(stack, since) == [("alice", "/v1/messages", "claude-sonnet-4-5", "ok")]


def test_langchain_chat_models(stack, since):
    python(stack, f"""
        from langchain_anthropic import ChatAnthropic
        from langchain_openai import ChatOpenAI
        print(ChatAnthropic(model="claude-sonnet-4-6", base_url="{stack.base_url}", api_key="{stack.alice_key}").invoke("hi").content)
        print(ChatOpenAI(model="gpt-4.1", base_url="{stack.openai_base_url}", api_key="{stack.alice_key}").invoke("hi").content)
    """, {})
    assert new_exchanges(stack, since) == [
        ("alice", "/v1/messages", "claude-sonnet-4-6", "ok"),
        ("alice", "/v1/chat/completions", "gpt-4.1", "ok"),
    ]


def test_openai_agents(stack, since):
    python(stack, """
        from agents import Agent, Runner
        print(Runner.run_sync(Agent(name="helper", instructions="Be brief.", model="gpt-4.1"), "hi").final_output)
    """, {"OPENAI_BASE_URL": stack.openai_base_url, "OPENAI_API_KEY": stack.alice_key,
          "OPENAI_AGENTS_DISABLE_TRACING": "1"})
    assert new_exchanges(stack, since) == [("alice", "/v1/responses", "gpt-4.1", "ok")]
