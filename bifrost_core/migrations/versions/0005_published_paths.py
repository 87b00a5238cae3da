"""Ingest: each file's published path

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("representation_files", sa.Column("published_path", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("representation_files") as batch:
        batch.drop_column("published_path")
