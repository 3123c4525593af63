#!/usr/bin/env bash
# Installs the system packages AuditGate needs (Debian): libpq and OpenSSL headers, a PostgreSQL server,
# and Python for the SDK compatibility suite. Skips what is already there.
set -euo pipefail
need=()
dpkg -s libpq-dev >/dev/null 2>&1 || need+=(libpq-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The SDK compatibility suite drives the gateway with the official SDKs, latest from PyPI.
if ! python3 -c "import anthropic, openai, pytest" >/dev/null 2>&1; then
    echo "installing: anthropic openai pytest (PyPI)"
    python3 -m pip install -q --disable-pip-version-check anthropic openai pytest
fi
