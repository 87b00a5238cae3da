"""Issue #10, defect 9: a tier root that does not exist (a missing bucket or folder) or refuses
writes is a configuration error: one line, exit 7, at once, never retried. `bifrost init` and
/readyz check every tier root in use."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import ConfigError
from bifrost_core.ingest import planning
from bifrost_core.ingest.roots import RootProbes
from bifrost_core.projects.models import Project
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.users.models import User
from cli.main import app
from tests.support.ingest import OPERATOR, frames
from tests.support.services import tmpfs

BIFROST = Path(sys.executable).parent / "bifrost"
MISSING_BUCKET = "s3://no-such-bucket/bifrost"


def set_tiers(database, project_id: int, tiers: dict[str, str]) -> None:
    with UnitOfWork(database) as uow:
        uow.session.get(Project, project_id).storage_tiers = tiers
        uow.commit()


def bifrost(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own, on the test's database."""
    return subprocess.run(
        [str(BIFROST), *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def cli_env(database, s3_settings, tmp_path, monkeypatch) -> dict[str, str]:
    """The environment of a `bifrost` command on the test's database and tiers, set in this
    process too (for CliRunner); the AWS_* variables of the S3 endpoint are s3_settings'."""
    for name in os.environ:
        if name.startswith("BIFROST_") and not name.startswith("BIFROST_TEST_"):
            monkeypatch.delenv(name)
    env = {
        "BIFROST_HOME": str(tmp_path / "home"),
        "BIFROST_DATABASE_URL": database.url,
        "BIFROST_HOT_ROOT": s3_settings.tier_roots["hot"],
        "BIFROST_ARCHIVE_ROOT": s3_settings.tier_roots["archive"],
        "BIFROST_USER": OPERATOR,
        # Where no Prefect server answers: a command that got as far as its flow would fail.
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


def invoke(*args: object) -> tuple[int, str]:
    """The command in this process: exit code and everything it printed."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_ingest_and_publish_into_a_missing_bucket_stop_at_once_in_one_line(
    database, production, cli_env, tmp_path, monkeypatch
):
    delivery = tmp_path / "delivery"
    paths = frames(delivery / "sq010" / "sh010" / "plate", "plate", 1001, 1002)
    monkeypatch.setenv("BIFROST_HOT_ROOT", MISSING_BUCKET)
    line = f"error: storage tier hot: bucket no-such-bucket does not exist ({MISSING_BUCKET})\n"
    # A real process: nothing else reaches the terminal (it was 205 lines with 6 tracebacks,
    # after retries 5 s and 30 s later).
    done = bifrost(dict(os.environ), "ingest", delivery, "--project", "DEMO")
    assert (done.returncode, done.stdout, done.stderr) == (7, "", line)
    publish = ("publish", *paths, "--project", "DEMO", "--shot", "sq010/sh010", "--task", "comp")
    assert invoke(*publish) == (7, line)


def test_a_missing_or_unusable_folder_is_a_configuration_error(database, production, settings, tmp_path):
    delivery = tmp_path / "delivery"
    frames(delivery / "sq010" / "sh010" / "plate", "plate", 1001, 1001)
    nowhere = tmp_path / "nas" / "hot"  # a NAS that is not mounted: never created behind the operator
    (tmp_path / "a-file").write_bytes(b"")
    for root, message in (
        (nowhere, f"storage tier hot: {nowhere} does not exist"),
        (tmp_path / "a-file", f"storage tier hot: {tmp_path / 'a-file'} is not a folder"),
    ):
        bad = load_settings(home=tmp_path / "home", database_url=database.url, hot_root=str(root))
        with pytest.raises(ConfigError) as raised:
            planning.plan_ingest(database, bad, project="DEMO", source=str(delivery), tier="hot")
        assert str(raised.value) == message
    assert not nowhere.exists()
    # The default roots are Bifrost's own folders under its home: made when first needed.
    home = load_settings(home=tmp_path / "home", database_url=database.url)
    planning.plan_ingest(database, home, project="DEMO", source=str(delivery), tier="hot")
    assert (tmp_path / "home" / "storage" / "hot").is_dir()


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs: a root that exists and takes no write."""
    with tmpfs(tmp_path / "read-only", "ro,size=1m") as mount:
        yield mount


def test_a_read_only_root_is_a_configuration_error(read_only_disk: Path):
    with pytest.raises(ConfigError) as raised:
        BlobStore(read_only_disk, name="archive").check()
    assert (
        str(raised.value) == f"storage tier archive: cannot write to {read_only_disk}: Read-only file system"
    )


def test_init_checks_every_tier_root_before_making_the_admin(
    database, production, cli_env, tmp_path, monkeypatch
):
    set_tiers(database, production.project_id, {"cold": str(tmp_path / "cold")})
    done = bifrost({**cli_env, "BIFROST_HOT_ROOT": MISSING_BUCKET}, "init")
    assert (done.returncode, done.stdout) == (7, "")
    assert done.stderr == (
        f"error: storage tier hot: bucket no-such-bucket does not exist ({MISSING_BUCKET}); "
        f"storage tier cold: {tmp_path / 'cold'} does not exist (project DEMO)\n"
    )
    assert invoke("init") == (
        7,
        f"error: storage tier cold: {tmp_path / 'cold'} does not exist (project DEMO)\n",
    )
    with UnitOfWork(database) as uow:
        # The admin's token is shown once: not yet.
        assert uow.session.query(User).filter_by(username="admin").count() == 0
    (tmp_path / "cold").mkdir()
    code, output = invoke("init")
    assert code == 0, output
    assert "the API token of the admin user 'admin' is shown only once" in output


def test_init_on_the_embedded_default_makes_its_tier_roots(bifrost_env: Path):
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert (bifrost_env / "storage" / "hot").is_dir() and (bifrost_env / "storage" / "archive").is_dir()


def test_readyz_checks_every_tier_root_and_reuses_the_answer(
    database, production, s3_settings, s3_endpoint, tmp_path, monkeypatch
):
    # An S3 prefix with nothing under it yet is a usable root (it used to be "missing").
    set_tiers(database, production.project_id, {"cold": s3_endpoint.url(f"empty-{tmp_path.name}")})
    checks: list[str] = []
    real_check = BlobStore.check

    def counted(store: BlobStore) -> None:
        checks.append(store.root)
        real_check(store)

    monkeypatch.setattr(BlobStore, "check", counted)
    client = TestClient(create_app(s3_settings, database=database, cache=LocalCache()))
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert {key: value for key, value in ready.json()["checks"].items() if key.startswith("storage")} == {
        "storage.hot": "ok",
        "storage.archive": "ok",
        "storage.cold (DEMO)": "ok",
    }
    assert len(checks) == 3
    client.get("/readyz")
    assert len(checks) == 3  # a load balancer polling every second does not write every second

    set_tiers(database, production.project_id, {"cold": MISSING_BUCKET})
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["error"]["details"]["storage.cold (DEMO)"] == (
        f"storage tier cold: bucket no-such-bucket does not exist ({MISSING_BUCKET})"
    )


def test_root_probes_are_reused_for_their_max_age_only(database, production, settings):
    probes = RootProbes(max_age=0)
    assert probes.problems(database, settings) == {"storage.hot": None, "storage.archive": None}
    os.rmdir(settings.tier_roots["archive"])
    assert probes.problems(database, settings)["storage.archive"] == (
        f"storage tier archive: {settings.tier_roots['archive']} does not exist"
    )
