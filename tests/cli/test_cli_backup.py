"""`bifrost backup create|status|restore` on the embedded default (SQLite): an online copy by
SQLite's backup API with a manifest of the stored content, restored only with --force over a
database, checked against its manifest; bad folders and unwritable or full targets are one line,
a non-zero exit, and nothing half-written. (PostgreSQL: tests/infra/test_backup_postgres.py.)"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.repository import record_blobs
from bifrost_core.projects import service as projects
from bifrost_core.projects.models import Project, Shot
from bifrost_core.projects.schemas import ShotCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import BlobStore
from tests.support.services import tmpfs


def _store_blobs(tmp_path: Path, count: int) -> dict[str, int]:
    """`count` blobs stored in the hot tier and recorded, as an ingest leaves them."""
    settings = load_settings()
    store = BlobStore(settings.tier_roots["hot"])
    database = Database(settings.database)
    stored = {}
    try:
        with UnitOfWork(database) as uow:
            for index in range(count):
                source = tmp_path / f"file-{index}.bin"
                source.write_bytes(f"frame {index}".encode() * (index + 1))
                put = store.put_file(source)
                record_blobs(uow.session, [(put.digest, put.size, put.url)], "hot")
                stored[put.digest] = put.size
            uow.commit()
    finally:
        database.dispose()
    return stored


def _shots(database_file: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{database_file}?mode=ro", uri=True)) as db:
        return [code for (code,) in db.execute("SELECT code FROM shots ORDER BY id")]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backup_is_a_consistent_online_copy_with_a_manifest_of_the_storage(production, tmp_path):
    bifrost = production
    stored = _store_blobs(tmp_path, 3)
    settings = load_settings()
    database = Database(settings.database)
    with UnitOfWork(database) as uow:
        sequence_id = uow.session.query(Shot).one().sequence_id
    written: list[str] = []
    stop = threading.Event()

    def write() -> None:  # a writer that goes on while the backup copies
        index = 0
        while not stop.is_set():
            index += 1
            with UnitOfWork(database) as uow:
                projects.create_shot(uow.session, actor=SYSTEM, sequence_id=sequence_id,
                                     data=ShotCreate(code=f"W{index:04d}"))  # fmt: skip
                uow.commit()
            written.append(f"W{index:04d}")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 5:
            stop.wait(0.01)
        made = json.loads(bifrost("backup", "create", "--json").output)
        after = len(written)
        while len(written) < after + 3:  # and the writer went on after it
            stop.wait(0.01)
    finally:
        stop.set()
        writer.join()
        database.dispose()

    folder = Path(made["location"])
    assert made["database"] == "sqlite" and folder.parent == settings.home / "backups"
    assert sorted(path.name for path in folder.iterdir()) == ["bifrost.db", "manifest.json"]
    assert not list(folder.parent.glob(".partial-*"))
    manifest = json.loads((folder / "manifest.json").read_text())
    copy = folder / "bifrost.db"
    assert (
        manifest["database"]["sha256"] == _sha(copy) and manifest["database"]["size"] == copy.stat().st_size
    )
    assert {blob["hash"]: blob["size"] for blob in manifest["blobs"]} == stored
    for blob in manifest["blobs"]:
        (location,) = blob["locations"]
        assert location["tier"] == "hot" and location["url"].endswith(blob["hash"])
    assert manifest["storage"]["blobs"] == 3 and manifest["storage"]["bytes"] == sum(stored.values())
    # Consistent: the copy is a sound database holding a prefix of the writer's shots, taken
    # while the writer kept committing.
    with closing(sqlite3.connect(copy)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copied = [code for code in _shots(copy) if code.startswith("W")]
    assert copied == written[: len(copied)] and 5 <= len(copied) < len(written)

    status = json.loads(bifrost("backup", "status", "--json").output)
    assert status["last_backup"]["location"] == str(folder)
    assert status["last_backup"]["blobs"] == 3 and 0 <= status["last_backup"]["age_seconds"] < 60
    assert status["wal"] is None and status["problems"] == []
    line = bifrost("backup", "status").output
    assert f"last backup (sqlite): {folder}" in line

    # The API's gauges: the backup's age and size (no WAL archive on SQLite).
    database = Database(settings.database)
    try:
        with TestClient(create_app(load_settings(), database=database, cache=LocalCache())) as client:
            scraped = client.get("/metrics").text
    finally:
        database.dispose()
    figures = dict(line.split(" ") for line in scraped.splitlines() if line.startswith("bifrost_backup_"))
    assert (
        float(figures["bifrost_backup_readable"]) == 1
        and 0 <= float(figures["bifrost_backup_age_seconds"]) < 60
    )
    assert float(figures["bifrost_backup_size_bytes"]) == manifest["database"]["size"]
    assert "bifrost_wal_" not in scraped


def test_restore_replaces_a_database_only_with_force_and_reports_missing_blobs(production, peek, tmp_path):
    bifrost = production
    stored = _store_blobs(tmp_path, 2)
    folder = Path(json.loads(bifrost("backup", "create", "--json").output)["location"])
    bifrost("project", "create", "LATER", "--name", "Made after the backup")
    database_file = load_settings().home / "bifrost.db"
    before = _sha(database_file)

    refused = bifrost("backup", "restore", folder, code=4)
    assert (
        refused.output.strip()
        == f"error: database {database_file} exists: pass --force to replace it with the backup"
    )
    assert _sha(database_file) == before

    # A blob of the manifest lost from its tier: restored all the same, and said.
    lost = sorted(stored)[0]
    BlobStore(load_settings().tier_roots["hot"]).local_path(lost).unlink()
    restored = bifrost("backup", "restore", folder, "--force")
    assert f"restored {database_file} from {folder} (2 blob(s) in its manifest)" in restored.output
    assert "1 blob location(s) of the manifest are not in their tier" in restored.output
    assert f"hot:{lost}" in restored.output
    with peek() as session:
        assert sorted(session.query(Project.code)) == [("DEMO",)]
    bifrost("shot", "list", "DEMO")  # the restored database serves commands

    # No database at all (lost with its disk): restored without --force.
    for leftover in database_file.parent.glob("bifrost.db*"):
        leftover.unlink()
    bifrost("backup", "restore", folder)
    with peek() as session:
        assert sorted(session.query(Project.code)) == [("DEMO",)]


def test_what_is_not_a_sound_backup_is_refused_and_nothing_changes(production, row_counts, tmp_path):
    bifrost = production
    folder = Path(json.loads(bifrost("backup", "create", "--json").output)["location"])
    counts = row_counts()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert bifrost("backup", "restore", empty, "--force", code=5).output.strip() == (
        f"error: {empty} is not a Bifrost backup (no readable manifest.json)"
    )
    (empty / "manifest.json").write_text('{"format": "something else"}')
    assert "is not a Bifrost SQLite backup" in bifrost("backup", "restore", empty, "--force", code=5).output
    missing = tmp_path / "nowhere"
    assert (
        bifrost("backup", "restore", missing, code=3).output.strip() == f"error: no backup folder {missing}"
    )
    assert "name the backup folder" in bifrost("backup", "restore", code=5).output

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("bifrost.db", "manifest.json"):
        (damaged / name).write_bytes((folder / name).read_bytes())
    with (damaged / "bifrost.db").open("r+b") as copy:
        copy.seek(5000)
        byte = copy.read(1)
        copy.seek(5000)
        copy.write(bytes([byte[0] ^ 0xFF]))
    output = bifrost("backup", "restore", damaged, "--force", code=9).output
    assert output.strip() == f"error: backup {damaged} is damaged: bifrost.db does not match its manifest"

    # A manifest whose storage list was edited no longer matches the copy's blob records.
    tampered = json.loads((folder / "manifest.json").read_text())
    tampered["storage"]["content_sha256"] = "0" * 64
    (damaged / "bifrost.db").write_bytes((folder / "bifrost.db").read_bytes())
    (damaged / "manifest.json").write_text(json.dumps(tampered))
    output = bifrost("backup", "restore", damaged, "--force", code=9).output
    assert output.strip() == f"error: backup {damaged} is damaged: its blobs differ from its manifest"
    assert row_counts() == counts
    assert len(output.strip().splitlines()) == 1


def test_a_backup_folder_that_refuses_writes_or_fills_up_leaves_nothing(production, tmp_path, monkeypatch):
    bifrost = production
    with tmpfs(tmp_path / "readonly", "size=4m,ro") as readonly:
        monkeypatch.setenv("BIFROST_BACKUP_ROOT", str(readonly / "backups"))
        output = bifrost("backup", "create", code=8).output
        assert output.strip() == (
            f"error: backup folder {readonly / 'backups'} is not writable: Read-only file system"
        )
    # Room for the folder, not for the copy: the copy fails midway and its folder goes.
    with tmpfs(tmp_path / "small", "size=64k") as small:
        monkeypatch.setenv("BIFROST_BACKUP_ROOT", str(small))
        output = bifrost("backup", "create", code=8).output
        assert (
            output.startswith(f"error: backup into {small} failed: ")
            and len(output.strip().splitlines()) == 1
        )
        assert list(small.iterdir()) == []
        assert json.loads(bifrost("backup", "status", "--json").output)["last_backup"] is None
