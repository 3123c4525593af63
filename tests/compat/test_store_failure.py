"""503 when no record can be made durable, and no 200 without a record.

A second gateway on its own throwaway PostgreSQL cluster (scripts/postgres.sh) with a small spool
(audit.spool_max_bytes 1048577): one call, then PostgreSQL stops; calls with ~10 KB prompts fill
the spool until the gateway answers 503; PostgreSQL comes back on the same port, and every call
that got a 200 must be in the store, and the hash chain must recompute (`auditgate-report verify`).
"""

from __future__ import annotations

import json
import time

import anthropic
import pytest

from conftest import (
    Gateway, config_yaml, free_port, http, migrate, new_client_key, pg_script, psql, report_verify, verified_chain,
    writer_url,
)

MODEL = "claude-sonnet-4-6"
MAX_CALLS = 300


def test_503_when_no_record_can_be_made_durable(compat_env, standin, own_cluster, workdir):
    _su, bin_dir = compat_env
    pgdir, pgport = own_cluster
    su_url = f"postgresql://postgres@127.0.0.1:{pgport}/postgres"
    psql(su_url, "CREATE DATABASE compat503")
    db_url = f"postgresql://postgres@127.0.0.1:{pgport}/compat503"
    migrate(bin_dir, db_url)

    key = new_client_key()
    spool = workdir / "spool503"
    spool.mkdir()
    port = free_port()
    cfg = workdir / "auditgate-503.yaml"
    cfg.write_text(config_yaml(
        port=port, database_url=writer_url(su_url, "compat503"), standin_url=standin.url,
        keys=[(key, "carol", "store")], chain_id="compat503", spool_dir=spool, spool_max_bytes=1048577))
    gw = Gateway(bin_dir=bin_dir, config_path=cfg, log_path=workdir / "gateway-503.log", port=port)
    gw.start(health_key=key, timeout=60)
    client = anthropic.Anthropic(api_key=key, base_url=gw.url, max_retries=0, timeout=60)

    def call(text: str):
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": text}])
        raw.parse()
        return raw.headers.get("x-auditgate-request-id")

    ok_ids = []
    try:
        ok_ids.append(call("before the database stops"))
        pg_script(f"pg_stop {pgdir}")

        filler = " ".join(["lorem"] * 1700)  # ~10 KB
        refused = None
        calls = 0
        while calls < MAX_CALLS:
            calls += 1
            try:
                ok_ids.append(call(f"call {calls} {filler}"))
            except anthropic.APIStatusError as e:
                refused = e
                break
        assert refused is not None, (
            f"{MAX_CALLS} calls of ~10 KB with the database down and a 1 MiB spool, and no 503\n{gw.log(60)}")
        assert refused.status_code == 503, f"expected 503, got {refused.status_code}: {refused}\n{gw.log(60)}"
        assert isinstance(refused, anthropic.InternalServerError), type(refused)
        assert calls > 1, "the very first call with the database down was refused: the spool did not absorb any call"
        ready = http("GET", gw.url + "/readyz", {"x-api-key": key})
        assert ready.status == 503, f"/readyz answered {ready.status} {ready.body[:200]!r} while calls are refused"

        pg_script(f"pg_start {pgdir} {pgport}")
        # every call that got a 200 reaches the store, with its response record
        deadline = time.monotonic() + 120
        missing = set(ok_ids)
        while missing and time.monotonic() < deadline:
            ids = ",".join("'" + i + "'" for i in sorted(missing))
            found = psql(db_url, f"SELECT request_id FROM audit.exchanges WHERE request_id IN ({ids}) "
                                 "AND response_seq IS NOT NULL").split()
            missing -= set(found)
            if missing:
                time.sleep(1)
        if missing:
            ids = ",".join("'" + i + "'" for i in sorted(missing))
            rows = [json.loads(line) for line in psql(
                db_url, f"SELECT row_to_json(e) FROM audit.exchanges e WHERE request_id IN ({ids})").splitlines() if line]
            shown = [{k: r.get(k) for k in ("request_id", "request_seq", "response_seq", "status_code", "outcome")}
                     for r in rows]
            absent = sorted(missing - {r["request_id"] for r in rows})
            pytest.fail(
                f"{len(missing)} of {len(ok_ids)} calls answered 200 have no complete exchange in the store 120 s after "
                f"PostgreSQL came back (refused at call {calls} after the stop).\n"
                f"with no record at all: {absent[:5]}\nwith a request record only: {shown[:5]}\n"
                f"--- gateway log ---\n{gw.log(40)}")

        # and the gateway takes calls again
        deadline = time.monotonic() + 60
        last = None
        while time.monotonic() < deadline:
            try:
                call("after the database came back")
                break
            except anthropic.APIStatusError as e:
                last = e
                time.sleep(1)
        else:
            pytest.fail(f"still refusing 60 s after PostgreSQL came back: {last}\n{gw.log(60)}")
        ready = http("GET", gw.url + "/readyz", {"x-api-key": key})
        assert ready.status == 200, f"/readyz {ready.status} {ready.body[:200]!r} after recovery"
        print(f"\n503 after {calls} calls with the database down ({len(ok_ids)} calls answered 200 in all)")
    finally:
        rc = gw.stop(30)
        print(f"store-failure gateway exit code: {rc}")

    # no corruption: the chain written across the stop, the full spool and the recovery recomputes
    proc = report_verify(bin_dir, f"postgresql://auditgate_reader@127.0.0.1:{pgport}/compat503")
    assert proc.returncode == 0, (
        f"auditgate-report verify exited {proc.returncode} after the spool-full recovery:\n{proc.stdout}\n{proc.stderr}\n"
        f"--- gateway log ---\n{gw.log(40)}")
    count = int(psql(db_url, "SELECT count(*) FROM audit.events WHERE chain_id = 'compat503'"))
    chain = verified_chain(proc.stdout, "compat503")
    assert chain == (1, count, count), f"verify reported {chain} for compat503, the store holds {count} records:\n{proc.stdout}"
    print(f"verify: {proc.stdout.strip().splitlines()[-1]}")
