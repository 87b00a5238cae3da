"""The production commands: create, list, show, cast, set-status, with tables and with --json."""

from __future__ import annotations

import json

from sqlalchemy import select

from bifrost_core.projects.models import Shot
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks.models import Task
from bifrost_core.versions import service as versions
from bifrost_core.versions.schemas import VersionCreate


def test_init_prints_the_admin_token_once(bifrost) -> None:
    first = bifrost("init")
    assert "shown only once" in first.stdout
    assert "bft_" in first.stdout
    second = bifrost("init")
    assert "schema at head" in second.stdout
    assert "bft_" not in second.stdout


def test_commands_initialise_the_embedded_default_on_first_use(bifrost, bifrost_env) -> None:
    assert json.loads(bifrost("project", "list", "--json").stdout) == []
    assert (bifrost_env / "bifrost.db").exists()
    # The auto-initialisation leaves the first admin to `bifrost init`, which still shows its token.
    assert "bft_" in bifrost("init").stdout


def test_project_create_list_show(bifrost) -> None:
    out = bifrost(
        "project", "create", "FILM", "--name", "A film", "--fps", "23.976", "--width", "2048"
    ).stdout
    assert "created project FILM" in out
    listed = json.loads(bifrost("project", "list", "--json").stdout)
    assert [(p["code"], p["name"], p["fps"], p["resolution_width"]) for p in listed] == [
        ("FILM", "A film", "23.976", 2048)
    ]
    shown = json.loads(bifrost("project", "show", "FILM", "--json").stdout)
    assert shown["id"] == listed[0]["id"]
    assert shown["frame_padding"] == 4
    table = bifrost("project", "list").stdout
    assert "FILM" in table
    assert "2048x1080" in table


def test_shot_create_with_handles_and_lists(production) -> None:
    bifrost = production
    bifrost(
        "shot",
        "create",
        "DEMO",
        "SQ010",
        "SH020",
        "--handles-in",
        4,
        "--handles-out",
        12,
        "--frame-out",
        1040,
    )
    bifrost("sequence", "create", "DEMO", "SQ020", "--name", "Chase")
    bifrost("shot", "create", "DEMO", "SQ020", "SH010", "--cut-in", 10, "--cut-out", 50, "--fps", "25")
    shots = json.loads(bifrost("shot", "list", "DEMO", "--json").stdout)
    assert [(s["code"], s["frame_in"], s["frame_out"], s["handles_in"], s["handles_out"]) for s in shots] == [
        ("SH010", 1001, 1100, 8, 8),
        ("SH020", 1001, 1040, 4, 12),
        ("SH010", 1001, 1100, 0, 0),
    ]
    only = json.loads(bifrost("shot", "list", "DEMO", "--sequence", "SQ020", "--json").stdout)
    assert [(s["code"], s["cut_in"], s["cut_out"], s["fps"]) for s in only] == [("SH010", 10, 50, "25.000")]
    shown = json.loads(bifrost("shot", "show", "DEMO", "SQ010", "SH020", "--json").stdout)
    assert shown["handles_out"] == 12
    table = bifrost("shot", "list", "DEMO").stdout
    assert "SQ020" in table
    assert "4/12" in table
    sequences = json.loads(bifrost("sequence", "list", "DEMO", "--json").stdout)
    assert [s["code"] for s in sequences] == ["SQ010", "SQ020"]
    assert json.loads(bifrost("sequence", "show", "DEMO", "SQ020", "--json").stdout)["name"] == "Chase"


def test_episodes_group_sequences(bifrost) -> None:
    bifrost("project", "create", "SERIES")
    bifrost("episode", "create", "SERIES", "EP101", "--name", "Pilot")
    bifrost("sequence", "create", "SERIES", "SQ010", "--episode", "EP101")
    bifrost("sequence", "create", "SERIES", "SQ900")
    episode = json.loads(bifrost("episode", "show", "SERIES", "EP101", "--json").stdout)
    assert [e["code"] for e in json.loads(bifrost("episode", "list", "SERIES", "--json").stdout)] == ["EP101"]
    in_episode = json.loads(bifrost("sequence", "list", "SERIES", "--episode", "EP101", "--json").stdout)
    assert [(s["code"], s["episode_id"]) for s in in_episode] == [("SQ010", episode["id"])]


def test_assets_and_casting(production) -> None:
    bifrost = production
    bifrost("asset", "create", "DEMO", "sword", "--type", "prop", "--name", "Sword")
    assets = json.loads(bifrost("asset", "list", "DEMO", "--json").stdout)
    assert [a["code"] for a in assets] == ["hero", "sword"]
    assert [
        a["code"] for a in json.loads(bifrost("asset", "list", "DEMO", "--type", "prop", "--json").stdout)
    ] == ["sword"]
    assert json.loads(bifrost("asset", "show", "DEMO", "sword", "--json").stdout)["name"] == "Sword"

    bifrost("casting", "cast", "DEMO", "SQ010", "SH010", "sword", "--count", 2)
    bifrost("casting", "cast", "DEMO", "SQ010", "SH010", "sword", "--count", 3)
    casting = json.loads(bifrost("casting", "list", "DEMO", "--shot", "SQ010/SH010", "--json").stdout)
    by_asset = {c["asset_id"]: c["count"] for c in casting}
    ids = {a["code"]: a["id"] for a in assets}
    assert by_asset == {ids["hero"]: 1, ids["sword"]: 3}
    assert "SQ010/SH010" in bifrost("casting", "list", "DEMO", "--asset", "sword").stdout

    bifrost("casting", "uncast", "DEMO", "SQ010", "SH010", "sword")
    remaining = json.loads(bifrost("casting", "list", "DEMO", "--json").stdout)
    assert [c["asset_id"] for c in remaining] == [ids["hero"]]


def test_tasks_create_filter_show_and_status(production) -> None:
    bifrost = production
    bifrost("task", "create", "DEMO", "SQ010/SH010", "comp", "--due", "2027-01-15")
    bifrost("task", "create", "DEMO", "hero", "model", "--name", "model_hi")
    every = json.loads(bifrost("task", "list", "DEMO", "--json").stdout)
    assert sorted(t["name"] for t in every) == ["anim", "comp", "model_hi"]
    on_shot = json.loads(bifrost("task", "list", "DEMO", "--entity", "SQ010/SH010", "--json").stdout)
    assert sorted(t["name"] for t in on_shot) == ["anim", "comp"]
    by_type = json.loads(bifrost("task", "list", "DEMO", "--type", "model", "--json").stdout)
    assert [t["name"] for t in by_type] == ["model_hi"]
    mine = json.loads(bifrost("task", "list", "DEMO", "--assignee", "admin", "--json").stdout)
    assert [t["name"] for t in mine] == ["anim"]

    assert "wtg -> ip" in bifrost("task", "set-status", "DEMO", "SQ010/SH010", "anim", "ip").stdout
    shown = json.loads(bifrost("task", "show", "DEMO", "SQ010/SH010", "anim", "--json").stdout)
    assert shown["status"] == "ip"
    assert len(shown["assignee_ids"]) == 1
    in_progress = json.loads(bifrost("task", "list", "DEMO", "--status", "ip", "--json").stdout)
    assert [t["name"] for t in in_progress] == ["anim"]
    assert json.loads(bifrost("task", "show", "DEMO", "SQ010/SH010", "comp", "--json").stdout)[
        "due_date"
    ] == ("2027-01-15")
    table = bifrost("task", "list", "DEMO").stdout
    assert "SQ010/SH010" in table
    assert "admin" in table


def test_workflow_show(production) -> None:
    bifrost = production
    task_flow = json.loads(bifrost("workflow", "show", "DEMO", "--json").stdout)
    assert task_flow["kind"] == "task"
    assert {"from_code": "wtg", "to_code": "ip"} in task_flow["transitions"]
    version_flow = json.loads(bifrost("workflow", "show", "DEMO", "--kind", "version", "--json").stdout)
    assert [s["code"] for s in version_flow["statuses"] if s["is_initial"]] == ["pending_review"]
    assert "Waiting to start" in bifrost("workflow", "show", "DEMO").stdout


def test_version_list_and_show(production, peek) -> None:
    bifrost = production
    with peek() as session:
        task = session.scalars(select(Task).where(Task.name == "anim")).one()
        for comment in ("first pass", "second pass"):
            versions.create_version(
                session, actor=SYSTEM, data=VersionCreate(task_id=task.id, comment=comment)
            )
        versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id, variant="fx"))
        session.commit()
    listed = json.loads(bifrost("version", "list", "DEMO", "--json").stdout)
    assert [(v["variant"], v["number"]) for v in listed] == [("main", 1), ("main", 2), ("fx", 1)]
    main_only = json.loads(
        bifrost("version", "list", "DEMO", "--variant", "main", "--task", "anim", "--json").stdout
    )
    assert [v["number"] for v in main_only] == [1, 2]
    latest = json.loads(bifrost("version", "show", "DEMO", "SQ010/SH010", "anim", "--json").stdout)
    assert (latest["number"], latest["comment"]) == (2, "second pass")
    first = json.loads(bifrost("version", "show", "DEMO", "SQ010/SH010", "anim", "1", "--json").stdout)
    assert first["comment"] == "first pass"
    fx = json.loads(
        bifrost("version", "show", "DEMO", "SQ010/SH010", "anim", "--variant", "fx", "--json").stdout
    )
    assert fx["number"] == 1
    assert "v002" in bifrost("version", "list", "DEMO", "--entity", "SQ010/SH010").stdout


def test_every_json_output_is_only_json(production) -> None:
    bifrost = production
    for args in [
        ("project", "list"),
        ("project", "show", "DEMO"),
        ("sequence", "list", "DEMO"),
        ("shot", "list", "DEMO"),
        ("shot", "show", "DEMO", "SQ010", "SH010"),
        ("asset", "list", "DEMO"),
        ("asset", "show", "DEMO", "hero"),
        ("casting", "list", "DEMO"),
        ("task", "list", "DEMO"),
        ("task", "show", "DEMO", "SQ010/SH010", "anim"),
        ("version", "list", "DEMO"),
        ("workflow", "show", "DEMO"),
        ("episode", "list", "DEMO"),
    ]:
        result = bifrost(*args, "--json")
        json.loads(result.stdout)
        assert result.stderr == ""


def test_a_created_shot_is_committed(production, peek) -> None:
    with peek() as session:
        assert session.scalars(select(Shot.code)).all() == ["SH010"]
