"""Relationships between golden records: references resolved through the cross-reference.

Revision ID: 0010
Revises: 0009 (written as 0007 beside 0008 and 0009; chained after them when merged)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "golden_reference",
        sa.Column("golden_id", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("target_entity", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("target_golden_id", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["golden_id"],
            ["golden_record.golden_id"],
            name=op.f("fk_golden_reference_golden_id_golden_record"),
        ),
        sa.PrimaryKeyConstraint("golden_id", "field", name=op.f("pk_golden_reference")),
    )
    op.create_index(
        op.f("ix_golden_reference_target_entity_source_source_id"),
        "golden_reference",
        ["target_entity", "source", "source_id"],
    )
    op.create_index(
        op.f("ix_golden_reference_target_golden_id"), "golden_reference", ["target_golden_id"]
    )


def downgrade() -> None:
    op.drop_table("golden_reference")
