"""The scheduled database backup (flows/registry.py): what `bifrost backup create` does, as a
deployment the Prefect UI shows, with a markdown summary per run. PostgreSQL: a pgBackRest base
backup (weekly full, daily differential; the WAL in between is archived by the server itself);
SQLite: a copy with a manifest of the stored content. Only an admin runs it (schedules act as
the service user)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from prefect import flow

from bifrost_core.backup.service import Created
from bifrost_core.text import escape, escape_markdown
from flows.maintenance import STUDIO
from flows.parameters import Actor
from flows.reporting import publish_artifacts
from flows.runs import begin_studio
from tasks.backup import backup_database


@dataclass
class BackupSummary:
    """A backup run's `Report`."""

    made: Created
    kind: str
    project: str = STUDIO

    def markdown(self) -> str:
        made = self.made
        kind = self.kind if made.database == "postgresql" else "copy"
        return "\n".join(
            [
                f"# Database backup ({made.database}, {kind})",
                "",
                "| | |",
                "| --- | ---: |",
                f"| backup | {escape_markdown(made.location)} |",
                f"| ended | {made.finished_at:%Y-%m-%d %H:%M:%S} UTC |",
                f"| database bytes | {made.size:,} |",
                f"| stored bytes | {made.stored_size:,} |",
            ]
        )

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        return [
            ("backup", "the backup made", [{"location": escape(self.made.location), "bytes": self.made.size}])
        ]


@flow(name="database-backup", flow_run_name="database-backup-{kind}")
def database_backup(actor: Actor, kind: Literal["full", "diff", "incr"] = "full") -> BackupSummary:
    """Back the database up: a pgBackRest base backup of PostgreSQL, or a copy of SQLite.

    Args:
        actor: Bifrost username the run acts as: an admin (schedules: the service user)
        kind: PostgreSQL: full, diff (since the last full) or incr (since the last backup); SQLite: a copy
    """
    begin_studio("database-backup", actor)
    summary = BackupSummary(backup_database(kind), kind=kind)
    publish_artifacts("database-backup", summary)
    return summary
