"""The warm runner: flow commands run in a process that has already imported Prefect.

`python -m cli.runner HOME PORT` is what `bifrost server start` leaves running (detached, in
its own session). It starts the Prefect server of that Bifrost home (deployments/
local_server.py), imports Prefect, the CLI and the flows once, writes the state file, then
listens on `$BIFROST_HOME/server/runner.sock` (mode 0600; a peer of another uid is refused,
by SO_PEERCRED).

A flow command (`bifrost ingest`, `publish`, `flow run`, `demo`) calls `through_runner()`
first. When a runner serves its home, the command sends its argv, environment and working
folder, and its stdin/stdout/stderr descriptors (SCM_RIGHTS). The runner forks
(cli/forkserver.py: its main thread is its only thread, so fork is safe; gc.freeze first keeps
the copied pages shared); the child puts the descriptors on 0/1/2, takes the client's
environment and folder, and runs the same command of the same typer app: it writes to the
same terminal, so what the user sees is byte for byte what the command prints in-process. The
runner sends the child's exit code back and the client exits with it. Ctrl-C in the client is
forwarded (the child gets SIGINT); a client that disappears gets its child terminated; a
runner that dies takes its children with it.

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
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cli.forkserver import ForkServer, Stop, connect, end_as, hand_over, stop_on_signal

# True in a forked child: it runs the command itself, never through a runner.
IN_RUNNER = False
# The child's exit status when the client's settings turn out to name another home.
DECLINED_STATUS = 222
SERVER_MODE_VARIABLE = "BIFROST_PREFECT_SERVER"
# How long a server that accepted the connection has to answer its health check: nothing
# listening fails at once, while a busy server (a 2-core host running flows) can take seconds.
HEALTH_SECONDS = 5.0
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
    """Why a warm process declines work in `folder`: a Prefect settings file there (Prefect
    reads them from the working folder at import), or None."""
    base = Path(folder)
    with contextlib.suppress(OSError):
        for name, marker in (("prefect.toml", ""), (".env", "PREFECT_"), ("pyproject.toml", "[tool.prefect")):
            if (base / name).is_file() and marker in (base / name).read_text(errors="replace"):
                return f"its folder has Prefect settings ({name})"
    return None


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
    connection = connect(files.socket)
    if connection is None:
        if os.environ.get("PREFECT_API_URL") or _someone_answers(light_setting("PREFECT_PORT", "4200")):
            return  # that server, in-process (prefect_env)
        from cli.server import start_in_background

        start_in_background(home, announce=True)
        connection = connect(files.socket)
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
    connection = connect(light_home() / "server" / "runner.sock")
    if connection is None:
        return
    with connection:
        code = _run_remotely(connection)
    if code is not None:
        sys.exit(code)


def _someone_answers(port: str) -> bool:
    """A Prefect server not started by Bifrost (`prefect server start`) on the port."""
    return port.isdigit() and prefect_answers(f"http://127.0.0.1:{port}/api")


def prefect_answers(api_url: str) -> bool:
    """The Prefect API at `api_url` answers its health check within HEALTH_SECONDS."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=HEALTH_SECONDS) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _run_remotely(connection: socket.socket) -> int | None:
    """Hand the command over; the child's exit code, or None when the runner declined."""
    reply = hand_over(connection, {"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd()})
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
    return end_as(reply)


# --------------------------------------------------------------------------- runner


def warm_up(modules: tuple[str, ...] = WARM_MODULES) -> str:
    """Import what a flow command (or flow run) imports and every registered flow, so a forked
    child starts with it in memory; what was done, for the log."""
    import importlib
    import threading

    started = time.perf_counter()
    for name in modules:
        with contextlib.suppress(ImportError):  # e.g. no PostgreSQL driver installed
            importlib.import_module(name)
    from flows.registry import FLOWS

    for flow_entry in FLOWS.values():
        flow_entry.load()
        flow_entry.body_model(remote=False)
    # What a child would otherwise do at its first query, each time (a fifth of a second):
    # the ORM's mappers configured, the migrations' heads read.
    from sqlalchemy.orm import configure_mappers

    from bifrost_core.db.migrate import code_head_revisions

    configure_mappers()
    code_head_revisions()
    return (
        f"imported {len(sys.modules)} modules in {time.perf_counter() - started:.1f} s; "
        f"threads: {threading.active_count()}"
    )


class Runner(ForkServer):
    """The runner: the home's Prefect server, then the fork-serving loop (cli/forkserver.py)
    over `runner.sock`, the server's pidfd watched too (the runner stops when it exits)."""

    def __init__(self, home: Path, port: int) -> None:
        from deployments.local_server import ServerFiles

        self.home = home
        self.port = port
        self.files = ServerFiles.of(home)
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.expected: dict[str, str] = {}
        super().__init__(self.files.socket)

    def main(self) -> None:
        from deployments.local_server import database_label, persistent_server, write_state

        signal.signal(signal.SIGTERM, stop_on_signal)
        signal.signal(signal.SIGINT, stop_on_signal)
        os.environ.update(
            {
                key: value
                for key, value in client_defaults(os.environ, self.api_url, self.home).items()
                if key not in os.environ
            }
        )
        self.expected = prefect_view(os.environ, self.api_url, self.home)
        server = persistent_server(self.files, self.port, os.environ)
        server_pidfd = os.pidfd_open(server.pid)
        try:
            self.log(warm_up())
            self._wait_for(server)
            self.listen()
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
            self.log(f"ready: {self.api_url}, runner on {self.files.socket}")
            self.serve()
        except Stop:
            self.log("stopping")
        finally:
            self.files.state.unlink(missing_ok=True)
            self.stop_children()
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=20)
                except Exception:
                    server.kill()

    def _wait_for(self, server: Any, timeout: float = 180) -> None:
        from deployments.local_server import _healthy

        deadline = time.monotonic() + timeout
        while not _healthy(self.api_url):
            if server.poll() is not None:
                raise SystemExit(f"the Prefect server exited with {server.returncode}; see {self.files.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no answer on {self.api_url}/health within {timeout:.0f} s")
            time.sleep(0.1)

    def on_event(self, kind: str) -> bool:
        self.log("the Prefect server exited: stopping")
        return True

    def declines(self, request: dict[str, Any]) -> str | None:
        if prefect_view(request["env"], self.api_url, self.home) != self.expected:
            return "its Prefect settings differ from the runner's"
        return prefect_files_in(request["cwd"])

    def label(self, request: dict[str, Any]) -> str:
        return f"bifrost {' '.join(request['argv'][1:3])}"

    def reply_for(self, code: int) -> dict[str, Any]:
        if code == DECLINED_STATUS:
            return {"declined": "another home"}
        return super().reply_for(code)

    def run_child(self, request: dict[str, Any]) -> int:
        global IN_RUNNER
        IN_RUNNER = True
        return run_command(request, self.home, self.api_url)


def become(env: dict[str, str], cwd: str, *, reread_prefect: bool = True) -> None:
    """In a forked child: take the client's environment and folder, set the streams up as
    the interpreter does at start (line-buffered on a terminal), and read Bifrost's settings
    and (unless the server has checked that they are its own) Prefect's afresh from that
    environment."""
    from prefect.context import refresh_global_settings_context

    from bifrost_core.config import get_settings

    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdout.reconfigure(line_buffering=sys.stdout.isatty())  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if reread_prefect:
        refresh_global_settings_context()
    get_settings.cache_clear()


def exit_status_of(main: Callable[[], object]) -> int:
    """Run `main` as an interpreter runs its program; the exit status it would end with."""
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        raise  # the child then ends by SIGINT (cli/forkserver.py)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()  # Prefect's log and event workers flush here, as at a normal exit
    return code


def run_command(request: dict[str, Any], home: Path, api_url: str) -> int:
    """In the forked child: become the client's command and run it; its exit status."""
    # What the command would set before importing Prefect (prefect_env): the settings it is served with.
    become({**request["env"], **prefect_view(request["env"], api_url, home)}, request["cwd"])
    sys.argv = list(request["argv"])
    from bifrost_core.config import load_settings

    try:
        if load_settings().home != home:
            return DECLINED_STATUS
    except Exception:
        pass  # an invalid setting: the command itself reports it, as in-process
    from cli.main import app

    return exit_status_of(app)


def main() -> None:
    home, port = Path(sys.argv[1]), int(sys.argv[2])
    Runner(home, port).main()


if __name__ == "__main__":
    # Through the module's own name: the flag IN_RUNNER must be the one commands import.
    from cli.runner import main as runner_main

    runner_main()
