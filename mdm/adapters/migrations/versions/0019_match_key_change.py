"""match_key_change: per entity and key bucket, the changes counted to the live
records carrying its keys (a unit of work planned before its locks re-reads only
the keys of the buckets that changed).

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "match_key_change",
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entity", "bucket", name=op.f("pk_match_key_change")),
    )


def downgrade() -> None:
    op.drop_table("match_key_change")
