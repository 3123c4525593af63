"""Fault drills: the gateway or PostgreSQL is SIGKILLed under load, and the audit trail must still hold.

Each drill runs its own gateway (own chain_id, own spool directory) and provider stand-in on its own
throwaway PostgreSQL cluster (scripts/postgres.sh), and puts load on it from 16 threads of the `anthropic` SDK
(max_retries=0): 8 threads of non-streamed Messages calls, 8 threads of slow streams
(`x-standin-event-interval`) staggered so that streams are in flight at any moment. Every call is
recorded on the client side: its request id (x-auditgate-request-id), whether the response head
arrived, whether the whole answer arrived with a clean end, how many text deltas arrived.

- test_gateway_sigkill_under_load: the gateway is SIGKILLed, a new one starts on the same spool
  and port. Every call whose complete answer the client received must be a complete exchange
  (response record, outcome ok); every stream broken off mid-answer must be there as `incomplete`;
  no request id twice; the chain continues after the crash and `auditgate-report verify` passes.
- test_postgres_sigkill_under_load: the PostgreSQL postmaster is SIGKILLed; calls keep getting 200
  (the spool takes the records) while the store is down; the cluster comes back on the same port and
  every answered call must be a complete exchange in the store; verify passes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anthropic
import pytest

from conftest import (
    Gateway, Standin, config_yaml, free_port, http, migrate, new_client_key, pg_script, psql, report_verify,
    sql_literal, start_standin, verified_chain, writer_url,
)

MODEL = "claude-sonnet-4-6"
THREADS = 16                 # even threads: non-streamed calls; odd threads: streams
PLAIN_PAUSE = 0.1            # seconds between two non-streamed calls of one thread (keeps the load small)
PLAIN_WORDS = 3000           # non-streamed answers of 3000 words (~18 KB): more work (recording the body) between
                             # the provider's last byte and the response record, where a crash would hit
STREAM_EVENTS = 20
STREAM_INTERVAL = 0.1        # 20 deltas at 0.1 s: a stream is open for ~2 s
STREAM_STAGGER = 0.25        # stream thread j starts j * 0.25 s late: streams end at different moments


# ------------------------------------------------------------------------------------------------
# load


@dataclass
class Call:
    kind: str                      # "plain" (non-streamed) or "stream"
    thread: int
    started: float                 # time.monotonic()
    request_id: str | None = None
    status: int | None = None
    head: bool = False             # the response head (status, headers) arrived
    complete: bool = False         # the whole answer arrived and ended cleanly
    deltas: int = 0                # text deltas received (streams)
    output_tokens: int | None = None
    error: str | None = None
    ended: float | None = None

    def brief(self, t0: float) -> dict:
        return {
            "kind": self.kind, "request_id": self.request_id, "status": self.status, "head": self.head,
            "complete": self.complete, "deltas": self.deltas, "error": self.error,
            "started_ms": round((self.started - t0) * 1000),
            "ended_ms": None if self.ended is None else round((self.ended - t0) * 1000),
        }


class Load:
    """16 client threads calling the gateway until `stop()`; every call ends up in `calls`."""

    def __init__(self, base_url: str, key: str, tag: str):
        self.base_url = base_url
        self.key = key
        self.tag = tag
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        for i in range(THREADS):
            t = threading.Thread(target=self._worker, args=(i,), name=f"load-{i}", daemon=True)
            self.threads.append(t)
            t.start()

    def stop(self) -> None:
        self.stopping.set()

    def join(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        assert not alive, f"load threads still running {timeout:.0f} s after the load was stopped: {alive}"

    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def _worker(self, i: int) -> None:
        client = anthropic.Anthropic(api_key=self.key, base_url=self.base_url, max_retries=0, timeout=60)
        streamed = i % 2 == 1
        if streamed and self.stopping.wait((i // 2) * STREAM_STAGGER):
            return
        n = 0
        while not self.stopping.is_set():
            n += 1
            call = Call(kind="stream" if streamed else "plain", thread=i, started=time.monotonic())
            with self.lock:
                self.calls.append(call)
            text = f"drill {self.tag} thread {i} call {n}"
            try:
                if streamed:
                    self._stream(client, call, text)
                else:
                    self._plain(client, call, text)
            except anthropic.APIStatusError as e:
                call.head = True
                call.status = e.status_code
                call.request_id = e.response.headers.get("x-auditgate-request-id")
                call.error = f"{type(e).__name__}: {str(e)[:200]}"
            except Exception as e:  # noqa: BLE001 - a broken connection is an expected result here
                call.error = f"{type(e).__name__}: {str(e)[:200]}"
            call.ended = time.monotonic()
            if not streamed:
                self.stopping.wait(PLAIN_PAUSE)
        client.close()

    @staticmethod
    def _plain(client: anthropic.Anthropic, call: Call, text: str) -> None:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=4096, messages=[{"role": "user", "content": text}],
            extra_headers={"x-standin-events": str(PLAIN_WORDS)})
        call.head = True
        call.status = raw.status_code
        call.request_id = raw.headers.get("x-auditgate-request-id")
        message = raw.parse()
        call.output_tokens = message.usage.output_tokens
        call.complete = True

    @staticmethod
    def _stream(client: anthropic.Anthropic, call: Call, text: str) -> None:
        with client.messages.stream(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": text}],
            extra_headers={"x-standin-events": str(STREAM_EVENTS), "x-standin-event-interval": str(STREAM_INTERVAL)},
        ) as stream:
            call.head = True
            call.status = stream.response.status_code
            call.request_id = stream.response.headers.get("x-auditgate-request-id")
            for event in stream:
                if event.type == "content_block_delta":
                    call.deltas += 1
            message = stream.get_final_message()  # raises unless the stream ended cleanly
            call.output_tokens = message.usage.output_tokens
            call.complete = True


def expected_tokens(call: Call) -> int:
    return STREAM_EVENTS if call.kind == "stream" else PLAIN_WORDS


# ------------------------------------------------------------------------------------------------
# drill plumbing


@dataclass
class Drill:
    name: str
    chain_id: str
    db_url: str           # superuser URL of the drill database
    reader_url: str
    key: str
    gateway: Gateway
    bin_dir: Path
    standin: Standin

    def log(self, lines: int = 80) -> str:
        return self.gateway.log(lines)


def setup_drill(name: str, compat_env, own_cluster, workdir: Path) -> Drill:
    """A database on the test's own cluster, a stand-in and a gateway of the drill's own."""
    _su, bin_dir = compat_env
    _pgdir, pgport = own_cluster
    suffix = secrets.token_hex(3)
    db_name = f"drill_{name}_{suffix}"
    su_url = f"postgresql://postgres@127.0.0.1:{pgport}/postgres"
    psql(su_url, f"CREATE DATABASE {db_name}")
    db_url = f"postgresql://postgres@127.0.0.1:{pgport}/{db_name}"
    migrate(bin_dir, db_url)

    d = workdir / f"drill-{name}-{suffix}"
    d.mkdir()
    spool = d / "spool"
    spool.mkdir()
    standin = start_standin(d)
    key = new_client_key()
    port = free_port()
    chain_id = f"drill-{name}-{suffix}"
    cfg = d / "auditgate.yaml"
    cfg.write_text(config_yaml(
        port=port, database_url=writer_url(su_url, db_name), standin_url=standin.url,
        keys=[(key, "dora", "drills")], chain_id=chain_id, spool_dir=spool))
    gw = Gateway(bin_dir=bin_dir, config_path=cfg, log_path=d / "gateway.log", port=port)
    try:
        gw.start(health_key=key, timeout=60)
    except BaseException:
        standin.stop()
        raise
    return Drill(name=name, chain_id=chain_id, db_url=db_url,
                 reader_url=f"postgresql://auditgate_reader@127.0.0.1:{pgport}/{db_name}",
                 key=key, gateway=gw, bin_dir=bin_dir, standin=standin)


def wait_for_load(load: Load, seconds: float, drill: Drill) -> None:
    """Lets the load run `seconds`; fails at once when no call succeeds at all (a broken set-up)."""
    time.sleep(seconds)
    done = [c for c in load.snapshot() if c.complete]
    assert done, (
        f"no call completed in {seconds:.1f} s of load; first calls: "
        f"{[c.brief(load.t0) for c in load.snapshot()[:4]]}\n--- gateway log ---\n{drill.log(40)}")


def exchanges(db_url: str, request_ids) -> dict:
    """request_id -> list of its audit.exchanges rows (dicts)."""
    ids = sorted({r for r in request_ids if r})
    rows: dict = {}
    for start in range(0, len(ids), 500):
        chunk = ",".join(sql_literal(r) for r in ids[start:start + 500])
        out = psql(db_url, "SELECT row_to_json(x) FROM (SELECT request_id, request_seq, response_seq, status_code, "
                           f"outcome, output_tokens FROM audit.exchanges WHERE request_id IN ({chunk})) x")
        for line in out.splitlines():
            if line.strip():
                row = json.loads(line)
                rows.setdefault(row["request_id"], []).append(row)
    return rows


def duplicated_records(db_url: str, chain_id: str) -> list:
    """(request_id, kind, count) for any request id with more than one record of a kind in the chain."""
    out = psql(db_url, "SELECT request_id || ' ' || kind || ' ' || count(*) FROM audit.events "
                       f"WHERE chain_id = {sql_literal(chain_id)} GROUP BY request_id, kind HAVING count(*) > 1")
    return out.split("\n")[:-1] if out.strip() else []


def wait_caught_up(drill: Drill, timeout: float = 60) -> float:
    """Waits until /readyz says the store is reachable and nothing is left in the spool; returns seconds."""
    t = time.monotonic()
    deadline = t + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = http("GET", drill.gateway.url + "/readyz", {"x-api-key": drill.key}, timeout=5)
            last = f"{r.status} {r.body[:300]!r}"
            if r.status == 200:
                body = r.json()
                if body.get("store_reachable") is True and body.get("backlog") == 0:
                    return time.monotonic() - t
        except OSError as e:
            last = repr(e)
        time.sleep(0.25)
    pytest.fail(f"the store did not catch up within {timeout:.0f} s (last /readyz: {last})\n"
                f"--- gateway log ---\n{drill.log(60)}")


def assert_chain_verifies(drill: Drill) -> str:
    """`auditgate-report verify` (as auditgate_reader) exits 0 and covers the drill's whole chain, seq 1..N."""
    proc = report_verify(drill.bin_dir, drill.reader_url)
    assert proc.returncode == 0, (
        f"auditgate-report verify exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}\n"
        f"--- gateway log ---\n{drill.log(40)}")
    count = int(psql(drill.db_url, f"SELECT count(*) FROM audit.events WHERE chain_id = {sql_literal(drill.chain_id)}"))
    chain = verified_chain(proc.stdout, drill.chain_id)
    assert chain == (1, count, count), (
        f"verify did not report the chain {drill.chain_id} as intact from seq 1 to {count} (the records in the store), "
        f"it reported {chain}:\n{proc.stdout}")
    return proc.stdout.strip().splitlines()[-1]


def postmaster_pid(pgdir: Path) -> int:
    return int((pgdir / "postmaster.pid").read_text().splitlines()[0])


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def cluster_processes(pgdir: Path, known: list) -> list:
    found = subprocess.run(["pgrep", "-f", str(pgdir)], capture_output=True, text=True).stdout.split()
    return sorted({int(p) for p in found if alive(int(p))} | {p for p in known if alive(p)})


# ------------------------------------------------------------------------------------------------
# 1. the gateway is SIGKILLed


def test_gateway_sigkill_under_load(compat_env, own_cluster, workdir):
    drill = setup_drill("gwkill", compat_env, own_cluster, workdir)
    gw = drill.gateway
    load = Load(gw.url, drill.key, "gwkill")
    t_start = time.monotonic()
    restarted = None
    try:
        load.start()
        # ~3 s: the first streams (~2 s each, staggered by 0.25 s) have ended, the others are mid-answer
        wait_for_load(load, 3.0, drill)
        load.stop()
        gw.proc.kill()
        t_kill = time.monotonic()
        gw.proc.wait(10)
        gw.proc = None
        load.join()
        calls = load.snapshot()

        # a new gateway on the same configuration: same spool, same port, same chain
        restarted = Gateway(bin_dir=gw.bin_dir, config_path=gw.config_path, log_path=gw.log_path, port=gw.port)
        restarted.start(health_key=drill.key, timeout=60)
        drill.gateway = restarted
        catch_up = wait_caught_up(drill)

        answered = [c for c in calls if c.complete]
        in_flight = [c for c in calls if c.head and not c.complete]
        mid_answer = [c for c in in_flight if c.kind == "stream" and c.deltas < STREAM_EVENTS]
        no_head = [c for c in calls if not c.head]
        rows = exchanges(drill.db_url, [c.request_id for c in calls])
        incomplete_found = [c for c in in_flight if any(r["outcome"] == "incomplete" for r in rows.get(c.request_id, []))]
        print(f"\ngateway SIGKILL drill: {len(calls)} calls in {t_kill - load.t0:.1f} s; "
              f"{len(answered)} answered completely ({sum(c.kind == 'stream' for c in answered)} streams), "
              f"{len(in_flight)} in flight with the head received ({len(mid_answer)} streams mid-answer), "
              f"{len(no_head)} without a head; {len(incomplete_found)} 'incomplete' exchanges found; "
              f"store caught up {catch_up:.1f} s after the restart")

        def show(c: Call) -> dict:
            d = c.brief(t_kill)
            d["rows"] = rows.get(c.request_id)
            return d

        # the drill proved something only if streams were cut mid-answer
        assert mid_answer, (
            "no stream was mid-answer when the gateway was killed: the drill proved nothing; "
            f"in flight: {[show(c) for c in in_flight[:5]]}")
        bad_head = [c for c in calls if c.head and (c.status != 200 or not c.request_id)]
        assert not bad_head, f"answers other than 200 with a request id before the kill: {[show(c) for c in bad_head[:5]]}"

        # no request id twice in the chain
        dups = duplicated_records(drill.db_url, drill.chain_id)
        assert dups == [], f"request ids with more than one record of a kind after the restart: {dups[:10]}"
        multi = {rid: rs for rid, rs in rows.items() if len(rs) > 1}
        assert not multi, f"request ids with several audit.exchanges rows: {list(multi.items())[:5]}"

        # every call whose complete answer the client received has its response record, outcome ok
        not_recorded = [c for c in answered if not any(
            r["response_seq"] is not None and r["outcome"] == "ok" and r["status_code"] == 200
            and r["output_tokens"] == expected_tokens(c) for r in rows.get(c.request_id, []))]
        assert not not_recorded, (
            f"{len(not_recorded)} of {len(answered)} calls whose complete answer the client received have no complete "
            f"exchange (response record, outcome ok, status 200, output tokens) after the SIGKILL and the restart "
            f"(times in ms relative to the kill): {[show(c) for c in not_recorded[:8]]}\n"
            f"--- gateway log ---\n{restarted.log(60)}")

        # every call whose answer the client got the head of, but not all of, is there; a stream cut
        # mid-answer (fewer deltas than the answer has) cannot have a response record
        missing = [c for c in in_flight if not rows.get(c.request_id)]
        assert not missing, (
            f"{len(missing)} calls answered with a response head (so their request record was durable) are not in "
            f"audit.exchanges: {[show(c) for c in missing[:8]]}\n--- gateway log ---\n{restarted.log(60)}")
        wrong = [c for c in in_flight if any(
            (r["outcome"] != "incomplete" or r["response_seq"] is not None)
            and not (c.kind == "stream" and c.deltas == STREAM_EVENTS and r["outcome"] == "ok")
            for r in rows[c.request_id])]
        assert not wrong, (
            "calls cut off by the SIGKILL are not recorded as 'incomplete' (the gateway recorded an answer the "
            f"client did not receive): {[show(c) for c in wrong[:8]]}")

        # the chain goes on after the crash: calls through the new gateway are recorded in full
        client = anthropic.Anthropic(api_key=drill.key, base_url=restarted.url, max_retries=0, timeout=60)
        after = []
        for n in range(4):
            call = Call(kind="stream" if n == 3 else "plain", thread=-1, started=time.monotonic())
            if call.kind == "stream":
                with client.messages.stream(
                    model=MODEL, max_tokens=64, messages=[{"role": "user", "content": f"after the crash {n}"}],
                    extra_headers={"x-standin-events": str(STREAM_EVENTS), "x-standin-event-interval": "0.01"},
                ) as stream:
                    call.request_id = stream.response.headers.get("x-auditgate-request-id")
                    call.output_tokens = stream.get_final_message().usage.output_tokens
            else:
                Load._plain(client, call, f"after the crash {n}")
            after.append(call)
        client.close()
        wait_caught_up(drill)
        after_rows = exchanges(drill.db_url, [c.request_id for c in after])
        bad_after = [(c.request_id, after_rows.get(c.request_id)) for c in after if not any(
            r["outcome"] == "ok" and r["response_seq"] is not None and r["output_tokens"] == expected_tokens(c)
            for r in after_rows.get(c.request_id, []))]
        assert not bad_after, f"calls after the restart without a complete exchange: {bad_after}\n{restarted.log(40)}"
    finally:
        load.stop()
        if gw.proc is not None:
            gw.proc.kill()
            gw.proc.wait(10)
            gw.proc = None
        rc = restarted.stop(30) if restarted is not None else None
        drill.standin.stop()

    assert rc == 0, f"the restarted gateway exited {rc!r} on SIGTERM\n--- gateway log ---\n{drill.log(40)}"
    verified = assert_chain_verifies(drill)
    print(f"verify: {verified}; drill took {time.monotonic() - t_start:.1f} s")


# ------------------------------------------------------------------------------------------------
# 2. PostgreSQL is SIGKILLed


def test_postgres_sigkill_under_load(compat_env, own_cluster, workdir):
    pgdir, pgport = own_cluster
    drill = setup_drill("pgkill", compat_env, own_cluster, workdir)
    gw = drill.gateway
    load = Load(gw.url, drill.key, "pgkill")
    t_start = time.monotonic()
    try:
        load.start()
        wait_for_load(load, 2.0, drill)

        # SIGKILL the postmaster; its backends notice and exit; wait until none of the cluster is left
        pid = postmaster_pid(pgdir)
        children = [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        deadline = t_kill + 30
        left = cluster_processes(pgdir, [pid] + children)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = cluster_processes(pgdir, [pid] + children)
        assert not left, f"processes of the killed cluster still running 30 s after the SIGKILL: {left}"
        t_gone = time.monotonic()
        try:
            psql(f"postgresql://postgres@127.0.0.1:{pgport}/postgres", "SELECT 1", timeout=10)
        except RuntimeError:
            pass
        else:
            pytest.fail(f"PostgreSQL on port {pgport} still answers after its postmaster was SIGKILLed")

        # ~3 s with the store down: the spool takes the records
        time.sleep(3.0)
        t_restart = time.monotonic()
        try:
            pg_script(f"pg_start {pgdir} {pgport}")
        except RuntimeError:
            (pgdir / "postmaster.pid").unlink(missing_ok=True)
            pg_script(f"pg_start {pgdir} {pgport}")
        t_up = time.monotonic()
        time.sleep(1.0)
        load.stop()
        load.join()
        calls = load.snapshot()

        failed = [c for c in calls if not (c.complete and c.status == 200 and c.request_id)]
        during = [c for c in calls if c.complete and c.started >= t_gone and c.ended <= t_restart]
        print(f"\nPostgreSQL SIGKILL drill: {len(calls)} calls ({sum(c.kind == 'stream' for c in calls)} streams) in "
              f"{time.monotonic() - load.t0:.1f} s; {len(calls) - len(failed)} answered 200, {len(failed)} failed; "
              f"{len(during)} calls made and answered entirely while the store was down "
              f"({t_restart - t_gone:.1f} s); PostgreSQL back {t_up - t_restart:.1f} s after pg_start")
        assert not failed, (
            f"{len(failed)} calls did not get a complete 200 answer across the PostgreSQL SIGKILL (times in ms from the "
            f"kill): {[c.brief(t_kill) for c in failed[:8]]}\n--- gateway log ---\n{drill.log(60)}")
        assert during, "no call was made and answered while the store was down: the drill proved nothing"

        # every answered call is a complete exchange in the store within 60 s
        deadline = time.monotonic() + 60
        while True:
            rows = exchanges(drill.db_url, [c.request_id for c in calls])
            missing = [c for c in calls if not any(
                r["response_seq"] is not None and r["outcome"] == "ok" and r["status_code"] == 200
                and r["output_tokens"] == expected_tokens(c) for r in rows.get(c.request_id, []))]
            if not missing or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        caught_up = time.monotonic() - t_up
        assert not missing, (
            f"{len(missing)} of {len(calls)} answered calls have no complete exchange 60 s after PostgreSQL came back: "
            f"{[(c.brief(t_kill), rows.get(c.request_id)) for c in missing[:8]]}\n--- gateway log ---\n{drill.log(60)}")
        print(f"all {len(calls)} answered calls complete in the store {caught_up:.1f} s after PostgreSQL was back")
        dups = duplicated_records(drill.db_url, drill.chain_id)
        assert dups == [], f"request ids with more than one record of a kind after the store came back: {dups[:10]}"
        multi = {rid: rs for rid, rs in rows.items() if len(rs) > 1}
        assert not multi, f"request ids with several audit.exchanges rows: {list(multi.items())[:5]}"
    finally:
        load.stop()
        rc = gw.stop(30)
        drill.standin.stop()

    assert rc == 0, f"the gateway exited {rc!r} on SIGTERM\n--- gateway log ---\n{drill.log(40)}"
    verified = assert_chain_verifies(drill)
    print(f"verify: {verified}; drill took {time.monotonic() - t_start:.1f} s")
