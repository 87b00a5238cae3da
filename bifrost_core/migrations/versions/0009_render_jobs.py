"""render jobs: render_jobs, render_chunks, and the job a version was rendered by

A render job is recorded with all its chunks at submit (state queued / pending); the farm's
flows move them along. versions.render_job_id and render_jobs.version_id point at each other:
the version's key is added once both tables exist.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDict = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "render_jobs",
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("shot_id", BigId, nullable=True),
        sa.Column("asset_id", BigId, nullable=True),
        sa.Column("task_id", BigId, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("command", JsonDict, nullable=False),
        sa.Column("scene", sa.Text(), nullable=True),
        sa.Column("frames", sa.Text(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("gpus_per_chunk", sa.Integer(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("environment", JsonDict, nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("output_dir", sa.Text(), nullable=False),
        sa.Column("version_id", BigId, nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("prefect_run_id", sa.String(length=36), nullable=True),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_render_jobs_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_render_jobs_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_render_jobs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shot_id"], ["shots.id"], name=op.f("fk_render_jobs_shot_id_shots"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_render_jobs_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name=op.f("fk_render_jobs_version_id_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_render_jobs")),
    )
    with op.batch_alter_table("render_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_render_jobs_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_render_jobs_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_render_jobs_shot_id"), ["shot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_render_jobs_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_render_jobs_task_id"), ["task_id"], unique=False)

    op.create_table(
        "render_chunks",
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Text(), nullable=False),
        sa.Column("first", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("gpu_ids", sa.String(length=255), nullable=True),
        sa.Column("prefect_run_id", sa.String(length=36), nullable=True),
        sa.Column("dispatched_at", Timestamp, nullable=True),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("heartbeat_at", Timestamp, nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["render_jobs.id"],
            name=op.f("fk_render_chunks_job_id_render_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_render_chunks")),
        sa.UniqueConstraint("job_id", "index", name=op.f("uq_render_chunks_job_id_index")),
    )
    with op.batch_alter_table("render_chunks", schema=None) as batch_op:
        batch_op.create_index("ix_render_chunks_state_job_id", ["state", "job_id"], unique=False)

    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("render_job_id", BigId, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_versions_render_job_id_render_jobs"),
            "render_jobs",
            ["render_job_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_versions_render_job_id_render_jobs"), type_="foreignkey")
        batch_op.drop_column("render_job_id")

    with op.batch_alter_table("render_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_render_chunks_state_job_id")

    op.drop_table("render_chunks")
    with op.batch_alter_table("render_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_render_jobs_task_id"))
        batch_op.drop_index(batch_op.f("ix_render_jobs_state"))
        batch_op.drop_index(batch_op.f("ix_render_jobs_shot_id"))
        batch_op.drop_index(batch_op.f("ix_render_jobs_project_id"))
        batch_op.drop_index(batch_op.f("ix_render_jobs_asset_id"))

    op.drop_table("render_jobs")
