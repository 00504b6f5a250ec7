"""match_key carries its record's golden id: a candidate lookup reads the key index
alone.

Before, each key found was joined to its source_record row (a descent of the
primary key and a heap page of the widest table, at random) for the golden id and
deleted_at: at a million workers that was the largest read of a batch
(bench/batch_steps.py). Now the golden id sits in the key's index entry
(`INCLUDE`), and a key exists only for a live record (deleting a record deletes its
keys, as it always did), so the lookup needs no other table.

The golden id is written with the key. A record that moves to another golden record
(a merge, an unmerge, a relink) has its keys' copy updated by a row trigger on
source_record, in the same statement, so no code path can leave it stale.

The table is rebuilt rather than updated in place (sixteen million keys for a
million workers: an UPDATE would leave a second copy of every row behind). Keys of
deleted or missing records, which no lookup ever returned, are not carried over.

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FOLLOW_FUNCTION = """
CREATE OR REPLACE FUNCTION mdm_match_key_follow_golden() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE match_key SET golden_id = NEW.golden_id WHERE source_record_id = NEW.id;
    RETURN NULL;
END
$$
"""
_FOLLOW_TRIGGER = """
CREATE TRIGGER match_key_follow_golden AFTER UPDATE OF golden_id ON source_record
FOR EACH ROW WHEN (OLD.golden_id IS DISTINCT FROM NEW.golden_id)
EXECUTE FUNCTION mdm_match_key_follow_golden()
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE match_key_new AS
        SELECT m.entity, m.key, m.source_record_id, s.golden_id
        FROM match_key m JOIN source_record s ON s.id = m.source_record_id
        WHERE s.deleted_at IS NULL
        """
    )
    op.execute("DROP TABLE match_key")
    op.execute("ALTER TABLE match_key_new RENAME TO match_key")
    op.execute("ALTER TABLE match_key ALTER COLUMN golden_id SET NOT NULL")
    op.execute(
        "ALTER TABLE match_key ADD CONSTRAINT pk_match_key"
        " PRIMARY KEY (entity, key, source_record_id) INCLUDE (golden_id)"
    )
    op.create_index("ix_match_key_source_record_id", "match_key", ["source_record_id"])
    op.execute(_FOLLOW_FUNCTION)
    op.execute(_FOLLOW_TRIGGER)
    op.execute("ANALYZE match_key")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS match_key_follow_golden ON source_record")
    op.execute("DROP FUNCTION IF EXISTS mdm_match_key_follow_golden()")
    op.execute("ALTER TABLE match_key DROP CONSTRAINT pk_match_key")
    op.drop_column("match_key", "golden_id")
    op.execute(
        "ALTER TABLE match_key ADD CONSTRAINT pk_match_key"
        " PRIMARY KEY (entity, key, source_record_id)"
    )
    op.execute("ANALYZE match_key")
