"""Planning a delivery: matched versions, unmatched paths, bad input; then running the plan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import Conflict, InvalidInput, NotFound
from bifrost_core.ingest import planning
from bifrost_core.ingest.schemas import PublishRequest
from bifrost_core.projects.models import Project
from bifrost_core.storage.errors import SourceUnreadable
from tests.support.ingest import counts, frames, run, write


def test_plan_groups_items_into_versions_per_target(database, production, settings, delivery):
    write(delivery / "sq010" / "sh999" / "plate" / "x.exr", b"unknown shot")
    write(delivery / "README.txt", b"no rule for me")
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(delivery), tier="hot")
    versions = {v.target.label: v for v in plan.versions}
    assert set(versions) == {"sq010/sh010 plate main", "sq010/sh020 plate main", "asset chair model main"}
    sh010 = {rep.name: rep for rep in versions["sq010/sh010 plate main"].representations}
    assert (sh010["plate"].kind, sh010["plate"].frame_in, sh010["plate"].frame_out) == ("frames", 1001, 1010)
    assert len(sh010["plate"].files) == 10
    assert sh010["plate.mov"].kind == "movie"
    assert {v.status for v in plan.versions} == {"new"}
    assert sorted((u.path, u.message) for u in plan.unmatched) == [
        ("README.txt", "no naming rule matches"),
        ("sq010/sh999/plate/x.exr", "shot sq010/sh999 is not in the project"),
    ]


def test_ingest_then_rerun_then_change_one_frame(database, production, settings, delivery):
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(delivery), tier="hot")
    first = run(database, settings, plan)
    assert sorted((v.target, v.number) for v in first.created) == [
        ("asset chair model main", 1),
        ("sq010/sh010 plate main", 1),
        ("sq010/sh020 plate main", 1),
    ]
    published = Path(settings.tier_roots["hot"]) / "published" / "DEMO"
    frame = published / "shots/sq010/sh010/plate/main/v001/plate.1004.exr"
    assert frame.read_bytes() == (delivery / "sq010/sh010/plate/plate.1004.exr").read_bytes()
    assert frame.stat().st_nlink >= 2  # a hard link to the blob, not a copy
    assert (published / "shots/sq010/sh010/plate/main/v001/plate.mov").is_file()
    assert (published / "assets/chair/model/main/v001/chair.abc").is_file()
    before = counts(database)
    again = planning.plan_ingest(database, settings, project="DEMO", source=str(delivery), tier="hot")
    assert [v.status for v in again.versions] == ["known"] * 3
    assert run(database, settings, again).created == []
    assert counts(database) == before

    write(delivery / "sq010" / "sh020" / "plate" / "plate.1003.exr", b"a new take of frame 1003")
    changed = planning.plan_ingest(database, settings, project="DEMO", source=str(delivery), tier="hot")
    assert sorted(v.status for v in changed.versions) == ["changed", "known", "known"]
    result = run(database, settings, changed)
    assert [(v.target, v.number) for v in result.created] == [("sq010/sh020 plate main", 2)]
    assert result.files_copied == 1


def test_awkward_but_valid_names_and_empty_files_are_ingested(database, production, settings, tmp_path):
    root = tmp_path / "awkward"
    write(root / "sq010" / "sh010" / "plate" / "my plate é.0001.exr", b"spaces and accents")
    write(root / "sq010" / "sh010" / "plate" / "my plate é.0002.exr", b"")
    write(root / "sq010" / "sh010" / "plate" / "notes ± final.txt", b"")
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot")
    result = run(database, settings, plan)
    assert not result.problems and not result.unmatched
    assert [v.files for v in result.created] == [3]
    reps = {rep.name: rep for rep in plan.versions[0].representations}
    assert set(reps) == {"my_plate", "notes_final.txt"}
    assert [f.name for f in reps["my_plate"].files] == ["my plate é.0001.exr", "my plate é.0002.exr"]


def test_bad_sources_are_problems_and_never_half_registered(database, production, settings, tmp_path):
    root = tmp_path / "bad"
    frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1003)
    shot2 = root / "sq010" / "sh020" / "plate"
    frames(shot2, "plate", 1001, 1002)
    os.symlink(shot2, shot2 / "loop")  # a symlink loop
    os.symlink("/etc/hostname", shot2 / "escape.txt")  # an absolute link out of the source
    os.symlink("../../../../outside", shot2 / "dotdot.txt")  # a relative one (`..`)
    write(tmp_path / "outside", b"not part of the delivery")
    os.mkfifo(shot2 / "pipe.0001.exr")
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot")
    messages = {p.path: p.message for p in plan.problems}
    assert "symlink loop" in messages["sq010/sh020/plate/loop"]
    assert "outside the source folder" in messages["sq010/sh020/plate/escape.txt"]
    assert "outside the source folder" in messages["sq010/sh020/plate/dotdot.txt"]
    assert "not a regular file" in messages["sq010/sh020/plate/pipe.0001.exr"]
    # Each bad entry is matched like a file: all four belong to sh020's plate, held back whole.
    assert [(held.target, sorted(p.path for p in held.problems)) for held in plan.held_back] == [
        (
            "sq010/sh020 plate main",
            [f"sq010/sh020/plate/{name}" for name in ("dotdot.txt", "escape.txt", "loop", "pipe.0001.exr")],
        )
    ]
    result = run(database, settings, plan)
    assert [v.target for v in result.created] == ["sq010/sh010 plate main"]
    assert [held.target for held in result.held_back] == ["sq010/sh020 plate main"]


def test_plan_refuses_unknown_project_tier_and_missing_source(database, production, settings, tmp_path):
    with pytest.raises(NotFound, match="project 'NOPE' not found"):
        planning.plan_ingest(database, settings, project="NOPE", source=str(tmp_path), tier="hot")
    with pytest.raises(InvalidInput, match="no storage tier 'cold'"):
        planning.plan_ingest(database, settings, project="DEMO", source=str(tmp_path), tier="cold")
    with pytest.raises(SourceUnreadable, match="cannot scan"):
        planning.plan_ingest(database, settings, project="DEMO", source=str(tmp_path / "missing"), tier="hot")
    with pytest.raises(InvalidInput, match="absolute path"):
        planning.plan_ingest(database, settings, project="DEMO", source="relative/path", tier="hot")


@pytest.mark.parametrize("status", ["closed", "archived"])
def test_a_closed_or_archived_project_takes_no_ingest_or_publish(
    database, production, settings, delivery, status
):
    with UnitOfWork(database) as uow:
        uow.session.get(Project, production.project_id).status = status
        uow.commit()
    before = counts(database)
    message = f"project DEMO is {status}: reopen it to ingest or publish"
    with pytest.raises(Conflict, match=message):
        planning.plan_ingest(database, settings, project="DEMO", source=str(delivery), tier="hot")
    request = PublishRequest(
        project="DEMO",
        sequence="sq010",
        shot="sh010",
        task="comp",
        files=[str(delivery / "sq010" / "sh010" / "plate" / "plate.mov")],
    )
    with pytest.raises(Conflict, match=message):
        planning.plan_publish(database, settings, request=request)
    assert counts(database) == before
