"""A Prefect server in a subprocess on a loopback port, for a workstation, the tests and the benchmarks.

`with local_prefect_server(home) as api_url: ...` starts `prefect server start` with its own
PREFECT_HOME (no UI, no analytics), waits until /api/health answers and stops it on exit.

`ephemeral_server(home, env)` starts, without waiting, the server one CLI command runs on the
embedded default: the caller does its own imports while the server starts.

`ServerFiles.of(bifrost_home)` names the files of the persistent server that `bifrost server
start` runs (cli/server.py, cli/runner.py): its state file, logs, Prefect home and the warm
runner's socket, all under `$BIFROST_HOME/server/`; `read_state` tells whether it is up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ServerDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_prefect_server(home: Path, *, port: int | None = None, timeout: float = 120) -> Iterator[str]:
    """Yields the server's API URL; its log is `home/server.log`."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log_path = home / "server.log"
    prefect = str(Path(sys.executable).parent / "prefect")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}/api", log_path)
    try:
        yield server.wait_ready(timeout)
    finally:
        server.stop()


@dataclass
class ServerProcess:
    """A Prefect server started as a subprocess, its API URL and its log."""

    process: subprocess.Popen[bytes]
    api_url: str
    log_path: Path

    def wait_ready(self, timeout: float = 120) -> str:
        """Block until /health answers; the API URL. ServerDidNotStart if it exits or times out."""
        deadline = time.monotonic() + timeout
        while not _healthy(self.api_url):
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise ServerDidNotStart(f"the Prefect server exited ({tail[0]}); its log is {self.log_path}")
            if time.monotonic() > deadline:
                raise ServerDidNotStart(f"no answer on {self.api_url}/health within {timeout:.0f} s")
            time.sleep(0.1)
        return self.api_url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ephemeral_server(home: Path, env: Mapping[str, str]) -> ServerProcess:
    """Start the API app Prefect itself runs for a temporary server (no UI; background
    services as Prefect's ephemeral mode has them) on a socket bound here, without waiting.

    The port is held from the start, so PREFECT_API_URL can be set before Prefect is
    imported and no other process can take it; a request made before the server is ready
    waits in the socket's backlog. Prefect's own ephemeral mode starts the same app only
    when the first API call needs it, after every import: the two then take turns.
    """
    home.mkdir(parents=True, exist_ok=True)
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        log_path = home / "ephemeral-server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    *_dies_with(os.getpid()),
                    "-m",
                    "uvicorn",
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--fd",
                    str(sock.fileno()),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                # The switches Prefect's SubprocessASGIServer sets for the same app.
                env={
                    **env,
                    "PREFECT_HOME": str(home),
                    "PREFECT__SERVER_EPHEMERAL": "1",
                    "PREFECT__SERVER_FINAL": "1",
                },
                pass_fds=(sock.fileno(),),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    finally:
        sock.close()  # the server holds its own copy
    return ServerProcess(process, f"http://127.0.0.1:{port}/api", log_path)


# Run in the child before it becomes the server: on Linux, ask for SIGTERM when the process
# that started it dies (even by kill -9, which runs no atexit), then exec the real command.
_PARENT_DEATH_SIGNAL = """
import ctypes, os, signal, sys
parent = int(sys.argv[1])
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    sys.exit("the process that started this server is gone")
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def _dies_with(parent: int) -> list[str]:
    """The interpreter to start a child server with: one that ends with `parent` where the
    system allows (Linux), else a plain one (stopped at exit by its owner only)."""
    if sys.platform != "linux":
        return [sys.executable]
    return [sys.executable, "-c", _PARENT_DEATH_SIGNAL, str(parent)]


def _healthy(url: str) -> bool:
    import httpx  # here: flow commands import this module and must stay light

    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class ServerFiles:
    """Where the persistent server of one Bifrost home keeps its files."""

    root: Path

    @classmethod
    def of(cls, bifrost_home: Path) -> ServerFiles:
        return cls(bifrost_home / "server")

    @property
    def state(self) -> Path:
        """JSON written by the runner once the server answers and the runner listens."""
        return self.root / "server.json"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def runner_log(self) -> Path:
        return self.root / "runner.log"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def socket(self) -> Path:
        return self.root / "runner.sock"

    @property
    def lock(self) -> Path:
        return self.root / "start.lock"


def persistent_server(files: ServerFiles, port: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """`prefect server start` for a workstation: UI on, Prefect's services on (schedules and
    automations run), its database under `files.prefect_home` unless the operator set
    PREFECT_API_DATABASE_CONNECTION_URL (passed through). It ends with the process that
    starts it (the runner), even on kill -9, so a port is never held by an orphan."""
    files.prefect_home.mkdir(parents=True, exist_ok=True)
    server_env = {
        **env,
        "PREFECT_HOME": str(files.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "true",
    }
    server_env.pop("PREFECT_API_URL", None)
    with files.log.open("ab") as log:
        return subprocess.Popen(
            [
                *_dies_with(os.getpid()),
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=server_env,
            cwd=files.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def database_label(env: Mapping[str, str], files: ServerFiles) -> str:
    """Prefect's own database, as `status` shows it (no password)."""
    url = env.get("PREFECT_API_DATABASE_CONNECTION_URL")
    if not url:
        return f"sqlite {files.prefect_home / 'prefect.db'}"
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def write_state(files: ServerFiles, state: dict[str, Any]) -> None:
    partial = files.state.with_suffix(".part")
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(files.state)


def read_state(files: ServerFiles) -> dict[str, Any] | None:
    """The running server's state, or None. A state file whose runner is gone (killed, or its
    pid now another program's) is stale: it is removed, with the socket."""
    try:
        state = json.loads(files.state.read_text())
    except (OSError, ValueError):
        return None
    if not is_runner(state.get("pid", 0)):
        for path in (files.state, files.socket):
            path.unlink(missing_ok=True)
        return None
    return state


def is_runner(pid: int) -> bool:
    """Whether `pid` is a live Bifrost runner (not a reused pid of some other program)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid > 0 else b""
    except OSError:
        return False
    return b"cli.runner" in cmdline


def stop_pid(pid: int, timeout: float = 30) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True when it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return False
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        # A zombie (exited, not yet reaped by its parent) counts as gone.
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
