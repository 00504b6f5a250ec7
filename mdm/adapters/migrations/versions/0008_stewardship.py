"""Stewardship: review task assignment and the audit trail of review decisions.

Revision ID: 0008
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONB = postgresql.JSONB(astext_type=sa.Text())
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("review_task", sa.Column("assigned_to", sa.Text(), nullable=True))
    op.add_column("review_task", sa.Column("assigned_at", TS, nullable=True))
    op.create_index(op.f("ix_review_task_golden_id"), "review_task", ["golden_id"])
    op.create_index(op.f("ix_review_task_candidate_id"), "review_task", ["candidate_id"])
    op.create_table(
        "review_decision",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("golden_id", sa.Text(), nullable=False),
        sa.Column("candidate_id", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("outcome", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["review_task.id"], name=op.f("fk_review_decision_task_id_review_task")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decision")),
    )
    op.create_index(op.f("ix_review_decision_task_id"), "review_decision", ["task_id"])
    op.create_index(op.f("ix_review_decision_golden_id"), "review_decision", ["golden_id"])
    op.create_index(op.f("ix_review_decision_candidate_id"), "review_decision", ["candidate_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_review_decision_candidate_id"), table_name="review_decision")
    op.drop_index(op.f("ix_review_decision_golden_id"), table_name="review_decision")
    op.drop_index(op.f("ix_review_decision_task_id"), table_name="review_decision")
    op.drop_table("review_decision")
    op.drop_index(op.f("ix_review_task_candidate_id"), table_name="review_task")
    op.drop_index(op.f("ix_review_task_golden_id"), table_name="review_task")
    op.drop_column("review_task", "assigned_at")
    op.drop_column("review_task", "assigned_to")
