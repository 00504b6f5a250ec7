"""match_key.key compares bytes (COLLATE "C") instead of by the locale's rules.

Blocking keys are machine-made (`wdf:1968-03-31|b`, `email:...`): nothing sorts
them for a person, and equality is all that is asked of them. Under the
database's default collation (C.UTF-8 on Debian) every comparison in the primary
key's b-tree went through strcoll; with "C" it is memcmp. The index is the
largest a load writes (16.4 million keys for a million workers), yet the bulk
load measured no faster (within the noise, docs/benchmarks.md); the reason to
keep it is that a C library upgrade changing the locale's order can no longer
corrupt this index. Lookups are unchanged: a key given as a parameter takes the
column's collation, so the index still serves them.

This rebuilds match_key's primary key once, and refreshes its statistics.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("match_key", "key", type_=sa.Text(collation="C"), existing_nullable=False)
    # Changing a column's type drops its statistics. Without them the planner
    # expects 800,000 rows from 3,000 keys looked up among a million workers' keys
    # and joins them to source_record by reading all of it (a load of 100,000
    # workers into that hub took 116 s instead of 66 s after this migration).
    op.execute("ANALYZE match_key")


def downgrade() -> None:
    op.alter_column("match_key", "key", type_=sa.Text(), existing_nullable=False)
    op.execute("ANALYZE match_key")  # (dropped again by the type change)
