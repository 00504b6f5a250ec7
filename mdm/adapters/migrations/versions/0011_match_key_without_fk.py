"""match_key loses its foreign key to source_record.

Every blocking key row (about 17 a worker) paid a foreign-key check against
source_record on insert: over a third of the time PostgreSQL spent writing a bulk
load's keys. Source records are never deleted (a deleted record keeps its row
with deleted_at, and its keys are removed explicitly, mdm.adapters.repository
mark_deleted), so the ON DELETE CASCADE had nothing to do; the keys of a record
are written in the same transaction as the record itself.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(
        "fk_match_key_source_record_id_source_record", "match_key", type_="foreignkey"
    )


def downgrade() -> None:
    op.create_foreign_key(
        "fk_match_key_source_record_id_source_record",
        "match_key",
        "source_record",
        ["source_record_id"],
        ["id"],
        ondelete="CASCADE",
    )
