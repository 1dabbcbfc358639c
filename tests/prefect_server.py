"""A real ``prefect server start`` and ``gexflow serve`` as subprocesses, for the scheduler tests.

The server gets its own PREFECT_HOME (so its own SQLite database) under a temp dir, a free port on 127.0.0.1,
no UI and no telemetry, and a 1 s scheduler loop (the default is 60 s). Every process is started in its own
session and stopped (its whole process group) by ``stop``, also when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.25):
    """Poll ``check`` until it returns something truthy (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """This process's environment for a Prefect process of the test: its own home, no telemetry, no UI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GEXFLOW_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",
        PREFECT_SERVER_REGISTER_BLOCKS_ON_START="false",
        PREFECT_API_LOG_RETRYABLE_ERRORS="true",  # the server logs what it answers 503 for
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        PREFECT_LOGGING_LEVEL="INFO",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


class Proc:
    """A subprocess in its own session, its output in a log file (read back for failure messages)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path = REPO):
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def group_alive(self) -> bool:
        """Whether any process of its group (it and the flow-run processes it started) is still running."""
        return _group_alive(self.popen.pid)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left of it."""
        pgid = self.popen.pid  # start_new_session: the process leads its own group
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
            if not _group_alive(pgid):
                break
        self._out.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class PrefectServer:
    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.proc: Proc | None = None

    def start(self, timeout_s: float = 60.0) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--no-ui", "--analytics-off"]
        self.proc = Proc(argv, prefect_env(self.home), self.home / "server.log")
        wait_for(self._healthy, timeout_s, f"prefect server on {self.api_url}")
        return self

    def _healthy(self) -> bool:
        if self.proc.popen.poll() is not None:
            raise AssertionError(f"prefect server exited:\n{self.proc.output()[-3000:]}")
        try:
            return httpx.get(f"{self.api_url}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def errors(self, last: int = 5) -> str:
        """The last distinct exception lines of the server's log (what a failing test reports)."""
        lines = [ln for ln in self.proc.output().splitlines() if ln[:1].isalpha() and "Error: " in ln]
        return "\n".join(dict.fromkeys(lines[-50:])) if lines else "(no exception in the server log)"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def serve(self, data_dir: Path, api_url: str, log: Path, **extra_env: str) -> Proc:
        """``gexflow serve`` (this worktree's code) against this server, for BTC, the exchange at ``api_url``."""
        env = prefect_env(self.home, self.api_url)
        env.update(GEXFLOW_DERIBIT_URL=api_url, GEXFLOW_MAX_SNAPSHOT_AGE_S="0", **extra_env)
        argv = [sys.executable, "-m", "pipelines.cli", "serve", "--data-dir", str(data_dir), "--currency", "BTC"]
        return Proc(argv, env, log)
