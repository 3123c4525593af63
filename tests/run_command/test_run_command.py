"""The README's run command, `bash scripts/run.sh`, run as a newcomer would: in a fresh copy of the
repository, again and again, with what an earlier run left behind.

Each run's printed first call (the `curl` lines under "Try it:") is run exactly as printed, and every
exchange it made is looked up in the store of that copy. The copy builds AuditGate from scratch (a
few minutes on 2 cores), as a fresh clone does.

    python3 -m pytest -q tests/run_command
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1500  # a first debug build in the copy, on a slow 2-core machine
START_TIMEOUT = 120   # a later run: the build is up to date


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env["AUDITGATE_PORT"] = str(port)
    return env


class Run:
    """One `bash scripts/run.sh` in its own process group, its output in a file."""

    def __init__(self, copy: Path, port: int, name: str):
        self.copy, self.port = copy, port
        self.log = copy / f"run-{name}.out"
        self.proc = subprocess.Popen(
            ["bash", "scripts/run.sh"], cwd=copy, env=client_env(port),
            stdin=subprocess.DEVNULL, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self, timeout: float) -> None:
        """Until the gateway answers on the run's port (strict auth guards /healthz too: any answer will do)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"run.sh exited with {self.proc.returncode} before serving:\n{self.output()[-6000:]}")
            if "Your client key:" in self.output():
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        if s.recv(64).startswith(b"HTTP/1.1 "):
                            return
                except OSError:
                    pass
            time.sleep(0.5)
        pytest.fail(f"run.sh did not serve within {timeout} s:\n{self.output()[-6000:]}")

    def printed_first_call(self) -> str:
        """The curl command under "Try it:", continuation lines joined, exactly as printed."""
        lines = self.output().splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip() == "Try it:") + 1
        command = []
        for line in lines[start:]:
            command.append(line.strip())
            if not line.rstrip().endswith("\\"):
                break
        return "\n".join(command)

    def make_first_call(self) -> dict:
        command = self.printed_first_call()
        assert command.startswith("curl "), command
        proc = subprocess.run(["bash", "-c", command], env=client_env(self.port), capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        answer = json.loads(proc.stdout)
        assert answer.get("type") == "message" and answer["content"], answer
        return answer

    def store_port(self) -> int:
        return int(re.search(r"audit store: PostgreSQL 127\.0\.0\.1:(\d+)", self.output()).group(1))

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the whole foreground group, as a terminal sends it."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            pytest.fail(f"run.sh did not stop on Ctrl-C:\n{self.output()[-4000:]}")


def exchanges(copy: Path, port: int) -> list[tuple[str, str]]:
    out = subprocess.run(
        ["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", "auditgate_reader", "auditgate",
         "-c", "SELECT user_id, outcome FROM audit.exchanges WHERE path = '/v1/messages' ORDER BY started_at"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return [tuple(line.split("|")) for line in out.stdout.splitlines()]


def wait_exchanges(copy: Path, port: int, count: int) -> list[tuple[str, str]]:
    deadline = time.monotonic() + 30
    while True:
        rows = exchanges(copy, port)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


@pytest.fixture(scope="module")
def fresh_copy():
    """The repository's files (tracked, and new ones not ignored) in a new folder, as a clone has them."""
    parent = Path(tempfile.mkdtemp(prefix="auditgate-run-"))
    parent.chmod(0o755)  # PostgreSQL runs as `postgres` and must reach .auditgate-dev/pg
    copy = parent / "auditgate"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO_ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO_ROOT / os.fsdecode(name)
        if source.is_file():
            target = copy / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode & 0o777)
    yield copy
    subprocess.run(["bash", "-c", "source scripts/postgres.sh && pg_stop .auditgate-dev/pg"], cwd=copy)
    for pidfile in ("gateway.pid", "standin.pid"):
        try:
            os.kill(int((copy / ".auditgate-dev" / pidfile).read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    if not os.environ.get("AUDITGATE_TEST_KEEP"):
        subprocess.run(["rm", "-rf", str(parent)])
    # SwiftPM leaves its lock files for the copy's build folder in /tmp.
    for lock in Path(tempfile.gettempdir()).glob("_tmp_" + parent.name + "_*"):
        lock.unlink(missing_ok=True)


def test_a_taken_port_is_named_at_once(fresh_copy):
    """Before minutes of building: one line that says which port and what to do."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = subprocess.run(["bash", "scripts/run.sh"], cwd=fresh_copy, env=client_env(port),
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert f"port {port} is already in use" in last and f"AUDITGATE_PORT={port + 1}" in last, proc.stderr
    assert not (fresh_copy / ".build").exists(), "the build started although the port was taken"


def test_run_again_and_again(fresh_copy):
    port = free_port()

    # 1. The first run: builds, creates the cluster, starts the stand-in; Ctrl-C stops it.
    first = Run(fresh_copy, port, "1")
    first.wait_serving(BUILD_TIMEOUT)
    out = first.output()
    assert "created and started a new cluster" in out and "client key: made a new one" in out, out[-3000:]
    first.make_first_call()
    store = first.store_port()
    assert wait_exchanges(fresh_copy, store, 1) == [("newcomer", "ok")]
    first.interrupt()
    assert (fresh_copy / ".auditgate-dev" / "pg" / "postmaster.pid").exists(), "PostgreSQL should keep running"

    # 2. Again, with the first run's PostgreSQL still up and whatever port file it left behind.
    (fresh_copy / ".auditgate-dev" / "standin.port").write_text("1\n")  # a stale port file
    second = Run(fresh_copy, port, "2")
    second.wait_serving(START_TIMEOUT)
    out = second.output()
    assert "PostgreSQL: reused the cluster still running" in out and "client key: reused" in out, out[-3000:]
    second.make_first_call()
    assert second.store_port() == store
    assert wait_exchanges(fresh_copy, store, 2) == [("newcomer", "ok")] * 2

    # 3. The script killed outright (kill -9): its gateway and stand-in live on. The next run names the
    #    gateway that holds the port; once that is stopped, it replaces the orphaned stand-in.
    gateway_pid = int((fresh_copy / ".auditgate-dev" / "gateway.pid").read_text())
    standin_pid = int((fresh_copy / ".auditgate-dev" / "standin.pid").read_text())
    second.proc.send_signal(signal.SIGKILL)
    second.proc.wait(10)
    os.kill(standin_pid, 0)  # still alive
    third = subprocess.run(["bash", "scripts/run.sh"], cwd=fresh_copy, env=client_env(port),
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert third.returncode == 1
    assert f"held by the AuditGate an earlier run started (pid {gateway_pid})" in third.stderr, third.stderr
    assert f"kill {gateway_pid}" in third.stderr
    os.kill(gateway_pid, signal.SIGTERM)
    for _ in range(100):
        if not Path(f"/proc/{gateway_pid}").exists():
            break
        time.sleep(0.1)

    fourth = Run(fresh_copy, port, "4")
    fourth.wait_serving(START_TIMEOUT)
    assert f"stopped the one an earlier run left running (pid {standin_pid})" in fourth.output()
    fourth.make_first_call()
    assert wait_exchanges(fresh_copy, store, 3) == [("newcomer", "ok")] * 3
    fourth.interrupt()

    verify = subprocess.run(
        [str(fresh_copy / ".build" / "debug" / "auditgate-report"), "verify"],
        env={**client_env(port), "AUDITGATE_DATABASE_URL": f"postgresql://auditgate_reader@127.0.0.1:{store}/auditgate"},
        capture_output=True, text=True, timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
