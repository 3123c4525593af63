#!/usr/bin/env bash
# Installs the client tools that the README's "Point your client at AuditGate" table names, each at the
# version that table was checked with, into a virtual environment of their own (llm-anthropic needs an
# older anthropic SDK than the compatibility suite tests): litellm, the llm CLI with llm-anthropic,
# LangChain's Anthropic and OpenAI chat models, openai-agents, and claude-agent-sdk, which ships the
# real Claude Code CLI. Prints the environment's folder; skips what is already there.
set -euo pipefail
venv=${AUDITGATE_CLIENTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/auditgate/clients}
packages=(litellm==1.110.2 llm==0.36 llm-anthropic==0.30 langchain-anthropic==1.7.10 langchain-openai==1.8.1
    openai-agents==0.24.0 claude-agent-sdk==0.2.189)
stamp="$venv/.auditgate-clients"
if [ "$(cat "$stamp" 2>/dev/null)" != "${packages[*]}" ]; then
    echo "installing the client tools into $venv: ${packages[*]} (PyPI)" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${packages[@]}" >&2
    echo "${packages[*]}" >"$stamp"
fi
echo "$venv"
