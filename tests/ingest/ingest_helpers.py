"""Fixtures and helpers of the ingest and flow tests: a small production, settings pointing
at temporary tiers, and delivery trees of real files. Both conftest files import them."""

from __future__ import annotations

import atexit
import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from bifrost_core.assets import service as assets
from bifrost_core.assets.schemas import AssetCreate
from bifrost_core.config import Settings, load_settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.schemas import UserCreate

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
def s3_endpoint(request: pytest.FixtureRequest):
    """moto's S3 server (tests/s3server.py), one per test process.

    tests/ingest and tests/flows both use this fixture; one server for both matters because
    fsspec reuses its S3 filesystems, which read the endpoint from AWS_ENDPOINT_URL once.
    """
    if "endpoint" not in _S3:
        from s3server import running_s3

        stack = contextlib.ExitStack()
        try:
            _S3["endpoint"] = stack.enter_context(running_s3())
        except RuntimeError as exc:
            request.config.pluginmanager.get_plugin(
                str(Path(__file__).resolve().parents[1] / "conftest.py")
            ).service_missing("S3 endpoint (moto server)", str(exc).splitlines()[0])
        atexit.register(stack.close)
    return _S3["endpoint"]


@pytest.fixture
def s3_settings(s3_endpoint, tmp_path: Path, database: Database, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose hot tier is a fresh prefix on the S3 endpoint.

    Bifrost passes no credentials itself: botocore reads the standard AWS_* variables,
    as it would on a studio host.
    """
    from s3server import ACCESS_KEY, REGION, SECRET_KEY

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    (tmp_path / "tiers" / "archive").mkdir(parents=True, exist_ok=True)
    return load_settings(
        home=tmp_path / "home",
        database_url=database.url,
        hot_root=s3_endpoint.url(f"hot-{tmp_path.name}-{id(tmp_path):x}"),
        archive_root=str(tmp_path / "tiers" / "archive"),
    )
