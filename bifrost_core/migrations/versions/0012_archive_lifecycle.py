"""storage lifecycle: archive policies, shots marked final, archived versions, restore requests

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDict = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def _owned(table: str, column: str, parent: str, *columns: sa.Column) -> None:
    """A table of rows each belonging to one `parent` row (unique), plus an optional user."""
    user_columns = [c.name for c in columns if c.name in ("updated_by", "marked_by", "requested_by")]
    op.create_table(
        table,
        sa.Column(column, BigId, nullable=False),
        *columns,
        sa.Column("id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            [column], [f"{parent}.id"], name=op.f(f"fk_{table}_{column}_{parent}"), ondelete="CASCADE"
        ),
        *[
            sa.ForeignKeyConstraint(
                [name], ["users.id"], name=op.f(f"fk_{table}_{name}_users"), ondelete="SET NULL"
            )
            for name in user_columns
        ],
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint(column, name=op.f(f"uq_{table}_{column}")),
    )


def upgrade() -> None:
    _owned(
        "archive_policies",
        "project_id",
        "projects",
        sa.Column("rules", JsonDict, nullable=False),
        sa.Column("updated_by", BigId, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    _owned(
        "shot_finals",
        "shot_id",
        "shots",
        sa.Column("marked_by", BigId, nullable=True),
        sa.Column("marked_at", Timestamp, nullable=False),
    )
    _owned(
        "archived_versions",
        "version_id",
        "versions",
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("archived_at", Timestamp, nullable=False),
        sa.Column("restored_at", Timestamp, nullable=True),
    )
    _owned(
        "restore_requests",
        "version_id",
        "versions",
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("requested_by", BigId, nullable=True),
        sa.Column("requested_at", Timestamp, nullable=False),
        sa.Column("ready_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    for table in ("restore_requests", "archived_versions", "shot_finals", "archive_policies"):
        op.drop_table(table)
