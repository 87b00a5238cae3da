"""ingest records: content keys of ingested versions and source file fingerprints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_files",
        sa.Column("project_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("path_key", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("blob_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_id"], ["blobs.id"], name=op.f("fk_ingest_files_blob_id_blobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_ingest_files_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_files")),
        sa.UniqueConstraint("project_id", "path_key", name=op.f("uq_ingest_files_project_id_path_key")),
    )
    with op.batch_alter_table("ingest_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_files_blob_id"), ["blob_id"], unique=False)

    op.create_table(
        "ingest_records",
        sa.Column("project_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_ingest_records_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name=op.f("fk_ingest_records_version_id_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_records")),
        sa.UniqueConstraint("project_id", "key", name=op.f("uq_ingest_records_project_id_key")),
    )
    with op.batch_alter_table("ingest_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_records_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ingest_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_records_version_id"))

    op.drop_table("ingest_records")
    with op.batch_alter_table("ingest_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_files_blob_id"))

    op.drop_table("ingest_files")
