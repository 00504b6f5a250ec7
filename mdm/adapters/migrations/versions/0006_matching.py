"""Probabilistic matching: model versions, review tasks, link explanations.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONB = postgresql.JSONB(astext_type=sa.Text())


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column("source_record", sa.Column("match_features", JSONB, nullable=True))
    op.add_column("source_record", sa.Column("link_weight", sa.Float(), nullable=True))
    op.add_column("source_record", sa.Column("link_probability", sa.Float(), nullable=True))
    op.add_column("source_record", sa.Column("link_model_version", sa.Integer(), nullable=True))
    op.add_column("source_record", sa.Column("link_explanation", JSONB, nullable=True))
    op.create_table(
        "match_model",
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model", JSONB, nullable=False),
        sa.Column("term_frequencies", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("trained_on", sa.Integer(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("entity", "version", name=op.f("pk_match_model")),
    )
    op.create_table(
        "review_task",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("golden_id", sa.Text(), nullable=False),
        sa.Column("candidate_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("explanation", JSONB, nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'open'"), nullable=False),
        _created_at(),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'merged', 'not_a_match', 'deferred', 'superseded')",
            name=op.f("ck_review_task_status"),
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["source_record.id"], name=op.f("fk_review_task_record_id_source_record")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_task")),
    )
    op.create_index(
        op.f("ix_review_task_entity_status_created_at"),
        "review_task",
        ["entity", "status", "created_at"],
    )
    op.create_index(op.f("ix_review_task_record_id"), "review_task", ["record_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_review_task_record_id"), table_name="review_task")
    op.drop_index(op.f("ix_review_task_entity_status_created_at"), table_name="review_task")
    op.drop_table("review_task")
    op.drop_table("match_model")
    for column in (
        "link_explanation",
        "link_model_version",
        "link_probability",
        "link_weight",
        "match_features",
    ):
        op.drop_column("source_record", column)
