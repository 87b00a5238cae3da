"""Storage: leases that keep `storage gc` off the blobs a running ingest is about to register

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_leases",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_leases")),
    )
    with op.batch_alter_table("blob_leases") as batch:
        batch.create_index(batch.f("ix_blob_leases_hash"), ["hash"], unique=False)
        batch.create_index(batch.f("ix_blob_leases_holder"), ["holder"], unique=False)


def downgrade() -> None:
    op.drop_table("blob_leases")
