"""`bifrost demo`: builds the DEMO production, and a second run leaves exactly the same one."""

from __future__ import annotations

import json

from sqlalchemy import select

from bifrost_core.assets.models import Asset, AssetType, Casting
from bifrost_core.demo import CASTING, HANDLES, Demo
from bifrost_core.projects.models import Project, Sequence, Shot
from bifrost_core.tasks.models import Task
from bifrost_core.versions.models import Version
from cli import demo


def production(session) -> dict[str, list[tuple]]:
    """The production by codes, independent of ids and timestamps."""
    shots = {
        shot_id: f"{sequence}/{shot}"
        for shot_id, sequence, shot in session.execute(
            select(Shot.id, Sequence.code, Shot.code).join(Sequence, Sequence.id == Shot.sequence_id)
        )
    }
    assets = dict(session.execute(select(Asset.id, Asset.code)).all())
    return {
        "projects": sorted(
            session.execute(
                select(Project.code, Project.fps, Project.resolution_width, Project.resolution_height)
            ).all()
        ),
        "sequences": sorted(session.scalars(select(Sequence.code)).all()),
        "shots": sorted(
            (shots[s.id], s.frame_in, s.frame_out, s.handles_in, s.handles_out)
            for s in session.scalars(select(Shot))
        ),
        "assets": sorted(
            session.execute(
                select(Asset.code, AssetType.code).join(AssetType, AssetType.id == Asset.asset_type_id)
            )
        ),
        "casting": sorted(
            (shots[c.shot_id], assets[c.asset_id], c.count) for c in session.scalars(select(Casting))
        ),
        "tasks": sorted(
            (
                shots[t.shot_id] if t.shot_id else assets[t.asset_id],
                t.name,
                t.status,
                tuple(sorted(u.username for u in t.assignees)),
            )
            for t in session.scalars(select(Task))
        ),
    }


# The comp tasks the demo's delivery publishes to (cli/delivery.py).
DELIVERED = {("SQ010/SH010", "comp"), ("SQ010/SH020", "comp")}


def test_demo_twice_leaves_the_same_production(bifrost, bifrost_env, peek, row_counts) -> None:
    first = bifrost("demo")
    assert "shown only once" in first.stdout
    assert "Shots of DEMO" in first.stdout
    with peek() as session:
        built = production(session)
    counts = row_counts()

    second = bifrost("demo")
    assert "bft_" not in second.stdout
    assert "10 shots (0 new)" in second.stdout
    with peek() as session:
        assert production(session) == built
    # Not one row more anywhere but the rerun's own records of its two runs, ingest and review
    # media (a row and an event each): a rerun finds everything done.
    again = row_counts()
    recorded = (again.pop("flow_runs"), again.pop("events"))
    assert recorded == (counts.pop("flow_runs") + 2, counts.pop("events") + 2)
    assert again == counts
    assert "review media: 2 versions have them (0 made now)" in second.stdout
    project_id = json.loads(bifrost("project", "show", "DEMO", "--json").stdout)["id"]
    assert (
        f"review page: `bifrost serve`, then http://127.0.0.1:8000/ui/projects/{project_id} ;"
        in second.stdout
    )
    with peek() as session:
        # Every version of the demo has its review media; their tasks moved to review.
        for version in session.scalars(select(Version)):
            names = {rep.name for rep in version.representations}
            assert {"review-proxy", "review-thumbnails", "review-contact-sheet"} <= names
            assert version.media_error is None
        comp = [status for entity, task, status, _ in built["tasks"] if (entity, task) in DELIVERED]
        assert comp == ["review", "review"]

    assert (bifrost_env / "bifrost.db").exists()
    assert len(built["sequences"]) == 2
    assert len(built["shots"]) == 10
    assert len(built["assets"]) == 5
    assert len({asset_type for _, asset_type in built["assets"]}) == 3
    assert len(built["casting"]) == sum(len(cast) for cast in CASTING.values())
    assert {task for _, task, _, _ in built["tasks"]} == {"layout", "anim", "comp", "model", "rig"}
    assert ("SQ010/SH010", "anim", "wtg", ("bob",)) in built["tasks"]
    assert built["projects"][0][0] == "DEMO"
    assert all(handles_in == handles_out == HANDLES for *_, handles_in, handles_out in built["shots"])


def test_demo_completes_a_production_built_by_hand(bifrost, peek) -> None:
    bifrost("project", "create", "DEMO")
    bifrost("sequence", "create", "DEMO", "SQ010")
    bifrost(
        "shot", "create", "DEMO", "SQ010", "SH010", "--frame-in", 1001, "--frame-out", 1048, "--handles", 8
    )
    out = bifrost("demo").stdout
    assert "project DEMO already there" in out
    assert "10 shots (9 new)" in out
    with peek() as session:
        assert len(production(session)["shots"]) == 10


def test_demo_steps_run_in_order_and_can_be_extended(bifrost, monkeypatch) -> None:
    seen: list[int] = []

    def count_shots(context: Demo) -> str:
        with context.session() as session:
            seen.append(len(session.scalars(select(Shot.id)).all()))
        return "counted"

    monkeypatch.setattr(demo, "STEPS", [*demo.STEPS, ("extra", count_shots)])
    out = bifrost("demo").stdout
    assert "extra: counted" in out
    assert seen == [10]
