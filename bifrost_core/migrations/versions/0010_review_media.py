"""review media: why a version has none, and the task status a new version moves its task to

versions.media_error holds the reason the review-media flow could not make a version's
proxy (empty once it could). statuses.on_new_version marks the one task status a task
moves to when a new version of it is published; existing projects get the default
workflow's: their task status `review`, where they have one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("versions", sa.Column("media_error", sa.Text(), nullable=True))
    op.add_column(
        "statuses",
        sa.Column("on_new_version", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute("UPDATE statuses SET on_new_version = TRUE WHERE kind = 'task' AND code = 'review'")


def downgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.drop_column("on_new_version")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("media_error")
