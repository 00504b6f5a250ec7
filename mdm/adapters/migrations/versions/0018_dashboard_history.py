"""metric_hour and ingest_tally: the dashboard's hourly history and the ingestion
counts waiting to be folded into it (mdm/adapters/history.py).

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_hour",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("series", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour", "series", "entity", "source", "label", name=op.f("pk_metric_hour")
        ),
    )
    op.create_table(
        "ingest_tally",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_tally")
    op.drop_table("metric_hour")
