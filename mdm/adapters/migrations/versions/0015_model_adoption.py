"""match_model.adopted and match_model.adoption: the check a fitted model passed or failed.

A fitted model is stored whether or not it is adopted; the version in force is
the newest adopted one. `adoption` holds what the check compared (links, review
and apart pairs of a sample under both models, convergence, prior) and its
decision; NULL for the packaged model and for versions stored before the check.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "match_model",
        sa.Column("adopted", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.add_column("match_model", sa.Column("adoption", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM match_model WHERE NOT adopted")
    op.drop_column("match_model", "adoption")
    op.drop_column("match_model", "adopted")
