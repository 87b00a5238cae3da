"""Flow runs: recorded before Prefect starts them (the outbox)

A run is recorded pending (no Prefect run id yet, with the parameters to start it, the
request's idempotency key and a unique key of its own), committed, then started in Prefect
with that key as the run's idempotency key; a record whose start was lost is started again
by `bifrost flow reconcile`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JsonDict = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.alter_column("run_id", existing_type=sa.String(length=36), nullable=True)
        batch_op.add_column(sa.Column("parameters", JsonDict, nullable=True))
        batch_op.add_column(sa.Column("request_key", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("start_key", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_flow_runs_request_key"), ["request_key"])
    # Runs recorded before: started already, their key is never asked for again.
    op.execute("UPDATE flow_runs SET start_key = 'bifrost-before-0008-' || CAST(id AS VARCHAR(20))")
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.alter_column("start_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_flow_runs_start_key"), ["start_key"])


def downgrade() -> None:
    op.execute("DELETE FROM flow_runs WHERE run_id IS NULL")
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_flow_runs_start_key"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_flow_runs_request_key"), type_="unique")
        batch_op.drop_column("start_key")
        batch_op.drop_column("request_key")
        batch_op.drop_column("parameters")
        batch_op.alter_column("run_id", existing_type=sa.String(length=36), nullable=False)
