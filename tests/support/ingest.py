"""Fixtures and helpers of the ingest and flow tests: a small production, settings pointing
at temporary tiers, delivery trees of real files, planned versions, row counts, and the
child processes of the kill -9 tests. The conftest files of tests/ingest and tests/flows
import the fixtures."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bifrost_core.assets import service as assets
from bifrost_core.assets.schemas import AssetCreate
from bifrost_core.config import Settings, load_settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import batches, planning, summaries, upkeep
from bifrost_core.ingest.models import IngestFile, IngestRecord
from bifrost_core.ingest.schemas import PlannedRepresentation, PlannedVersion, Target
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.users import service as users
from bifrost_core.users.schemas import UserCreate
from bifrost_core.versions.models import Representation, RepresentationFile, Version
from tests.support.s3 import running_s3
from tests.support.services import service_missing

# Deliveries are laid out <sequence>/<shot>/<task>/<files> or assets/<asset>/<task>/<files>.
NAMING = {
    "naming_rules": [
        "assets/{asset}/{task}/*",
        {"regex": r"(?P<sequence>sq\d+)/(?P<shot>sh\d+)/(?P<task>[a-z]+)/[^/]+"},
    ]
}


# The admin who runs the flows and the CLI in these tests (BIFROST_USER in `flow_env`).
OPERATOR = "td"


@dataclass
class Production:
    project_id: int
    code: str = "DEMO"


@pytest.fixture
def production(database: Database) -> Production:
    """Project DEMO with sq010/sh010, sq010/sh020 and the asset `chair`, and the admin
    OPERATOR, committed."""
    with UnitOfWork(database) as uow:
        users.create_user(uow.session, actor=SYSTEM, data=UserCreate(username=OPERATOR, is_admin=True))
        project = projects.create_project(
            uow.session, actor=SYSTEM, data=ProjectCreate(code="DEMO", name="Demo", config=NAMING)
        )
        sequence = projects.create_sequence(
            uow.session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010")
        )
        for code in ("sh010", "sh020"):
            projects.create_shot(
                uow.session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code=code)
            )
        assets.create_asset(
            uow.session,
            actor=SYSTEM,
            project_id=project.id,
            data=AssetCreate(code="chair", asset_type="prop"),
        )
        uow.commit()
        return Production(project_id=project.id)


@pytest.fixture
def settings(tmp_path: Path, database: Database) -> Settings:
    """Settings whose tier roots are folders of the test (made: a configured root must exist)."""
    for tier in ("hot", "archive"):
        (tmp_path / "tiers" / tier).mkdir(parents=True)
    return load_settings(
        home=tmp_path / "home",
        database_url=database.url,
        hot_root=str(tmp_path / "tiers" / "hot"),
        archive_root=str(tmp_path / "tiers" / "archive"),
    )


@pytest.fixture
def delivery(tmp_path: Path) -> Path:
    """A delivery: two shots with a plate sequence each, a movie, and an asset file."""
    root = tmp_path / "delivery"
    frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1010)
    write(root / "sq010" / "sh010" / "plate" / "plate.mov", b"movie" * 1000)
    frames(root / "sq010" / "sh020" / "plate", "plate", 1001, 1005)
    write(root / "assets" / "chair" / "model" / "chair.abc", b"alembic" * 500)
    return root


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def frames(
    folder: Path, name: str, first: int, last: int, *, size: int = 2048, salt: bytes = b""
) -> list[Path]:
    """An image-sequence-like set of files of `size` bytes with distinct content per frame."""
    return [
        write(folder / f"{name}.{frame:04d}.exr", content(f"{name}{frame}".encode() + salt, size))
        for frame in range(first, last + 1)
    ]


def content(seed: bytes, size: int) -> bytes:
    return (seed * (size // len(seed) + 1))[:size]


_S3: dict[str, object] = {}


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server (tests/support/s3.py), one per test process.

    tests/ingest and tests/flows both use this fixture; one server for both matters because
    fsspec reuses its S3 filesystems, which read the endpoint from AWS_ENDPOINT_URL once.
    """
    if "endpoint" not in _S3:
        stack = contextlib.ExitStack()
        try:
            _S3["endpoint"] = stack.enter_context(running_s3())
        except RuntimeError as exc:
            service_missing("S3 endpoint (moto server)", str(exc).splitlines()[0])
        atexit.register(stack.close)
    return _S3["endpoint"]


@pytest.fixture
def s3_settings(s3_endpoint, tmp_path: Path, database: Database, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose hot tier is a fresh prefix on the S3 endpoint.

    Bifrost passes no credentials itself: botocore reads the standard AWS_* variables,
    as it would on a studio host.
    """
    for name, value in s3_endpoint.env().items():
        monkeypatch.setenv(name, value)
    (tmp_path / "tiers" / "archive").mkdir(parents=True, exist_ok=True)
    return load_settings(
        home=tmp_path / "home",
        database_url=database.url,
        hot_root=s3_endpoint.url(f"hot-{tmp_path.name}-{id(tmp_path):x}"),
        archive_root=str(tmp_path / "tiers" / "archive"),
    )


def planned(paths: list[Path], *, shot: str = "sh010", task: str = "plate") -> PlannedVersion:
    """A planned version of sq010/`shot` whose one representation is the frames `paths`."""
    return PlannedVersion(
        target=Target(sequence="sq010", shot=shot, task=task),
        status="new",
        representations=[
            PlannedRepresentation(
                name="plate",
                kind="frames",
                source=str(paths[0].parent / "plate.####.exr"),
                frame_in=1001,
                frame_out=1000 + len(paths),
                frame_padding=4,
                stem="plate",
                ext="exr",
                files=[planning.source_file(path, frame=1001 + i) for i, path in enumerate(paths)],
            )
        ],
    )


def counts(database) -> dict[str, int]:
    """Rows per table of what an ingest writes."""
    with UnitOfWork(database) as uow:
        return {
            model.__tablename__: uow.session.scalar(select(func.count()).select_from(model))
            for model in (
                Version,
                Representation,
                RepresentationFile,
                Blob,
                BlobLocation,
                IngestRecord,
                IngestFile,
            )
        }


def run_planned(database, settings, versions, *, project: str = "DEMO", tier: str = "hot", source: str = "s"):
    """Store and register planned versions in one batch, as the system; its summary."""
    return batches.run_batch(
        database, settings, actor=SYSTEM, project=project, tier=tier, source=source, versions=versions
    )


def run(database, settings, plan, *, max_files: int = 5):
    """Run a plan in-process as the flow does, in batches of `max_files` files; its summary."""
    summary = summaries.summary_of(plan, dry_run=False)
    for group in batches.batches(plan.pending, max_files=max_files, max_bytes=1 << 40):
        summaries.merge(
            summary,
            run_planned(database, settings, group, project=plan.project, tier=plan.tier, source=plan.source),
        )
    return summary


# The child processes of the kill -9 and gc-race tests: `[*INGEST_CHILD, ...]` with cwd=ROOT
# (see tests/support/ingest_child.py), in the environment `child_env` makes.
ROOT = Path(__file__).resolve().parents[2]
INGEST_CHILD = [sys.executable, "-m", "tests.support.ingest_child"]


def child_env(database, settings, kill_at: str | None = None) -> dict[str, str]:
    """This environment without its BIFROST_* settings, plus the test's database and tiers
    (and BIFROST_TEST_KILL_AT, where the child kills itself, if given)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("BIFROST_") or k.startswith("BIFROST_TEST_")
    }
    env.pop("BIFROST_TEST_KILL_AT", None)
    env.update(
        BIFROST_DATABASE_URL=database.url,
        BIFROST_HOME=str(settings.home),
        BIFROST_HOT_ROOT=settings.tier_roots["hot"],
        BIFROST_ARCHIVE_ROOT=settings.tier_roots["archive"],
    )
    if kill_at:
        env["BIFROST_TEST_KILL_AT"] = kill_at
    return env


def assert_sound(database, settings) -> None:
    """Every recorded blob (so every registered version's) is in its tier with its bytes,
    and every file of every version has a recorded blob location."""
    report = upkeep.verify(database, settings)
    assert report.ok, report.findings
    with UnitOfWork(database) as uow:
        unlocated = uow.session.scalar(
            select(func.count())
            .select_from(RepresentationFile)
            .where(
                ~select(BlobLocation.id).where(BlobLocation.blob_id == RepresentationFile.blob_id).exists()
            )
        )
    assert unlocated == 0
