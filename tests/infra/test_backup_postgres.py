"""`bifrost backup` on PostgreSQL with pgBackRest (a cluster of the test's own, archiving its
WAL into a folder repository): status and the metrics read the last base backup and
pg_stat_archiver, a failing archive_command shows as failing; bad input — an unreachable or
unwritable repository, a data directory in use, a backup folder given to PostgreSQL — is one
line, a non-zero exit and nothing half-written. (The full restore drill, on S3:
test_restore_drill.py.)"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from cli.main import app
from tests.support.pg_cluster import Cluster, owned_folder
from tests.support.pgbackrest import SERVER_USER, archiving_cluster, pgbackrest, write_config
from tests.support.services import free_port
from tests.support.waiting import wait_for


def bifrost(*args: object, code: int = 0) -> str:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    return result.output


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Cluster, Path]]:
    pgbackrest()
    with archiving_cluster({"repo1-path": "placeholder"}, archive_timeout=5) as (cluster, config):
        repository = cluster.root / "repository"
        repository.mkdir()
        if os.geteuid() == 0:
            shutil.chown(repository, SERVER_USER, SERVER_USER)
        write_config(config, cluster, {"repo1-path": str(repository)})
        cluster.run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(cluster.port),
            "-U",
            "postgres",
            "-qc",
            "CREATE DATABASE bifrost",
        )
        yield cluster, config


@pytest.fixture
def on_cluster(cluster, bifrost_env, monkeypatch) -> tuple[Cluster, Path, Database]:
    """The CLI configured for the cluster's database (initialised) and pgBackRest."""
    server, config = cluster
    url = f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/bifrost"
    monkeypatch.setenv("BIFROST_DATABASE_URL", url)
    monkeypatch.setenv("BIFROST_USER", "ops")
    monkeypatch.setenv("BIFROST_BACKUP_PGBACKREST_CONFIG", str(config))
    monkeypatch.setenv("BIFROST_BACKUP_RUN_AS", SERVER_USER if os.geteuid() == 0 else "")
    bifrost("init")
    database = Database(url, pool_size=1)
    yield server, config, database
    database.dispose()


def _switch_wal(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS drill_noise (n int)"))
        connection.execute(text("INSERT INTO drill_noise VALUES (1)"))
        connection.execute(text("SELECT pg_switch_wal()"))


def _wal() -> dict:
    return json.loads(bifrost("backup", "status", "--json"))["wal"]


def _metrics(database: Database) -> dict[str, float]:
    with TestClient(create_app(load_settings(), database=database, cache=LocalCache())) as client:
        lines = client.get("/metrics").text.splitlines()
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in lines
        if line.startswith(("bifrost_backup_", "bifrost_wal_"))
    }


def test_status_and_metrics_follow_backups_and_the_wal_archive(on_cluster):
    _server, _config, database = on_cluster
    made = json.loads(bifrost("backup", "create", "--json"))
    assert made["database"] == "postgresql" and made["location"].endswith("F")  # pgBackRest's full label
    _switch_wal(database)
    wait_for("the switched segment archived", lambda: _wal()["unarchived_segments"] == 0, 30)

    status = json.loads(bifrost("backup", "status", "--json"))
    assert status["problems"] == []
    assert status["last_backup"]["location"] == made["location"] and status["last_backup"]["type"] == "full"
    assert (
        status["last_backup"]["size"] == made["size"] > 0 and 0 <= status["last_backup"]["age_seconds"] < 120
    )
    wal = status["wal"]
    assert wal["archive_mode"] == "on" and wal["failing"] is False and wal["archived_count"] >= 2
    assert 0 <= wal["age_seconds"] < 60
    assert status["repository"]["status"] == "ok" and status["repository"]["wal_max"] >= made["location"][:0]
    lines = bifrost("backup", "status")
    assert f"last backup (postgresql): {made['location']} finished" in lines
    assert f"last archived WAL: {wal['last_archived']}" in lines

    figures = _metrics(database)
    assert figures["bifrost_backup_readable"] == 1 and figures["bifrost_wal_archive_failing"] == 0
    assert (
        0 <= figures["bifrost_backup_age_seconds"] < 300
        and figures["bifrost_backup_size_bytes"] == made["size"]
    )
    assert 0 <= figures["bifrost_wal_archive_age_seconds"] < 300

    # The archive_command starts failing: status and the gauge say so, and segments wait.
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        working = connection.execute(text("SHOW archive_command")).scalar_one()
        connection.execute(text("ALTER SYSTEM SET archive_command = 'false'"))
        connection.execute(text("SELECT pg_reload_conf()"))
    try:
        time.sleep(0.5)
        _switch_wal(database)
        wait_for("archiving to fail", lambda: _wal()["failing"], 60)
        failing = json.loads(bifrost("backup", "status", "--json"))["wal"]
        assert failing["unarchived_segments"] >= 1 and failing["failed_count"] >= 1
        assert "FAILING since" in bifrost("backup", "status")
        figures = _metrics(database)
        assert figures["bifrost_wal_archive_failing"] == 1 and figures["bifrost_wal_unarchived_segments"] >= 1
    finally:
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"ALTER SYSTEM SET archive_command = '{working}'"))
            connection.execute(text("SELECT pg_reload_conf()"))
    wait_for("archiving to recover", lambda: not _wal()["failing"], 60)


def test_an_unreachable_repository_is_one_line_and_restores_nothing(on_cluster, tmp_path, monkeypatch):
    server, config, _database = on_cluster
    unreachable = server.root / "unreachable.conf"  # where the server's user may read it
    shutil.copy(config, unreachable)
    # An S3 endpoint nobody listens on, given up on after a few seconds (pgBackRest's default
    # is a minute per attempt).
    repository = {"repo1-type": "s3", "repo1-path": "/bifrost", "repo1-s3-bucket": "gone",
                  "repo1-s3-endpoint": "127.0.0.1", "repo1-storage-port": "9", "repo1-s3-region": "us-east-1",
                  "repo1-s3-key": "k", "repo1-s3-key-secret": "s", "repo1-s3-uri-style": "path",
                  "io-timeout": "1"}  # fmt: skip
    write_config(unreachable, server, repository)
    monkeypatch.setenv("BIFROST_BACKUP_PGBACKREST_CONFIG", str(unreachable))
    output = bifrost("backup", "create", code=8)
    assert (
        output.startswith("error: pgbackrest stanza-create: ")
        and "unable to connect to '127.0.0.1:9'" in output
    )
    assert len(output.strip().splitlines()) == 1
    status = bifrost("backup", "status", code=8)
    assert "problem: pgbackrest info: [HostConnectError] unable to connect to '127.0.0.1:9'" in status
    assert "last archived WAL:" in status  # what PostgreSQL itself says is still shown

    parent = owned_folder()
    try:
        target = parent / "restored"
        output = bifrost("backup", "restore", "--pg-data", target, "--port", 5999, code=8)
        assert output.startswith(
            "error: pgbackrest info: [HostConnectError] unable to connect to '127.0.0.1:9'"
        )
        assert len(output.strip().splitlines()) == 1
        assert not target.exists(), "nothing is made for a restore that cannot happen"
    finally:
        shutil.rmtree(parent)

    monkeypatch.setenv("BIFROST_BACKUP_PGBACKREST_CONFIG", str(tmp_path / "missing.conf"))
    output = bifrost("backup", "create", code=7)
    assert output.strip() == (
        f"error: pgBackRest's configuration {tmp_path / 'missing.conf'} cannot be read "
        "(BIFROST_BACKUP_PGBACKREST_CONFIG)"
    )


def test_a_restore_never_overwrites_without_force_nor_a_running_server(on_cluster, tmp_path):
    server, _config, _database = on_cluster
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("someone's")
    output = bifrost("backup", "restore", "--pg-data", occupied, "--port", 5999, code=4)
    assert output.strip() == f"error: data directory {occupied} is not empty: pass --force to overwrite it"
    assert [path.name for path in occupied.iterdir()] == ["keep.txt"]
    output = bifrost("backup", "restore", "--pg-data", server.data, "--port", 5999, "--force", code=4)
    assert (
        output.strip() == f"error: a PostgreSQL server runs on {server.data} (postmaster.pid): stop it first"
    )
    assert server.running()

    assert "a PostgreSQL restore comes from pgBackRest's repository" in bifrost(
        "backup", "restore", tmp_path, code=5
    )
    assert "needs --pg-data" in bifrost("backup", "restore", "--port", 5999, code=5)
    assert "is not NAME=VALUE" in bifrost(
        "backup", "restore", "--pg-data", tmp_path / "x", "--port", 5999, "--pg-option", "nonsense", code=2
    )
    assert not (tmp_path / "x").exists()


def test_an_unwritable_repository_folder_is_one_line(on_cluster, monkeypatch):
    server, config, _database = on_cluster
    locked = server.root / "locked-repository"
    locked.mkdir(mode=0o555)  # the server's user may not write here (as root: root's, not its)
    unwritable = server.root / "unwritable.conf"
    shutil.copy(config, unwritable)
    write_config(unwritable, server, {"repo1-path": str(locked)})
    monkeypatch.setenv("BIFROST_BACKUP_PGBACKREST_CONFIG", str(unwritable))
    output = bifrost("backup", "create", code=8)
    assert output.startswith("error: pgbackrest stanza-create: ") and "Permission denied" in output
    assert len(output.strip().splitlines()) == 1
    assert list(locked.iterdir()) == []


def test_restore_to_a_point_in_time_before_a_mistake(on_cluster):
    _server, _config, database = on_cluster
    bifrost("backup", "create", "--type", "incr")
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS ledger (entry text)"))
        connection.execute(text("INSERT INTO ledger VALUES ('before')"))
    time.sleep(1.5)
    target = datetime.now(UTC)
    time.sleep(1.5)
    with database.engine.begin() as connection:
        connection.execute(text("INSERT INTO ledger VALUES ('the mistake')"))
    _switch_wal(database)
    wait_for("the mistake archived", lambda: _wal()["unarchived_segments"] == 0, 30)

    restored = Cluster(owned_folder(), free_port())
    try:
        output = bifrost("backup", "restore", "--pg-data", restored.data, "--port", restored.port,
                         "--target-time", target.strftime("%Y-%m-%d %H:%M:%S.%f"),
                         "--pg-option", f"unix_socket_directories={restored.root}")  # fmt: skip
        assert (
            f"point Bifrost at it: BIFROST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:{restored.port}/bifrost"
            in output
        )
        back = Database(f"postgresql://postgres@127.0.0.1:{restored.port}/bifrost", pool_size=1)
        try:
            with back.engine.connect() as connection:
                assert connection.execute(text("SELECT entry FROM ledger")).scalars().all() == ["before"]
                assert connection.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
        finally:
            back.dispose()
    finally:
        if restored.running():
            restored.stop("immediate")
        shutil.rmtree(restored.root, ignore_errors=True)
