"""review sessions: playlists, decisions, notes at frames with drawings and replies, passwords

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDict = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "playlists",
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("shared_with_clients", sa.Boolean(), nullable=False),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_playlists_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_playlists_created_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playlists")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_playlists_project_id_name")),
    )
    op.create_index(op.f("ix_playlists_project_id"), "playlists", ["project_id"])
    op.create_table(
        "playlist_items",
        sa.Column("playlist_id", BigId, nullable=False),
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["playlist_id"],
            ["playlists.id"],
            name=op.f("fk_playlist_items_playlist_id_playlists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name=op.f("fk_playlist_items_version_id_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playlist_items")),
        sa.UniqueConstraint(
            "playlist_id", "version_id", name=op.f("uq_playlist_items_playlist_id_version_id")
        ),
    )
    op.create_index(op.f("ix_playlist_items_playlist_id"), "playlist_items", ["playlist_id"])
    op.create_index(op.f("ix_playlist_items_version_id"), "playlist_items", ["version_id"])
    op.create_table(
        "review_decisions",
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("playlist_id", BigId, nullable=True),
        sa.Column("author_id", BigId, nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("version_status", sa.String(length=32), nullable=False),
        sa.Column("task_status", sa.String(length=32), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_review_decisions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name=op.f("fk_review_decisions_version_id_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["playlist_id"],
            ["playlists.id"],
            name=op.f("fk_review_decisions_playlist_id_playlists"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_review_decisions_author_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    op.create_index(op.f("ix_review_decisions_project_id"), "review_decisions", ["project_id"])
    op.create_index(op.f("ix_review_decisions_version_id"), "review_decisions", ["version_id"])
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("frame_in", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("frame_out", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("drawing", JsonDict, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_notes_parent_id_notes"), "notes", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index(batch_op.f("ix_notes_parent_id"), ["parent_id"])
        batch_op.create_check_constraint(
            batch_op.f("ck_notes_frame_range"), "frame_in IS NULL OR frame_in <= frame_out"
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_hash")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_notes_frame_range"), type_="check")
        batch_op.drop_index(batch_op.f("ix_notes_parent_id"))
        batch_op.drop_constraint(batch_op.f("fk_notes_parent_id_notes"), type_="foreignkey")
        batch_op.drop_column("drawing")
        batch_op.drop_column("frame_out")
        batch_op.drop_column("frame_in")
        batch_op.drop_column("parent_id")
    op.drop_table("review_decisions")
    op.drop_table("playlist_items")
    op.drop_table("playlists")
