"""`bifrost server start|stop|status`: the Prefect server of this Bifrost home, kept up.

`start` leaves a detached process (its own session: it outlives the shell) that runs
`prefect server start` on 127.0.0.1:BIFROST_PREFECT_PORT with the UI, and the warm runner
that flow commands hand themselves to (cli/runner.py). Its files are under
`$BIFROST_HOME/server/`: server.json (pid, URLs, database; present while it is up),
server.log (Prefect's), runner.log, prefect/ (Prefect's home and SQLite database, unless
PREFECT_API_DATABASE_CONNECTION_URL names PostgreSQL: passed through). Flow commands start
it themselves on first use when no PREFECT_API_URL is set (BIFROST_PREFECT_SERVER=ephemeral:
a server per command, as before).

Exit codes: `start` 0 when it runs (also when it already did), 7 when the port is taken by
something else, 8 when the server does not come up; `stop` 0, also when nothing ran (it says
so); `status` 0 when up, 3 when not.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli.errors import EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, fail
from cli.output import JsonOption, print_json, say

if TYPE_CHECKING:
    from deployments.local_server import ServerFiles

app = typer.Typer(help="The Prefect server of this Bifrost home (UI, deployments, fast flow commands).")

START_TIMEOUT = 180.0


def _home() -> Path:
    from cli.common import settings

    return settings().home


def start_in_background(home: Path, *, announce: bool) -> dict[str, Any]:
    """Start the home's server unless it runs; wait until it serves. Its state.

    A lock file makes concurrent callers (two commands started at once) start one server.
    """
    from deployments.local_server import ServerFiles, port_free, read_state

    files = ServerFiles.of(home)
    files.root.mkdir(parents=True, exist_ok=True)
    with files.lock.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_state(files)
        if state is not None:
            return state
        from cli.common import settings

        port = settings().prefect_port
        if not port_free(port):
            raise fail(
                f"port {port} is in use by another program: set BIFROST_PREFECT_PORT to a free port",
                EXIT_CONFIG,
            )
        with files.runner_log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.runner", str(home), str(port)],
                cwd=files.root,  # no Prefect settings file here: the runner's Prefect reads the environment
                env={key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in the shell's process group: Ctrl-C or logout leave it up
            )
        state = _wait_started(files, process)
    if announce:
        say(
            f"bifrost: started the Prefect server of {home} at {state['ui_url']} "
            "(stop it with `bifrost server stop`)",
            err=True,
        )
    return state


def _wait_started(files: ServerFiles, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    from deployments.local_server import read_state

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = files.runner_log.read_text(errors="replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit {process.returncode}"
            raise fail(f"the Prefect server did not start: {reason} (logs in {files.root})", EXIT_UNAVAILABLE)
        state = read_state(files)
        if state is not None:
            return state
        time.sleep(0.1)
    raise fail(
        f"the Prefect server did not start within {START_TIMEOUT:.0f} s (logs in {files.root})",
        EXIT_UNAVAILABLE,
    )


@app.command()
def start() -> None:
    """Start the Prefect server (with its UI) and the warm runner, in the background."""
    from deployments.local_server import ServerFiles, read_state

    home = _home()
    running = read_state(ServerFiles.of(home))
    if running is not None:
        say(f"the Prefect server of {home} already runs at {running['ui_url']} (pid {running['pid']})")
        return
    state = start_in_background(home, announce=False)
    say(f"Prefect server of {home}: {state['api_url']}, UI {state['ui_url']}, pid {state['pid']}")
    say("stop it with `bifrost server stop`")


@app.command()
def stop() -> None:
    """Stop the server: its runs in progress end, then the process (killed if it does not end)."""
    from deployments.local_server import ServerFiles, read_state, stop_pid

    home = _home()
    files = ServerFiles.of(home)
    state = read_state(files)
    if state is None:
        say(f"no Prefect server runs for {home}")
        return
    killed = stop_pid(state["pid"])
    if killed:
        stop_pid(state["server_pid"], timeout=0)
    for path in (files.state, files.socket):
        path.unlink(missing_ok=True)
    say(f"stopped the Prefect server of {home} (pid {state['pid']}{', killed' if killed else ''})")


@app.command()
def status(as_json: bool = JsonOption) -> None:
    """Whether the server runs: URL, UI, pid, uptime, database, and whether the runner answers."""
    from cli.forkserver import ping
    from deployments.local_server import ServerFiles, _healthy, read_state

    home = _home()
    files = ServerFiles.of(home)
    state = read_state(files)
    if state is None:
        if as_json:
            print_json({"running": False, "home": str(home)})
        else:
            say(f"no Prefect server runs for {home} (`bifrost server start`)")
        raise typer.Exit(EXIT_NOT_FOUND)
    report = {
        "running": True,
        **state,
        "uptime_s": round(time.time() - state["started_at"]),
        "api_answers": _healthy(state["api_url"]),
        "runner_answers": ping(files.socket) is not None,
        "logs": str(files.root),
    }
    if as_json:
        print_json(report)
        return
    for label, key in (
        ("API", "api_url"),
        ("UI", "ui_url"),
        ("pid", "pid"),
        ("uptime", "uptime_s"),
        ("database", "database"),
        ("API answers", "api_answers"),
        ("runner answers", "runner_answers"),
        ("logs", "logs"),
    ):
        value = report[key]
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        say(f"{label}: {text}{' s' if key == 'uptime_s' else ''}")
