"""`bifrost backup create|status|restore`: backups of Bifrost's database.

SQLite: copies with a manifest of the stored content under BIFROST_BACKUP_ROOT. PostgreSQL:
pgBackRest's base backups and WAL archive (infra/postgres/), restored into a new data
directory. What is done: bifrost_core/backup/service.py.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import open_database, operator, settings
from cli.output import JsonOption, print_json, say

if TYPE_CHECKING:
    from bifrost_core.backup.settings import BackupSettings

app = typer.Typer(no_args_is_help=True, help="Backups of the database: create, status, restore.")


def _backup_settings() -> BackupSettings:
    from bifrost_core.backup.settings import load_backup_settings

    return load_backup_settings()


def _as_operator() -> None:
    """Backups name no author, yet the CLI never runs anonymously (an unknown user is exit 6)."""
    database = open_database()
    try:
        operator(database)
    finally:
        database.dispose()


def _size(size: int) -> str:
    return f"{size / 1024**2:,.1f} MiB"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 7200 else f"{seconds / 3600:.1f} h ago"


@app.command()
def create(
    kind: str = typer.Option("full", "--type", help="PostgreSQL: full, diff or incr (SQLite: always full)"),
    as_json: bool = JsonOption,
) -> None:
    """Back the database up: a SQLite copy with a manifest of the stored content, or a
    pgBackRest base backup of PostgreSQL (WAL is archived continuously by the server)."""
    from bifrost_core.backup import service

    config = settings()
    _as_operator()
    made = service.create(config, _backup_settings(), kind=kind)
    if as_json:
        print_json(vars(made))
        return
    blobs = "" if made.blobs is None else f", manifest of {made.blobs} blob(s)"
    say(f"backup {made.location} of the {made.database} database: {_size(made.size)} "
        f"({_size(made.stored_size)} stored){blobs}")  # fmt: skip


@app.command()
def status(as_json: bool = JsonOption) -> None:
    """The last backup (time, size, age) and, on PostgreSQL, the last archived WAL segment
    and its age; exit 8 when part of it cannot be read."""
    from bifrost_core.backup import service

    config = settings()
    database = open_database()
    try:
        operator(database)
        on_postgresql = service.is_postgresql(config)
        found = service.status(config, _backup_settings(), database if on_postgresql else None)
    finally:
        database.dispose()
    if as_json:
        print_json(found.as_dict())
    else:
        last = found.last_backup
        if last is None:
            say(f"last backup ({found.database}): none")
        else:
            say(f"last backup ({found.database}): {last['location']} finished {last['finished_at']} "
                f"({_age(last['age_seconds'])}), {_size(last['size'])}")  # fmt: skip
        if found.wal is not None:
            wal = found.wal
            failing = f", FAILING since {wal['last_failed']}" if wal["failing"] else ""
            say(f"last archived WAL: {wal['last_archived'] or 'none'} ({_age(wal['age_seconds'])}); "
                f"{wal['unarchived_segments']} finished segment(s) waiting{failing}")  # fmt: skip
        if found.repository is not None:
            repository = found.repository
            say(f"repository: {repository['status']}, {repository['backups']} backup(s), "
                f"WAL {repository['wal_min'] or '-'} to {repository['wal_max'] or '-'}")  # fmt: skip
        for problem in found.problems:
            say(f"problem: {problem}", err=True)
    if found.problems:
        raise typer.Exit(8)


def _options(values: list[str]) -> dict[str, str]:
    options = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.replace("_", "").isalnum():
            raise typer.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--pg-option")
        options[name] = setting
    return options


@app.command()
def restore(
    folder: Path | None = typer.Argument(None, help="SQLite: the backup folder to restore"),
    force: bool = typer.Option(False, "--force", help="Replace an existing database or data directory"),
    pg_data: Path | None = typer.Option(None, "--pg-data", help="PostgreSQL: the new data directory"),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="PostgreSQL: the new server's port"
    ),
    target_time: datetime | None = typer.Option(
        None, "--target-time", help="PostgreSQL: replay the WAL up to this time (UTC unless it names a zone)"
    ),
    pg_option: list[str] = typer.Option(
        [], "--pg-option", help="PostgreSQL: NAME=VALUE added to the new server's settings (repeatable)"
    ),
    start: bool = typer.Option(True, "--start/--no-start", help="PostgreSQL: start the restored server"),
    as_json: bool = JsonOption,
) -> None:
    """Restore the database: SQLite from a backup folder (checked against its manifest);
    PostgreSQL from pgBackRest's repository into a new data directory, started and promoted
    once it has replayed the archive. Prints what BIFROST_DATABASE_URL is to name."""
    from datetime import UTC

    from bifrost_core.backup import service
    from bifrost_core.errors import InvalidInput

    config = settings()
    if not service.is_postgresql(config):
        if folder is None:
            raise InvalidInput("name the backup folder to restore (bifrost backup status shows the last one)")
        restored = service.restore_sqlite(config, folder, force=force)
        if as_json:
            print_json(vars(restored))
            return
        say(f"restored {restored.database} from {restored.backup} ({restored.blobs} blob(s) in its manifest)")
        if restored.missing:
            say(f"warning: {len(restored.missing)} blob location(s) of the manifest are not in their tier "
                f"(e.g. {restored.missing[0]}): run `bifrost verify`", err=True)  # fmt: skip
        return
    if folder is not None:
        raise InvalidInput(
            "a PostgreSQL restore comes from pgBackRest's repository: give --pg-data and --port"
        )
    if pg_data is None or port is None:
        raise InvalidInput("a PostgreSQL restore needs --pg-data (a new data directory) and --port")
    if target_time is not None and target_time.tzinfo is None:
        target_time = target_time.replace(tzinfo=UTC)
    made = service.restore_postgres(
        config, _backup_settings(), data=pg_data, port=port, force=force, target_time=target_time,
        options=_options(pg_option), start=start,
    )  # fmt: skip
    if as_json:
        print_json(vars(made))
        return
    state = "started and promoted" if made.started else "not started (pg_ctl start it)"
    say(f"restored into {made.data} in {made.seconds:.1f} s, {state}")
    say(f"point Bifrost at it: BIFROST_DATABASE_URL={made.url}")
    repository_config = _backup_settings().pgbackrest_config
    say(f"before the next base backup, set pg1-path={made.data} and pg1-port={port} in {repository_config}")
