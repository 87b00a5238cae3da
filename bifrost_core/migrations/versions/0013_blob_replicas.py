"""replication: verified copies of blob locations on their tier's replicas

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "blob_replicas",
        sa.Column("location_id", BigId, nullable=False),
        sa.Column("replica", sa.String(length=1024), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("verified_at", Timestamp, nullable=False),
        sa.Column("id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["blob_locations.id"],
            name=op.f("fk_blob_replicas_location_id_blob_locations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_replicas")),
        sa.UniqueConstraint("location_id", "replica", name=op.f("uq_blob_replicas_location_id_replica")),
    )


def downgrade() -> None:
    op.drop_table("blob_replicas")
