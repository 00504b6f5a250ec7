"""Merge events (audit, and where unmerged records go back to) and not-a-match pairs.

Revision ID: 0003
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merge_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("survivor_id", sa.Text(), nullable=False),
        sa.Column("loser_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("moved", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["survivor_id"],
            ["golden_record.golden_id"],
            name=op.f("fk_merge_event_survivor_id_golden_record"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge_event")),
    )
    op.create_index(op.f("ix_merge_event_survivor_id"), "merge_event", ["survivor_id"])
    op.create_table(
        "not_a_match",
        sa.Column("record_a", sa.BigInteger(), nullable=False),
        sa.Column("record_b", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("record_a < record_b", name=op.f("ck_not_a_match_ordered")),
        sa.ForeignKeyConstraint(
            ["record_a"], ["source_record.id"], name=op.f("fk_not_a_match_record_a_source_record")
        ),
        sa.ForeignKeyConstraint(
            ["record_b"], ["source_record.id"], name=op.f("fk_not_a_match_record_b_source_record")
        ),
        sa.PrimaryKeyConstraint("record_a", "record_b", name=op.f("pk_not_a_match")),
    )
    op.create_index(op.f("ix_not_a_match_record_b"), "not_a_match", ["record_b"])


def downgrade() -> None:
    op.drop_index(op.f("ix_not_a_match_record_b"), table_name="not_a_match")
    op.drop_table("not_a_match")
    op.drop_index(op.f("ix_merge_event_survivor_id"), table_name="merge_event")
    op.drop_table("merge_event")
