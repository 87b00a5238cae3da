"""The scheduled `database-backup` flow (flows/backup.py): on the embedded default it copies the
SQLite database with its manifest whatever kind the schedule names, and summarises the run; only
an admin runs it. (PostgreSQL's base backups: tests/infra/test_backup_postgres.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.schemas import UserCreate
from flows.registry import FLOWS
from tests.support.ingest import OPERATOR
from tests.support.runs import invoke, read_run


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # PostgreSQL's is pgBackRest's
def test_database_backup_flow_copies_sqlite_and_summarises(
    database, production, settings, flow_env, prefect_server, monkeypatch, tmp_path
) -> None:
    from flows.backup import database_backup

    monkeypatch.setenv("BIFROST_BACKUP_ROOT", str(tmp_path / "backups"))
    state = database_backup(actor=OPERATOR, kind="diff", return_state=True)  # as the nightly schedule
    assert state.is_completed()
    made = state.result().made
    folder = Path(made.location)
    assert folder.parent == tmp_path / "backups" and made.database == "sqlite"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["database"]["size"] == made.size == (folder / "bifrost.db").stat().st_size
    _, artifacts = read_run(prefect_server, state.state_details.flow_run_id)
    summary = {item.key: item for item in artifacts}["database-backup-studio"].data
    assert summary.startswith("# Database backup (sqlite, copy)") and folder.name in summary.replace("\\", "")

    # The CLI runs it too, as the deployment would; a non-admin may not.
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    invoke("flow", "run", "database-backup", "--json")
    assert len(list((tmp_path / "backups").iterdir())) == 2
    with UnitOfWork(database) as uow:
        users.create_user(uow.session, actor=SYSTEM, data=UserCreate(username="pat"))
        uow.commit()
    monkeypatch.setenv("BIFROST_USER", "pat")
    refused = invoke("flow", "run", "database-backup", code=6)
    assert refused.output.strip() == "error: actor 'pat' may not run database-backup: only an admin may"
    assert len(list((tmp_path / "backups").iterdir())) == 2
    schedules = {
        schedule["cron"]: schedule["parameters"]["kind"] for schedule in FLOWS["database-backup"].schedules
    }
    assert schedules == {"0 1 * * 0": "full", "0 1 * * 1-6": "diff"}
