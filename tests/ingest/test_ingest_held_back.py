"""Issue #10, defects 6 and 7: a problem of any kind holds back the whole version its file
belongs to, and the file at fault is the one named."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import planning
from bifrost_core.ingest.schemas import HeldBack, Problem
from bifrost_core.versions.models import RepresentationFile
from tests.support.ingest import counts, frames, run, write

ROOT = Path(__file__).resolve().parents[2]
PLATE = "sq010/sh010/{task}/plate.{frame}.exr"


def test_every_kind_of_problem_holds_back_its_version(database, production, settings, tmp_path):
    """Frames 1001-1003 of 1001-1004 were registered when frame 1004 could not be taken."""
    root = tmp_path / "delivery"
    for task in ("fifo", "escape", "broken", "loop", "badname", "hole", "good"):
        frames(root / "sq010" / "sh010" / task, "plate", 1001, 1003, salt=task.encode())
    shot = root / "sq010" / "sh010"
    os.mkfifo(shot / "fifo" / "plate.1004.exr")
    os.symlink("/etc/hostname", shot / "escape" / "plate.1004.exr")  # out of the delivery
    os.symlink("gone.exr", shot / "broken" / "plate.1004.exr")
    os.symlink(".", shot / "loop" / "plate.1004.exr")  # back to its own folder
    write(Path(os.fsdecode(bytes(shot / "badname") + b"/plate.1004\xff.exr")), b"latin-1 name")
    (shot / "hole" / "plate.1002.exr").unlink()
    os.mkfifo(shot / "hole" / "plate.1002.exr")  # a hole in the middle: 1001,1003 must not register
    os.mkfifo(root / "stray-pipe")  # matches no rule: a plain problem, holding nothing back

    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot")
    assert [v.target.label for v in plan.versions] == ["sq010/sh010 good main"]
    held = {entry.target: entry.problems for entry in plan.held_back}
    assert {target: [p.path for p in problems] for target, problems in held.items()} == {
        "sq010/sh010 fifo main": [PLATE.format(task="fifo", frame=1004)],
        "sq010/sh010 escape main": [PLATE.format(task="escape", frame=1004)],
        "sq010/sh010 broken main": [PLATE.format(task="broken", frame=1004)],
        "sq010/sh010 loop main": [PLATE.format(task="loop", frame=1004)],
        "sq010/sh010 badname main": ["sq010/sh010/badname/plate.1004\\xff.exr"],
        "sq010/sh010 hole main": [PLATE.format(task="hole", frame=1002)],
    }
    assert held["sq010/sh010 fifo main"][0].message == "not a regular file (a FIFO)"
    assert "outside the source folder" in held["sq010/sh010 escape main"][0].message
    assert "broken symlink" in held["sq010/sh010 broken main"][0].message
    assert "symlink loop" in held["sq010/sh010 loop main"][0].message
    assert held["sq010/sh010 badname main"][0].message == "name is not valid UTF-8"
    assert Problem(path="stray-pipe", message="not a regular file (a FIFO)") in plan.problems

    result = run(database, settings, plan)
    assert [v.target for v in result.created] == ["sq010/sh010 good main"]
    assert [entry.target for entry in result.held_back] == list(held)
    assert counts(database)["versions"] == 1


# Runs an ingest in a process that cannot read what its file modes deny, even as root.
CHILD = """
import json, os, sys
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.ingest import batches, planning, summaries
from bifrost_core.scope import SYSTEM

source, database_url, hot, late = sys.argv[1:]
settings = load_settings(database_url=database_url, hot_root=hot, archive_root=hot)
database = Database(database_url)
plan = planning.plan_ingest(database, settings, project="DEMO", source=source, tier="hot")
os.chmod(late, 0)  # unreadable only after the scan: found when the store opens it
summary = summaries.summary_of(plan, dry_run=False)
batch = batches.run_batch(
    database, settings, actor=SYSTEM, project="DEMO", tier="hot", source=plan.source, versions=plan.pending
)
summaries.merge(summary, batch)
print(summary.model_dump_json())
"""


def _without_root_privileges() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so that what it runs obeys file modes as any user does (the tests run as
    root in CI, and root reads a mode-000 file)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.skipif(sys.platform != "linux", reason="capabilities are Linux's")
def test_an_unreadable_file_holds_back_its_version(database, production, settings, tmp_path):
    """Mode 000 on a real file, in a process that obeys it: found by the scan, or at the copy."""
    root = tmp_path / "delivery"
    scanned = frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1004)
    late = frames(root / "sq010" / "sh020" / "plate", "plate", 1001, 1004, salt=b"late")
    frames(root / "assets" / "chair" / "model", "chair", 1001, 1002)
    scanned[3].chmod(0)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), database.url, settings.tier_roots["hot"], str(late[3])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_without_root_privileges if os.geteuid() == 0 else None,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    summary = json.loads(child.stdout)
    assert [v["target"] for v in summary["created"]] == ["asset chair model main"]
    at_scan = Problem(path="sq010/sh010/plate/plate.1004.exr", message="cannot read: permission denied")
    at_copy = Problem(path="sq010/sh020/plate/plate.1004.exr", message="cannot open: Permission denied")
    assert [HeldBack.model_validate(entry) for entry in summary["held_back"]] == [
        HeldBack(target="sq010/sh010 plate main", problems=[at_scan]),
        HeldBack(target="sq010/sh020 plate main", problems=[at_copy]),
    ]
    assert counts(database)["versions"] == 1


def test_the_file_whose_name_gives_no_path_is_blamed(database, production, settings, tmp_path):
    """`aaa.ma: {ext} value '' cannot be part of a path` was reported for `..ma`'s fault."""
    root = tmp_path / "delivery"
    folder = root / "sq010" / "sh010" / "layout"
    for name in ("aaa.ma", "..ma"):
        write(folder / name, name.encode())
    write(root / "sq010" / "sh020" / "layout" / "aaa.ma", b"fine")
    write(root / "sq010" / "sh020" / "layout" / "notes", b"no extension, and sorted after aaa.ma")
    # A newline in a name is split like any other: this one is a plain `.ma` file.
    write(root / "assets" / "chair" / "model" / "chair\nv2.ma", b"newline")
    result = run(
        database,
        settings,
        planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot"),
    )
    assert [v.target for v in result.created] == ["asset chair model main"]
    with UnitOfWork(database) as uow:  # recorded as it is shown: no control character in a record
        assert uow.session.scalars(select(RepresentationFile.name)).all() == ["chair\\nv2.ma"]
    assert result.problems == [
        Problem(path="sq010/sh010/layout/..ma", message="{name} value '.' cannot be part of a path"),
        Problem(path="sq010/sh020/layout/notes", message="{ext} value '' cannot be part of a path"),
    ]
    assert [(held.target, held.problems) for held in result.held_back] == [
        ("sq010/sh010 layout main", result.problems[:1]),
        ("sq010/sh020 layout main", result.problems[1:]),
    ]
