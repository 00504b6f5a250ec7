"""rematch_run: the runs of `mdm rematch`, with the cursor a restarted run continues from.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rematch_run",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("done", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("total", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("merged", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("reviews", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'abandoned')", name=op.f("ck_rematch_run_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rematch_run")),
    )
    op.create_index(op.f("ix_rematch_run_entity_id"), "rematch_run", ["entity", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rematch_run_entity_id"), table_name="rematch_run")
    op.drop_table("rematch_run")
