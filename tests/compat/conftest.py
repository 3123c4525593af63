"""SDK compatibility suite: drives a RUNNING AuditGate with the official `anthropic` and `openai`
Python SDKs and checks what lands in the audit store (view `audit.exchanges`).

Needs:
  AUDITGATE_TEST_DATABASE_URL  superuser libpq URL of the `postgres` database of a running PostgreSQL
                               (e.g. postgresql://postgres@127.0.0.1:5432/postgres)
  AUDITGATE_BIN_DIR            folder with the built `auditgate` and `auditgate-report`
Without either, every test here is skipped.

    python3 -m pytest -q tests/compat

The session fixture `stack` builds everything on loopback: a fresh database `compat_<random>`
migrated with `auditgate migrate`, the provider stand-in (tools/standin/standin.py), two client keys
(alice/risk, bob/ops), a configuration file, and `auditgate serve`. Set AUDITGATE_TEST_KEEP=1 to
keep the database and the temporary folder (config, gateway log, spool) after the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDIN = REPO_ROOT / "tools" / "standin" / "standin.py"

ANTHROPIC_PROVIDER_KEY = "sk-ant-provider-standin-0001"
OPENAI_PROVIDER_KEY = "sk-openai-provider-standin-0001"

ENV_DB = "AUDITGATE_TEST_DATABASE_URL"
ENV_BIN = "AUDITGATE_BIN_DIR"

# Loopback traffic must never go through a proxy (the SDKs, urllib and the gateway honour *_PROXY).
_no_proxy = "127.0.0.1,localhost,::1"
for _name in ("NO_PROXY", "no_proxy"):
    _cur = os.environ.get(_name)
    os.environ[_name] = f"{_cur},{_no_proxy}" if _cur else _no_proxy


def _missing_env_reason() -> str | None:
    missing = [n for n in (ENV_DB, ENV_BIN) if not os.environ.get(n)]
    if missing:
        return (
            f"tests/compat needs a running PostgreSQL and a built gateway: set {' and '.join(missing)} "
            f"({ENV_DB}=postgresql://postgres@127.0.0.1:PORT/postgres, {ENV_BIN}=.build/debug)"
        )
    bin_dir = Path(os.environ[ENV_BIN])
    for exe in ("auditgate", "auditgate-report"):
        if not os.access(bin_dir / exe, os.X_OK):
            return f"tests/compat: {bin_dir / exe} is not an executable ({ENV_BIN}={bin_dir})"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing_env_reason()
    if reason is None:
        return
    here = Path(__file__).resolve().parent
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(here):
            item.add_marker(marker)


# ------------------------------------------------------------------------------------------------
# small helpers


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class HTTPResult:
    status: int
    headers: dict  # lower-case name -> value (last wins)
    body: bytes

    def json(self):
        return json.loads(self.body)


def http(method: str, url: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 60) -> HTTPResult:
    """One plain HTTP call (no proxy); HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return HTTPResult(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as e:
        return HTTPResult(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_client_key() -> str:
    return "agk_" + secrets.token_hex(32)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def with_database(url: str, dbname: str) -> str:
    """The same libpq URL pointing at another database."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def psql(url: str, sql: str, timeout: float = 60) -> str:
    proc = subprocess.run(
        ["psql", url, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"psql failed ({proc.returncode}) for {sql!r}:\n{proc.stderr}")
    return proc.stdout


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def sql_literal(value: str) -> str:
    if not _SAFE_ID.match(value):
        raise ValueError(f"unexpected characters in {value!r}")
    return "'" + value + "'"


def proxy_free_env() -> dict:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = _no_proxy
    return env


def gateway_env() -> dict:
    """The gateway's environment: no proxy, and the provider keys the config names as ${...}."""
    env = proxy_free_env()
    env["AUDITGATE_COMPAT_ANTHROPIC_KEY"] = ANTHROPIC_PROVIDER_KEY
    env["AUDITGATE_COMPAT_OPENAI_KEY"] = OPENAI_PROVIDER_KEY
    return env


def tail(path: Path, lines: int = 120) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------------------------------------
# stand-in


@dataclass
class Standin:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def requests(self) -> list:
        r = http("GET", self.url + "/_standin/requests")
        assert r.status == 200, r
        return r.json()

    def find(self, marker: str) -> list:
        """Recorded requests whose body or path contains `marker`."""
        return [rec for rec in self.requests() if marker in rec["body_text"] or marker in rec["path"]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_standin(workdir: Path) -> Standin:
    port_file = workdir / "standin.port"
    log_path = workdir / "standin.out"
    out = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--port", "0", "--port-file", str(port_file)],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=proxy_free_env(),
    )
    out.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            break
        if proc.poll() is not None:
            raise RuntimeError(f"the stand-in exited with {proc.returncode}:\n{tail(log_path)}")
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError(f"the stand-in did not start within 30 s:\n{tail(log_path)}")
    url = f"http://127.0.0.1:{int(port_file.read_text().strip())}"
    return Standin(url=url, proc=proc, log_path=log_path)


# ------------------------------------------------------------------------------------------------
# gateway


def config_yaml(*, port: int, database_url: str, standin_url: str, keys: list, chain_id: str, spool_dir: Path,
                max_body_bytes: int = 1048576, spool_max_bytes: int | None = None) -> str:
    q = json.dumps  # a JSON string is a valid YAML scalar
    lines = [
        "server:",
        "  host: 127.0.0.1",
        f"  port: {port}",
        f"  max_body_bytes: {max_body_bytes}",
        "database:",
        f"  url: {q(database_url)}",
        "upstreams:",
        "  anthropic:",
        f"    base_url: {q(standin_url)}",
        "    api_key: ${AUDITGATE_COMPAT_ANTHROPIC_KEY}",
        "  openai:",
        f"    base_url: {q(standin_url)}",
        "    api_key: ${AUDITGATE_COMPAT_OPENAI_KEY}",
        "auth:",
        "  mode: strict",
        "  keys:",
    ]
    for key, user, team in keys:
        lines += [f"    - key_sha256: {q(sha256_hex(key))}", f"      user: {q(user)}", f"      team: {q(team)}"]
    lines += [
        "audit:",
        f"  chain_id: {q(chain_id)}",
        "  durability: spool",
        f"  spool_dir: {q(str(spool_dir))}",
    ]
    if spool_max_bytes is not None:
        lines.append(f"  spool_max_bytes: {spool_max_bytes}")
    lines += [
        "  on_store_failure: reject",
        "  bodies: redacted",
        "redaction:",
        "  patterns: [email, phone, card, kr_rrn, us_ssn, secret]",
        "  custom:",
        "    - name: employee_id",
        '      regex: "EMP-[0-9]{6}"',
        "",
    ]
    return "\n".join(lines)


@dataclass
class Gateway:
    bin_dir: Path
    config_path: Path
    log_path: Path
    port: int
    proc: subprocess.Popen | None = None
    exit_code: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, lines: int = 150) -> str:
        return tail(self.log_path, lines)

    def start(self, health_key: str | None, timeout: float = 60, env: dict | None = None) -> None:
        """Starts `auditgate serve` (environment: `gateway_env()` unless `env` is given) and waits until
        GET /healthz answers 200 (with `health_key` as x-api-key, or no key); raises with the log otherwise."""
        env = env if env is not None else gateway_env()
        check = subprocess.run(
            [str(self.bin_dir / "auditgate"), "check-config", "--config", str(self.config_path)],
            capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60,
        )
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(self.bin_dir / "auditgate"), "serve", "--config", str(self.config_path)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env,
        )
        out.close()
        headers = {"x-api-key": health_key} if health_key else {}
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                r = http("GET", self.url + "/healthz", headers, timeout=5)
                last = f"{r.status} {r.body[:200]!r}"
                if r.status == 200:
                    return
            except OSError as e:
                last = repr(e)
            time.sleep(0.25)
        rc = self.proc.poll()
        if rc is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        msg = (
            f"auditgate serve did not answer GET /healthz with 200 within {timeout:.0f} s "
            f"(exit code {rc}, last answer {last}).\n"
            f"check-config exit {check.returncode}: {check.stdout}{check.stderr}\n"
            f"--- gateway log {self.log_path} ---\n{self.log(200)}"
        )
        print(msg, file=sys.stderr)
        raise RuntimeError(msg)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait up to `timeout` s; returns the exit code (None when it had to be killed)."""
        if self.proc is None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self.exit_code = None
        else:
            self.exit_code = self.proc.returncode
        self.proc = None
        return self.exit_code


def migrate(bin_dir: Path, superuser_db_url: str) -> None:
    proc = subprocess.run(
        [str(bin_dir / "auditgate"), "migrate", "--database-url", superuser_db_url],
        capture_output=True, text=True, cwd=REPO_ROOT, env=proxy_free_env(), timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"auditgate migrate failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def writer_url(superuser_url: str, dbname: str) -> str:
    parts = urllib.parse.urlsplit(superuser_url)
    port = parts.port or 5432
    return f"postgresql://auditgate_writer@127.0.0.1:{port}/{dbname}"


def report_verify(bin_dir: Path, database_url: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`auditgate-report verify --database URL`: recomputes every hash chain (exit 0 = intact)."""
    return subprocess.run(
        [str(bin_dir / "auditgate-report"), "verify", "--database", database_url],
        capture_output=True, text=True, cwd=REPO_ROOT, env=proxy_free_env(), timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def verified_chain(verify_stdout: str, chain_id: str) -> tuple[int, int, int] | None:
    """(first seq, last seq, record count) of `chain_id` when `auditgate-report verify` says it is intact."""
    m = re.search(rf"^chain {re.escape(chain_id)}: seq (\d+)\.\.\.(\d+), (\d+) records, .* intact$", verify_stdout, re.M)
    return tuple(int(g) for g in m.groups()) if m else None


# ------------------------------------------------------------------------------------------------
# throwaway PostgreSQL clusters (scripts/postgres.sh), for tests that stop or kill the store


def pg_script(cmd: str, timeout: float = 180) -> str:
    """Runs `cmd` in bash after `source scripts/postgres.sh` (pg_start, pg_stop, pg_bindir ...)."""
    proc = subprocess.run(
        ["bash", "-c", f"source scripts/postgres.sh; {cmd}"], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture
def own_cluster(compat_env):
    """(data directory, port) of a PostgreSQL cluster of this test's own, stopped and removed after it."""
    if not pg_script("pg_bindir").strip():
        pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl) for a throwaway cluster")
    # directly under /tmp: pg_start chowns it to postgres, whose parent folders must be traversable
    pgdir = Path("/tmp") / f"auditgate-compat-pg-{secrets.token_hex(4)}"
    port = int(pg_script(f"pg_start {pgdir} && echo $PGPORT").strip().splitlines()[-1])
    yield pgdir, port
    pg_script(f"pg_stop {pgdir}")
    shutil.rmtree(pgdir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# the stack


@dataclass
class Stack:
    base_url: str            # gateway origin, e.g. http://127.0.0.1:PORT (Anthropic base_url)
    openai_base_url: str     # base_url + "/v1"
    alice_key: str           # alice / risk
    bob_key: str             # bob / ops
    db_url: str              # superuser URL of the test database
    db_name: str
    standin_url: str
    standin: Standin
    spool_dir: Path
    log_path: Path
    config_path: Path
    workdir: Path
    gateway: Gateway
    bin_dir: Path
    made_request_ids: list = field(default_factory=list)

    def psql(self, sql: str) -> str:
        return psql(self.db_url, sql)

    def log(self, lines: int = 150) -> str:
        return self.gateway.log(lines)

    def exchange(self, request_id: str, timeout: float = 15) -> dict:
        """The `audit.exchanges` row of `request_id`, once its response record is there."""
        assert request_id, "no x-auditgate-request-id header in the gateway's answer"
        self.made_request_ids.append(request_id)
        sql = f"SELECT row_to_json(e) FROM audit.exchanges e WHERE request_id = {sql_literal(request_id)}"
        deadline = time.monotonic() + timeout
        row = None
        while True:
            out = self.psql(sql).strip()
            if out:
                rows = [json.loads(line) for line in out.splitlines() if line.strip()]
                assert len(rows) == 1, f"{len(rows)} rows in audit.exchanges for {request_id}: {rows}"
                row = rows[0]
                if row.get("response_seq") is not None:
                    return row
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        pytest.fail(
            f"no complete audit.exchanges row for {request_id} within {timeout} s; last row seen: {row}\n"
            f"--- gateway log ---\n{self.log(60)}"
        )

    def all_bodies_text(self) -> str:
        return self.psql("SELECT coalesce(string_agg(body, E'\\n'), '') FROM audit.bodies")


def _require_env():
    reason = _missing_env_reason()
    if reason:
        pytest.skip(reason)
    return os.environ[ENV_DB], Path(os.environ[ENV_BIN]).resolve()


@pytest.fixture(scope="session")
def compat_env():
    """(superuser URL of the `postgres` database, bin dir); skips when not configured."""
    return _require_env()


@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="auditgate-compat-"))
    yield d
    if os.environ.get("AUDITGATE_TEST_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"\nkept {d}", file=sys.stderr)


@pytest.fixture(scope="session")
def standin(compat_env, workdir):
    s = start_standin(workdir)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def stack(compat_env, workdir, standin):
    su_url, bin_dir = compat_env
    db_name = "compat_" + secrets.token_hex(6)
    psql(su_url, f"CREATE DATABASE {db_name}")
    db_url = with_database(su_url, db_name)
    try:
        migrate(bin_dir, db_url)

        alice, bob = new_client_key(), new_client_key()
        spool_dir = workdir / "spool"
        spool_dir.mkdir()
        port = free_port()
        config_path = workdir / "auditgate.yaml"
        config_path.write_text(config_yaml(
            port=port, database_url=writer_url(su_url, db_name), standin_url=standin.url,
            keys=[(alice, "alice", "risk"), (bob, "bob", "ops")], chain_id="compat", spool_dir=spool_dir,
        ))
        gw = Gateway(bin_dir=bin_dir, config_path=config_path, log_path=workdir / "gateway.log", port=port)
        gw.start(health_key=alice, timeout=60)
        s = Stack(
            base_url=gw.url, openai_base_url=gw.url + "/v1", alice_key=alice, bob_key=bob,
            db_url=db_url, db_name=db_name, standin_url=standin.url, standin=standin,
            spool_dir=spool_dir, log_path=gw.log_path, config_path=config_path, workdir=workdir,
            gateway=gw, bin_dir=bin_dir,
        )
        yield s
        gw.stop(15)
    finally:
        if os.environ.get("AUDITGATE_TEST_KEEP") != "1":
            try:
                psql(su_url, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
            except Exception as e:  # noqa: BLE001 - best effort
                print(f"could not drop {db_name}: {e}", file=sys.stderr)
        else:
            print(f"\nkept database {db_name}", file=sys.stderr)


@pytest.fixture
def exchange(stack):
    """exchange(request_id) -> the audit.exchanges row (dict) once its response record exists."""
    return stack.exchange


@pytest.fixture
def anthropic_client(stack):
    import anthropic

    return anthropic.Anthropic(api_key=stack.alice_key, base_url=stack.base_url, max_retries=0, timeout=60)


@pytest.fixture
def openai_client(stack):
    import openai

    return openai.OpenAI(api_key=stack.bob_key, base_url=stack.openai_base_url, max_retries=0, timeout=60)


# ------------------------------------------------------------------------------------------------
# extra gateways with their own configuration (tests/compat/test_gateway_behaviour.py)


def custom_config_yaml(stack: "Stack", *, port: int, chain_id: str, spool_dir: Path, auth_mode: str = "strict",
                       host: str = "127.0.0.1", anthropic_base_url: str | None = None,
                       openai_base_url: str | None = None, first_byte_timeout_seconds: int | None = None,
                       egress_proxy: str | None = None, egress_ca_file: str | Path | None = None,
                       max_body_bytes: int = 1048576, server_extra: list[str] | None = None,
                       upstreams_extra: list[str] | None = None) -> str:
    """The session stack's configuration (same database, keys, stand-in) with some keys changed."""
    su_url, _ = _require_env()
    text = config_yaml(
        port=port, database_url=writer_url(su_url, stack.db_name), standin_url=stack.standin_url,
        keys=[(stack.alice_key, "alice", "risk"), (stack.bob_key, "bob", "ops")], chain_id=chain_id,
        spool_dir=spool_dir, max_body_bytes=max_body_bytes,
    )
    q = json.dumps
    lines = text.split("\n")
    out = []
    section = None
    for line in lines:
        if line and not line.startswith(" "):
            section = line.rstrip(":")
        stripped = line.strip()
        if section == "server" and stripped.startswith("host:"):
            line = f"  host: {q(host)}"
        elif section == "auth" and stripped.startswith("mode:"):
            line = f"  mode: {auth_mode}"
        out.append(line)
        if line == "upstreams:" and first_byte_timeout_seconds is not None:
            out.append(f"  first_byte_timeout_seconds: {first_byte_timeout_seconds}")
        if line == "upstreams:" and upstreams_extra:
            out.extend(upstreams_extra)
    text = "\n".join(out)
    # base_url lines: the first belongs to anthropic, the second to openai
    std = f"    base_url: {q(stack.standin_url)}"
    a_line = f"    base_url: {q(anthropic_base_url or stack.standin_url)}"
    o_line = f"    base_url: {q(openai_base_url or stack.standin_url)}"
    text = text.replace(std, a_line, 1)
    idx = text.index(a_line) + len(a_line)
    text = text[:idx] + text[idx:].replace(std, o_line, 1)
    egress = []
    if egress_proxy is not None:
        egress.append(f"  proxy: {q(egress_proxy)}")
    if egress_ca_file is not None:
        egress.append(f"  ca_file: {q(str(egress_ca_file))}")
    if egress:
        text = text.replace("\nauth:\n", "\negress:\n" + "\n".join(egress) + "\nauth:\n", 1)
    if server_extra:  # more `server:` keys, as YAML lines under it (e.g. "  max_connections: 2")
        text = text.replace("\ndatabase:\n", "\n" + "\n".join(server_extra) + "\ndatabase:\n", 1)
    return text


@pytest.fixture
def make_gateway(stack):
    """make_gateway(name, env=None, **custom_config_yaml options) -> a started Gateway (stopped after the test)."""
    started = []

    def make(name: str, env: dict | None = None, health_key: str | None = "alice", **opts) -> Gateway:
        suffix = secrets.token_hex(3)
        d = stack.workdir / f"gw-{name}-{suffix}"
        d.mkdir()
        spool = d / "spool"
        spool.mkdir()
        port = free_port()
        cfg = d / "auditgate.yaml"
        cfg.write_text(custom_config_yaml(stack, port=port, chain_id=f"{name}-{suffix}", spool_dir=spool, **opts))
        gw = Gateway(bin_dir=stack.bin_dir, config_path=cfg, log_path=d / "gateway.log", port=port)
        started.append(gw)
        key = stack.alice_key if health_key == "alice" else health_key
        gw.start(key, env=env)
        return gw

    yield make
    for gw in started:
        gw.stop(15)


# ------------------------------------------------------------------------------------------------
# a TLS upstream: a throwaway CA and a TLS terminator in front of the stand-in (egress TLS tests;
# the forward proxy `fproxy` is in test_gateway_behaviour.py)


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def make_test_pki(d: Path) -> dict:
    """In `d`: a throwaway CA (ca.pem, ca.key) and a certificate for localhost / 127.0.0.1 signed by it
    (server.pem, server.key). Returns their paths: ca, ca_key, server, server_key."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl CLI to make test certificates")
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
             "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=AuditGate compat throwaway CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    pki = {"ca": d / "ca.pem", "ca_key": d / "ca.key"}
    pki["server"], pki["server_key"] = sign_server_cert(pki, "server", "localhost", "DNS:localhost,IP:127.0.0.1")
    return pki


def sign_server_cert(pki: dict, name: str, common_name: str, san: str) -> tuple[Path, Path]:
    """(NAME.pem, NAME.key) next to the CA of `pki`: a server certificate with subjectAltName `san`."""
    d = pki["ca"].parent
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}", cwd=d)
    (d / f"{name}.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-sha256", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)
    return d / f"{name}.pem", d / f"{name}.key"


@pytest.fixture(scope="session")
def throwaway_pki(workdir):
    return make_test_pki(workdir / f"pki-{secrets.token_hex(3)}")


@pytest.fixture
def tls_front(stack, throwaway_pki):
    """(front, ca_path): a TLS terminator on https://localhost:{front.port} (certificate for localhost and
    127.0.0.1, signed by the throwaway CA at ca_path) relaying to the session stand-in."""
    front = start_tls_front(stack, throwaway_pki["server"], throwaway_pki["server_key"])
    yield front, throwaway_pki["ca"]
    front.stop()


def start_tls_front(stack: "Stack", cert: Path, key: Path):
    """A started TLSFront (tests/compat/tls_front.py) with `cert`/`key`, relaying to the session stand-in."""
    from tls_front import TLSFront

    parts = urllib.parse.urlsplit(stack.standin_url)
    return TLSFront((parts.hostname, parts.port), cert, key).start()
