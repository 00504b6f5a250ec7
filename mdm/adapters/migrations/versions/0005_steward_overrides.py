"""Stewards' survivorship overrides: pinned golden values and ignored source values.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "golden_pin",
        sa.Column("golden_id", sa.Text(), nullable=False),
        sa.Column("attribute", sa.Text(), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("inherited_from", sa.Text(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["golden_id"],
            ["golden_record.golden_id"],
            name=op.f("fk_golden_pin_golden_id_golden_record"),
        ),
        sa.PrimaryKeyConstraint("golden_id", "attribute", name=op.f("pk_golden_pin")),
    )
    op.create_table(
        "value_ignore",
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("attribute", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["source_record.id"],
            name=op.f("fk_value_ignore_record_id_source_record"),
        ),
        sa.PrimaryKeyConstraint("record_id", "attribute", name=op.f("pk_value_ignore")),
    )


def downgrade() -> None:
    op.drop_table("value_ignore")
    op.drop_table("golden_pin")
