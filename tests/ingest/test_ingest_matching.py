"""Issue #10, defect 11: codes in delivery paths match as vendors deliver them, whatever
their case; the version is registered against the project's own codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bifrost_core.assets import service as assets
from bifrost_core.assets.schemas import AssetCreate
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import InvalidInput
from bifrost_core.ingest import planning
from bifrost_core.ingest.planning import nothing_matched
from bifrost_core.ingest.schemas import Problem, PublishRequest
from bifrost_core.projects import service as projects
from bifrost_core.projects.models import Shot
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskCreate
from tests.support.ingest import frames, run, write


@pytest.fixture
def studio(database) -> str:
    """Project CASE (default naming rules) with SQ010/SH0010, whose compositing task is
    `Comp`, SQ010/SH0020 and SQ010/sh0020, which differ only by case, and the asset Chair."""
    with UnitOfWork(database) as uow:
        project = projects.create_project(
            uow.session, actor=SYSTEM, data=ProjectCreate(code="CASE", name="C")
        )
        sequence = projects.create_sequence(
            uow.session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="SQ010")
        )
        shots = {
            code: projects.create_shot(
                uow.session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code=code)
            )
            for code in ("SH0010", "SH0020", "sh0020")
        }
        tasks.create_task(
            uow.session,
            actor=SYSTEM,
            data=TaskCreate(shot_id=shots["SH0010"].id, task_type="Comp", name="Comp"),
        )
        assets.create_asset(
            uow.session,
            actor=SYSTEM,
            project_id=project.id,
            data=AssetCreate(code="Chair", asset_type="prop"),
        )
        uow.commit()
    return "CASE"


def test_codes_match_whatever_their_case(database, studio, settings, tmp_path):
    root = tmp_path / "delivery"
    frames(root / "sq010" / "sh0010" / "comp", "comp", 1001, 1002)
    frames(root / "Sq010" / "SH0010" / "COMP", "matte", 1001, 1002)  # the same version, spelled otherwise
    write(root / "assets" / "CHAIR" / "Model" / "chair.abc", b"alembic")  # a new task: as delivered
    plan = planning.plan_ingest(database, settings, project=studio, source=str(root), tier="hot")
    assert not plan.unmatched and not plan.problems
    comp, chair = sorted(plan.versions, key=lambda version: version.target.asset or "")
    assert (comp.target.sequence, comp.target.shot, comp.target.task) == ("SQ010", "SH0010", "Comp")
    assert sorted(rep.name for rep in comp.representations) == ["comp", "matte"]
    assert (chair.target.asset, chair.target.task) == ("Chair", "Model")
    result = run(database, settings, plan)
    assert sorted(v.target for v in result.created) == ["SQ010/SH0010 Comp main", "asset Chair Model main"]
    published = Path(settings.tier_roots["hot"]) / "published" / "CASE" / "shots"
    assert (published / "SQ010" / "SH0010" / "Comp" / "main" / "v001" / "comp.1001.exr").is_file()
    assert not (published / "sq010").exists()
    # A rerun, spelled either way, finds the version done.
    again = planning.plan_ingest(database, settings, project=studio, source=str(root), tier="hot")
    assert [v.status for v in again.versions] == ["known", "known"]


def test_entities_differing_only_by_case_are_a_problem_not_a_guess(database, studio, settings, tmp_path):
    root = tmp_path / "delivery"
    frames(root / "SQ010" / "SH0020" / "plate", "plate", 1001, 1001)
    frames(root / "SQ010" / "SH0010" / "comp", "comp", 1001, 1001)
    plan = planning.plan_ingest(database, settings, project=studio, source=str(root), tier="hot")
    assert [v.target.label for v in plan.versions] == ["SQ010/SH0010 Comp main"]
    assert plan.problems == [
        Problem(
            path="SQ010/SH0020/plate/plate.1001#.exr",
            message="shot SQ010/SH0020 matches SQ010/SH0020 and SQ010/sh0020, "
            "which differ only by case: rename one",
        )
    ]
    # Two tasks of one shot likewise.
    with UnitOfWork(database) as uow:
        [shot_id] = uow.session.scalars(select(Shot.id).where(Shot.code == "SH0010"))
        tasks.create_task(uow.session, actor=SYSTEM, data=TaskCreate(shot_id=shot_id, task_type="comp"))
        uow.commit()
    plan = planning.plan_ingest(database, settings, project=studio, source=str(root), tier="hot")
    assert plan.versions == []
    assert "task comp of shot SQ010/SH0010 matches Comp and comp, which differ only by case: rename one" in [
        problem.message for problem in plan.problems
    ]
    # A publish names its shot too: the same rules.
    request = PublishRequest(
        project=studio,
        sequence="sq010",
        shot="SH0020",
        task="plate",
        files=[str(root / "SQ010" / "SH0020" / "plate" / "plate.1001.exr")],
    )
    with pytest.raises(InvalidInput, match="shot sq010/SH0020 matches SQ010/SH0020 and SQ010/sh0020"):
        planning.plan_publish(database, settings, request=request)


def test_a_publish_takes_the_projects_own_codes(database, studio, settings, tmp_path):
    paths = frames(tmp_path / "work", "comp", 1001, 1002)
    request = PublishRequest(
        project=studio,
        sequence="sq010",
        shot="sh0010",
        task="comp",
        files=[str(p) for p in paths],
    )
    plan = planning.plan_publish(database, settings, request=request)
    assert plan.versions[0].target.label == "SQ010/SH0010 Comp main"


def test_an_ingest_where_nothing_matched_says_so_in_one_line(database, studio, settings, tmp_path):
    root = tmp_path / "delivery"
    write(root / "readme.txt", b"no rule for me")
    frames(root / "SQ999" / "SH0010" / "plate", "plate", 1001, 1003)
    plan = planning.plan_ingest(database, settings, project=studio, source=str(root), tier="hot")
    assert nothing_matched(plan) == (
        f"nothing in {root} matched the naming rules of CASE "
        "(4 files; e.g. readme.txt: no naming rule matches)"
    )
    frames(root / "SQ010" / "SH0010" / "plate", "plate", 1001, 1001)
    assert (
        nothing_matched(
            planning.plan_ingest(database, settings, project=studio, source=str(root), tier="hot")
        )
        is None
    )
