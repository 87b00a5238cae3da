"""The warm runner: flow commands run in a process that has already imported Prefect.

`python -m cli.runner HOME PORT` is what `bifrost server start` leaves running (detached, in
its own session). It starts the Prefect server of that Bifrost home (deployments/
local_server.py), imports Prefect, the CLI and the flows once, writes the state file, then
listens on `$BIFROST_HOME/server/runner.sock` (mode 0600; a peer of another uid is refused,
by SO_PEERCRED).

A flow command (`bifrost ingest`, `publish`, `flow run`, `demo`) calls `through_runner()`
first. When a runner serves its home, the command sends its argv, environment and working
folder, and its stdin/stdout/stderr descriptors (SCM_RIGHTS). The runner forks (its main
thread is its only thread, so fork is safe; gc.freeze first keeps the copied pages shared);
the child puts the descriptors on 0/1/2, takes the client's environment and folder, and runs
the same command of the same typer app: it writes to the same terminal, so what the user sees
is byte for byte what the command prints in-process. The runner sends the child's exit code
back and the client exits with it. Ctrl-C in the client is forwarded (the child gets SIGINT);
a client that disappears gets its child terminated.

The runner serves only a client whose Prefect settings are the ones it imported Prefect with
(Prefect reads them at import: `prefect.context.GLOBAL_SETTINGS_CONTEXT`, and logging is set
up from them): the same PREFECT_* variables once the defaults a command applies are filled
in, and no Prefect settings file in the client's folder (`.env` with PREFECT_*, prefect.toml,
pyproject.toml's [tool.prefect]). Any other client runs the command in-process, as without a
runner. Bifrost's own settings are read afresh by each child, from the client's environment.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# True in a forked child: it runs the command itself, never through a runner.
IN_RUNNER = False
# The child's exit status when the client's settings turn out to name another home.
DECLINED_STATUS = 222
# Commands run at once by one runner; more are declined (they run in-process): a bound on
# what a burst of commands, or a bug that made commands hand themselves over again, can fork.
MAX_CHILDREN = 16
SERVER_MODE_VARIABLE = "BIFROST_PREFECT_SERVER"
_HEADER = struct.Struct("!I")
# Imported by the runner before it serves: the CLI, Prefect's engines and what a flow run
# imports only when it starts (measured: fastapi ~1.4 s, graphviz by the flow engine).
WARM_MODULES = (
    "cli.main",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.client.orchestration",
    "prefect.utilities.visualization",
    "fastapi",
    "anyio._backends._asyncio",
    "rich.progress",
    "rich.table",
    "bifrost_core.db.migrate",
    "alembic.command",
    "sqlite3",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "fsspec.implementations.chained",
    "typer._click.decorators",
)


# --------------------------------------------------------------------------- settings, cheaply


def light_setting(name: str, default: str) -> str:
    """A BIFROST_* setting as pydantic-settings reads it (environment, case-insensitive, then
    `.env` in the working folder), without importing it: a client must stay light."""
    wanted = f"BIFROST_{name}".lower()
    for key, value in os.environ.items():
        if key.lower() == wanted:
            return value
    dotenv = Path(".env")
    if dotenv.is_file():
        from dotenv import dotenv_values

        for key, value in dotenv_values(dotenv).items():
            if key.lower() == wanted and value is not None:
                return value
    return default


def light_home() -> Path:
    return Path(light_setting("HOME", "~/.bifrost")).expanduser().resolve()


def server_mode() -> str:
    """`auto` (the persistent server, started on first use) or `ephemeral` (a server per command).
    The runner needs Linux (pidfd, SO_PEERCRED, the server's parent-death signal): elsewhere
    commands keep a server of their own."""
    if sys.platform != "linux":
        return "ephemeral"
    return light_setting("PREFECT_SERVER", "auto").lower()


def quiet_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """The Prefect settings every flow command applies before importing Prefect, unless the
    operator set them: no analytics, console logs off unless BIFROST_DEBUG=1."""
    quiet = "WARNING" if env.get("BIFROST_DEBUG") == "1" else "CRITICAL"
    return {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": quiet}


def client_defaults(env: Mapping[str, str], api_url: str, home: Path) -> dict[str, str]:
    """What a flow command sets before importing Prefect when the persistent server is up."""
    return {**quiet_defaults(env), "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home / "prefect")}


def prefect_view(env: Mapping[str, str], api_url: str, home: Path) -> dict[str, str]:
    """The PREFECT_* variables Prefect would read at import in a command with this environment."""
    view = {key: value for key, value in env.items() if key.startswith("PREFECT_")}
    for key, value in client_defaults(env, api_url, home).items():
        view.setdefault(key, value)
    return view


def prefect_files_in(folder: str) -> str | None:
    """A Prefect settings file in `folder` (Prefect reads them from the working folder), if any."""
    base = Path(folder)
    with contextlib.suppress(OSError):
        if (base / "prefect.toml").is_file():
            return "prefect.toml"
        if (base / ".env").is_file() and "PREFECT_" in (base / ".env").read_text(errors="replace"):
            return ".env"
        if (base / "pyproject.toml").is_file() and "[tool.prefect" in (base / "pyproject.toml").read_text(
            errors="replace"
        ):
            return "pyproject.toml"
    return None


# --------------------------------------------------------------------------- messages


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    packet = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [packet], fds)
        if sent < len(packet):  # (an empty send to a peer that already answered fails)
            sock.sendall(packet[sent:])
    else:
        sock.sendall(packet)


def _receive(sock: socket.socket, *, with_fds: bool = False) -> tuple[dict[str, Any] | None, list[int]]:
    """One message (None at end of stream) and the descriptors that came with it."""
    fds: list[int] = []
    if with_fds:
        data, fds, _, _ = socket.recv_fds(sock, 65536, 3)
    else:
        data = sock.recv(65536)
    if not data:
        return None, fds
    while len(data) < _HEADER.size:
        more = sock.recv(65536)
        if not more:
            return None, fds
        data += more
    (size,) = _HEADER.unpack_from(data)
    while len(data) < _HEADER.size + size:
        more = sock.recv(max(65536, _HEADER.size + size - len(data)))
        if not more:
            return None, fds
        data += more
    return json.loads(data[_HEADER.size : _HEADER.size + size]), fds


# --------------------------------------------------------------------------- client


def through_runner() -> None:
    """Run this command in the warm runner of its Bifrost home, and exit with its code.

    Returns (the command then runs in this process) when no runner can take it: another
    Prefect server is configured, BIFROST_PREFECT_SERVER=ephemeral, the runner declines
    (settings differ), or this is already the runner's child. With neither PREFECT_API_URL
    nor a server up, the persistent server is started first (once; said on stderr).
    """
    if IN_RUNNER or server_mode() == "ephemeral":
        return
    home = light_home()
    from deployments.local_server import ServerFiles

    files = ServerFiles.of(home)
    connection = _connect(files.socket)
    if connection is None:
        if os.environ.get("PREFECT_API_URL") or _someone_answers(light_setting("PREFECT_PORT", "4200")):
            return  # that server, in-process (prefect_env)
        from cli.server import start_in_background

        start_in_background(home, announce=True)
        connection = _connect(files.socket)
        if connection is None:
            return
    with connection:
        code = _run_remotely(connection)
    if code is not None:
        import typer

        raise typer.Exit(code)


# The commands that run a flow: what the `bifrost` script may hand to a runner before it
# imports the CLI itself (`early_handover`).
FLOW_COMMANDS = (("ingest",), ("publish",), ("demo",), ("flow", "run"), ("review", "media"))


def early_handover() -> None:
    """Called first thing by the `bifrost` script (cli/main.py): a flow command whose home has
    a runner up is handed over before typer and the CLI are imported (a third of a second on
    this machine); the process then exits with the command's code. Anything else (no runner,
    a declined handover, another command) goes on as usual, with `through_runner` in the
    command for the start on first use."""
    argv = sys.argv
    if IN_RUNNER or Path(argv[0]).name != "bifrost":
        return
    if not any(tuple(argv[1 : 1 + len(command)]) == command for command in FLOW_COMMANDS):
        return
    if server_mode() == "ephemeral":
        return
    connection = _connect(light_home() / "server" / "runner.sock")
    if connection is None:
        return
    with connection:
        code = _run_remotely(connection)
    if code is not None:
        sys.exit(code)


def _someone_answers(port: str) -> bool:
    """A Prefect server not started by Bifrost (`prefect server start`) on the port."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{int(port)}/api/health", timeout=0.5) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _connect(path: Path) -> socket.socket | None:
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _run_remotely(connection: socket.socket) -> int | None:
    """Hand the command over; the child's exit code, or None when the runner declined."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    request = {"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd()}
    _send(connection, request, [0, 1, 2])
    previous = signal.getsignal(signal.SIGINT)

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            _send(connection, {"signal": signum})

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        reply, _ = _receive(connection)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if reply is None:
        # One line, as every failure; printed here: this may run before the CLI is imported.
        from cli.errors import EXIT_UNAVAILABLE

        print(
            "error: the Bifrost runner stopped during the command (see `bifrost server status`)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    if "declined" in reply:
        return None
    if "signal" in reply:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        signal.signal(reply["signal"], signal.SIG_DFL)
        os.kill(os.getpid(), reply["signal"])
    return int(reply["exit"])


def ping(path: Path, timeout: float = 2) -> dict[str, Any] | None:
    """The runner's answer to a ping (its pid and start time), or None."""
    connection = _connect(path)
    if connection is None:
        return None
    with connection:
        connection.settimeout(timeout)
        try:
            _send(connection, {"ping": True})
            reply, _ = _receive(connection)
        except OSError:
            return None
    return reply


# --------------------------------------------------------------------------- runner


class _Stop(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stop


class Runner:
    """The runner's loop: one thread, a selector over the listening socket, each client's
    connection and each child's pidfd (readable when the child exits)."""

    def __init__(self, home: Path, port: int) -> None:
        from deployments.local_server import ServerFiles

        self.home = home
        self.port = port
        self.files = ServerFiles.of(home)
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, tuple[socket.socket, int]] = {}  # pid -> (connection, pidfd)
        self.connections: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.expected: dict[str, str] = {}
        self.started_at = time.time()
        self.server_pidfd = -1

    # The runner's own set-up -------------------------------------------------------------

    def main(self) -> None:
        from deployments.local_server import database_label, persistent_server, write_state

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        os.environ.update(
            {
                key: value
                for key, value in client_defaults(os.environ, self.api_url, self.home).items()
                if key not in os.environ
            }
        )
        self.expected = prefect_view(os.environ, self.api_url, self.home)
        server = persistent_server(self.files, self.port, os.environ)
        server_pidfd = self.server_pidfd = os.pidfd_open(server.pid)
        try:
            self._warm_up()
            self._wait_for(server)
            self._listen()
            self.selector.register(server_pidfd, selectors.EVENT_READ, ("server", None))
            write_state(
                self.files,
                {
                    "pid": os.getpid(),
                    "server_pid": server.pid,
                    "port": self.port,
                    "api_url": self.api_url,
                    "ui_url": f"http://127.0.0.1:{self.port}",
                    "database": database_label(os.environ, self.files),
                    "home": str(self.home),
                    "started_at": self.started_at,
                },
            )
            self._log(f"ready: {self.api_url}, runner on {self.files.socket}")
            self._serve()
        except _Stop:
            self._log("stopping")
        finally:
            for pid, (connection, _) in list(self.children.items()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                connection.close()
            for path in (self.files.state, self.files.socket):
                path.unlink(missing_ok=True)
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=20)
                except Exception:
                    server.kill()
            for pid in list(self.children):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    def _log(self, message: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)

    def _warm_up(self) -> None:
        """Import what a flow command imports, so a child starts with it in memory."""
        import importlib
        import threading

        started = time.perf_counter()
        for name in WARM_MODULES:
            with contextlib.suppress(ImportError):  # e.g. no PostgreSQL driver installed
                importlib.import_module(name)
        from flows.registry import FLOWS

        for flow_entry in FLOWS.values():
            flow_entry.load()
            flow_entry.body_model(remote=False)
        self._log(
            f"imported {len(sys.modules)} modules in {time.perf_counter() - started:.1f} s; "
            f"threads: {threading.active_count()}"
        )

    def _wait_for(self, server: Any, timeout: float = 180) -> None:
        from deployments.local_server import _healthy

        deadline = time.monotonic() + timeout
        while not _healthy(self.api_url):
            if server.poll() is not None:
                raise SystemExit(f"the Prefect server exited with {server.returncode}; see {self.files.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no answer on {self.api_url}/health within {timeout:.0f} s")
            time.sleep(0.1)

    def _listen(self) -> None:
        self.files.socket.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # the socket is created 0600: only its owner may connect
        try:
            listener.bind(str(self.files.socket))
        finally:
            os.umask(previous)
        listener.listen(64)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, ("listener", None))

    # The loop ------------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                kind, pid = key.data
                if kind == "listener":
                    self._accept()
                elif kind == "server":
                    self._log("the Prefect server exited: stopping")
                    return
                elif kind == "client":
                    self._from_client(key.fileobj, pid)  # type: ignore[arg-type]
                else:
                    self._child_done(pid)

    def _accept(self) -> None:
        assert self.listener is not None
        connection, _ = self.listener.accept()
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", credentials)
        if uid != os.getuid():
            connection.close()
            return
        connection.settimeout(5)  # a request arrives whole at once; a stuck peer is dropped
        fds: list[int] = []
        try:
            request, fds = _receive(connection, with_fds=True)
            if request is None:
                connection.close()
                return
            if request.get("ping"):
                _send(connection, {"pid": os.getpid(), "started_at": self.started_at})
                connection.close()
                return
            reason = self._declines(request)
            if reason is not None or len(fds) != 3:
                _send(connection, {"declined": reason or "no terminal descriptors"})
                connection.close()
                return
            self._fork(connection, request, fds)
        except OSError:
            connection.close()
        finally:
            for fd in fds:
                os.close(fd)

    def _declines(self, request: dict[str, Any]) -> str | None:
        if len(self.children) >= MAX_CHILDREN:
            return f"{MAX_CHILDREN} commands already run"
        if prefect_view(request["env"], self.api_url, self.home) != self.expected:
            return "its Prefect settings differ from the runner's"
        found = prefect_files_in(request["cwd"])
        if found is not None:
            return f"its folder has Prefect settings ({found})"
        return None

    def _fork(self, connection: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        gc.freeze()  # the child's first collection then does not touch (and copy) every page
        pid = os.fork()
        if pid == 0:
            self._child(connection, request, fds)  # never returns
        gc.unfreeze()
        connection.setblocking(True)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = (connection, pidfd)
        self._log(f"pid {pid}: bifrost {' '.join(request['argv'][1:3])}")
        self.selector.register(connection, selectors.EVENT_READ, ("client", pid))
        self.selector.register(pidfd, selectors.EVENT_READ, ("child", pid))

    def _from_client(self, connection: socket.socket, pid: int) -> None:
        try:
            message, _ = _receive(connection)
        except OSError:
            message = None
        with contextlib.suppress(ProcessLookupError):
            if message is None:  # the client is gone: so is its command
                self.selector.unregister(connection)
                os.kill(pid, signal.SIGTERM)
            elif message.get("signal") in (signal.SIGINT, signal.SIGTERM):
                os.kill(pid, message["signal"])

    def _child_done(self, pid: int) -> None:
        connection, pidfd = self.children.pop(pid)
        _, status, usage = os.wait4(pid, 0)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        with contextlib.suppress(KeyError):
            self.selector.unregister(connection)
        code = os.waitstatus_to_exitcode(status)
        self._log(f"pid {pid}: exit {code}, cpu {usage.ru_utime + usage.ru_stime:.2f} s")
        if code == DECLINED_STATUS:
            reply: dict[str, Any] = {"declined": "another home"}
        elif code < 0:  # ended by a signal: the client ends by the same one
            reply = {"exit": 128 - code, "signal": -code}
        else:
            reply = {"exit": code}
        with contextlib.suppress(OSError):
            _send(connection, reply)
        connection.close()

    # The child -----------------------------------------------------------------------------

    def _child(self, connection: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        global IN_RUNNER
        code = 1
        try:
            IN_RUNNER = True
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            # Only the runner answers clients and watches processes: the child keeps none of it.
            self.selector.close()
            if self.listener is not None:
                self.listener.close()
            os.close(self.server_pidfd)
            connection.close()
            for other, pidfd in self.children.values():
                other.close()
                os.close(pidfd)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            code = run_command(request, self.home, self.api_url)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            # Uncaught, it ends an in-process command by SIGINT: so it ends this one.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            code = 1
        finally:
            os._exit(code)


def run_command(request: dict[str, Any], home: Path, api_url: str) -> int:
    """In the forked child: become the client's command and run it; its exit status."""
    os.environ.clear()
    os.environ.update(request["env"])
    # What the command would set before importing Prefect (prefect_env): the settings it is served with.
    os.environ.update(prefect_view(os.environ, api_url, home))
    os.chdir(request["cwd"])
    sys.argv = list(request["argv"])
    # As the interpreter sets its streams up at start: line-buffered on a terminal.
    sys.stdout.reconfigure(line_buffering=sys.stdout.isatty())  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    from prefect.context import refresh_global_settings_context

    from bifrost_core.config import get_settings, load_settings

    refresh_global_settings_context()
    get_settings.cache_clear()
    try:
        if load_settings().home != home:
            return DECLINED_STATUS
    except Exception:
        pass  # an invalid setting: the command itself reports it, as in-process
    from cli.main import app

    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()  # Prefect's log and event workers flush here, as at a normal exit
    return code


def main() -> None:
    home, port = Path(sys.argv[1]), int(sys.argv[2])
    Runner(home, port).main()


if __name__ == "__main__":
    # Through the module's own name: the flag IN_RUNNER must be the one commands import.
    from cli.runner import main as runner_main

    runner_main()
