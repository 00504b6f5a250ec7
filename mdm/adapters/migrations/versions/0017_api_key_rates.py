"""api_key.read_rate / write_rate: a key's own request rates (requests per second),
overriding the hub's defaults for that key; NULL keeps the default.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_key", sa.Column("read_rate", sa.Float(), nullable=True))
    op.add_column("api_key", sa.Column("write_rate", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("api_key", "write_rate")
    op.drop_column("api_key", "read_rate")
