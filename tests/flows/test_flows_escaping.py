"""Issue #10, defect 7: delivered names holding control characters never reach a terminal
raw. Every `bifrost` command is classified (a new one fails this test until it is): each
that prints delivered names runs, with and without --json, on a delivery whose folder and
file names hold an escape sequence, a newline and a carriage return."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bifrost_core.text import escape
from cli.main import app
from tests.support.ingest import OPERATOR, content, write

EVIL = "ev\x1b[31mil\n\r"
SHOWN = escape(EVIL)  # ev\x1b[31mil\n\r, as text
IN_JSON = json.dumps(EVIL)[1:-1]  # ev\u001b[31mil\n\r
# What was recorded holds the name as shown (no control character in a record).
RECORDED_IN_JSON = json.dumps(SHOWN)[1:-1]  # ev\\x1b[31mil\\n\\r
# Any control character but the newline that ends each printed line.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")

# Commands that print delivered names: their arguments ({delivery}: the delivery folder,
# {movie}: a file to publish), expected exit code, and whether the name must show (escaped).
DELIVERED: dict[str, tuple[str, int, bool]] = {
    "ingest": ("{delivery} --project DEMO --dry-run", 5, True),
    # A path typed in is refused with one line if it holds a control character (exit 5).
    "publish": ("{movie} --project DEMO --shot sq010/sh010 --task comp --dry-run", 5, False),
    "version files": ("DEMO sq010/sh010 plate", 0, True),
    "version show": ("DEMO sq010/sh010 plate", 0, True),
    "version list": ("DEMO", 0, False),  # representation names are codes made from the file names
    "verify": ("", 0, False),  # blobs by hash
    "storage du": ("", 0, False),
    "storage gc": ("", 0, False),
}
# The others print no delivered name: codes (validated), numbers, tokens, or typed text
# through render_list/render_one and `fail`, which escape the same way.
OTHERS = {
    "init", "demo", "serve", "gateway", "token create", "token list", "token revoke", "workflow show",
    *(f"{group} {verb}" for group in ("project", "episode", "sequence", "shot", "asset", "task")
      for verb in ("create", "list", "show")),
    "task set-status", "casting cast", "casting uncast", "casting list",
    # The registry's flows and deployments; a flow's result is printed as JSON (escaped).
    "flow list", "flow show", "flow run", "flow reconcile", "deploy",
    # Render jobs: codes, numbers, the typed command; a failure report's log lines go through
    # say_lines (each line escaped). The local server and a worker print URLs and names.
    "render submit", "render list", "render show", "render cancel", "render retry-failed",
    "server start", "server stop", "server status", "worker",
    # Version ids and numbers; the run's markdown report is printed through say_lines.
    "review media",
    # Review sessions: ids, statuses, and typed text through render_list/render_one and `done`.
    "review playlist create", "review playlist add", "review playlist list", "review playlist show",
    "review note add", "review note list", "review reply", "review approve", "review request-changes",
    "user set-password",
    # Archive: codes, version ids, tier names, byte counts and blob hashes; backups: paths and
    # times of the backup's own making; replicas: the studio's roots (settings, not deliveries).
    "archive policy show", "archive policy set", "archive final", "archive run", "archive restore",
    "backup create", "backup status", "backup restore", "storage replicas",
}  # fmt: skip


def leaf_commands() -> dict[str, list[str]]:
    """Every command of `bifrost`, by its path, with the names of its options."""
    found: dict[str, list[str]] = {}

    def walk(command, path: list[str]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = [param.name for param in command.params]

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_is_classified():
    assert set(leaf_commands()) == set(DELIVERED) | OTHERS


@pytest.fixture
def evil_world(database, production, flow_env, prefect_server, tmp_path, monkeypatch) -> dict[str, str]:
    """DEMO with the version sq010/sh010 plate v001 ingested from a folder and files whose
    names hold EVIL, a movie in an EVIL folder to publish, and in the delivery an unmatched
    EVIL file and an EVIL FIFO that holds its version back."""
    from flows.ingest import ingest

    monkeypatch.setenv("COLUMNS", "1000")  # tables wide enough that names are not wrapped
    delivery = tmp_path / f"drop {EVIL} in"
    plate = delivery / "sq010" / "sh010" / "plate"
    for frame in (1001, 1002):
        write(plate / f"{EVIL}.{frame}.exr", content(f"frame{frame}".encode(), 100))
    write(delivery / f"{EVIL}.txt", b"matches no rule")
    bad = delivery / "sq010" / "sh020" / "bad"
    bad.mkdir(parents=True)
    os.mkfifo(bad / f"{EVIL}.exr")
    summary = ingest(actor=OPERATOR, project="DEMO", source=str(delivery))
    assert [v.target for v in summary.created] == ["sq010/sh010 plate main"]
    work = tmp_path / f"work {EVIL} in"
    write(work / f"{EVIL}.mov", b"movie")
    return {"delivery": str(delivery), "movie": str(work / f"{EVIL}.mov")}


def test_delivered_names_are_escaped_in_every_command(evil_world):
    commands = leaf_commands()
    for command, (args, code, shows_name) in DELIVERED.items():
        for extra in [[]] + ([["--json"]] if "as_json" in commands[command] else []):
            argv = [*command.split(), *(arg.format(**evil_world) for arg in args.split()), *extra]
            result = CliRunner().invoke(app, argv)
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            assert result.exit_code == code, f"{argv}: exit {result.exit_code}\n{result.output}"
            printed = result.output
            assert not RAW.search(printed), f"{argv} printed a raw control character: {printed!r}"
            if shows_name:
                forms = (IN_JSON, RECORDED_IN_JSON) if extra else (SHOWN,)
                assert any(form in printed for form in forms), f"{argv}: {printed!r}"


def test_escape_shows_every_control_character():
    assert escape("plain name é 名.exr") == "plain name é 名.exr"
    assert escape(EVIL) == "ev\\x1b[31mil\\n\\r"
    assert escape("\x00\t\x7f\x9b\u202e\u2028") == "\\x00\\t\\x7f\\x9b\\u202e\\u2028"
    assert escape("bad\udcffname") == "bad\\xffname"  # an undecodable byte, as os.fsdecode gives it
    assert not [code for code in range(0x10000) if RAW.search(escape(chr(code)))]


def test_markdown_artifacts_show_names_literally():
    from bifrost_core.ingest.schemas import HeldBack, IngestSummary, Problem
    from flows.reporting import markdown

    problem = Problem(path=f"sq010/sh010/plate/{EVIL}](http://x)|`.exr", message="not a regular file")
    summary = IngestSummary(
        project="DEMO",
        source=f"/drop/{EVIL}",
        tier="hot",
        problems=[problem],
        held_back=[HeldBack(target="sq010/sh010 plate main", problems=[problem])],
    )
    text = markdown("ingest", summary)
    assert not RAW.search(text)
    assert "Source /drop/ev\\\\x1b\\[31mil\\\\n\\\\r → tier hot" in text
    assert (
        "ev\\\\x1b\\[31mil\\\\n\\\\r\\]\\(http://x\\)\\|\\`\\.exr" in text
    )  # no link, no cell, no code span


def test_bifrost_logs_escape_what_they_carry():
    import logging

    from api.middleware import JsonLogFormatter

    record = logging.LogRecord(
        "bifrost.api", logging.WARNING, __file__, 1, "storing %s failed", (EVIL,), None
    )
    line = JsonLogFormatter().format(record)
    assert not RAW.search(line) and "\n" not in line
    assert json.loads(line)["message"] == f"storing {EVIL} failed"


def test_paths_typed_on_the_command_line_are_escaped_in_errors(bifrost_env: Path):
    result = CliRunner().invoke(app, ["ingest", f"/nowhere/{EVIL}", "--project", "DEMO"])
    assert result.exit_code == 5
    assert result.output == f"error: /nowhere/{SHOWN} is not a folder\n"
