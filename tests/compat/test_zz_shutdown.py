"""Runs last (file order): a graceful SIGTERM of the session's gateway, and the store it leaves."""

from __future__ import annotations

import subprocess
import threading
import time


def test_sigterm_exits_zero_and_leaves_no_incomplete_exchange(stack, anthropic_client):
    # A stream is open when SIGTERM arrives: the gateway drains it before it stops.
    first_event = threading.Event()
    outcome = {}

    def stream():
        try:
            with anthropic_client.messages.stream(
                model="claude-sonnet-4-6", max_tokens=200, messages=[{"role": "user", "content": "drain me"}],
                extra_headers={"x-standin-events": "20", "x-standin-event-interval": "0.1"},
            ) as s:
                outcome["request_id"] = s.response.headers.get("x-auditgate-request-id")
                for _ in s.text_stream:
                    first_event.set()
                outcome["message"] = s.get_final_message()
        except Exception as error:  # noqa: BLE001 - reported below
            outcome["error"] = error
        first_event.set()

    worker = threading.Thread(target=stream)
    worker.start()
    assert first_event.wait(30), "the stream never started"
    t0 = time.monotonic()
    rc = stack.gateway.stop(timeout=15)
    worker.join(30)
    assert "error" not in outcome, f"the open stream was cut by the shutdown: {outcome.get('error')!r}"
    assert outcome["message"].usage.output_tokens == 20, "the open stream did not finish"
    if outcome.get("request_id"):
        stack.made_request_ids.append(outcome["request_id"])
    took = time.monotonic() - t0
    assert rc == 0, (
        f"auditgate serve exited with {rc!r} after SIGTERM ({took:.1f} s; None = still running after 15 s, killed)\n"
        f"--- gateway log ---\n{stack.log(80)}"
    )
    incomplete = stack.psql(
        "SELECT request_id || ' ' || coalesce(api, '?') FROM audit.exchanges "
        "WHERE chain_id = 'compat' AND response_seq IS NULL"
    ).split()
    assert incomplete == [], f"exchanges without a response record after a graceful stop: {incomplete}"
    missing = []
    for rid in stack.made_request_ids:
        if not stack.psql(f"SELECT 1 FROM audit.exchanges WHERE request_id = '{rid}' AND response_seq IS NOT NULL").strip():
            missing.append(rid)
    assert missing == [], f"exchanges seen during the run are missing after the stop: {missing}"


def test_report_verify_chain_intact(stack):
    """The hash chain the session wrote recomputes (`auditgate-report verify`, exit 0)."""
    proc = subprocess.run(
        [str(stack.bin_dir / "auditgate-report"), "verify", "--database", stack.db_url],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"auditgate-report verify exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
