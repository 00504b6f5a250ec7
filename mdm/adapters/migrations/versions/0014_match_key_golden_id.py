"""match_key carries its source record's golden id, kept equal by a trigger.

A candidate lookup asks, for each blocking key, which golden records carry it.
Until now each key found cost two index probes: match_key's primary key, then
source_record's (for the record's golden id, and whether it is deleted). With
the golden id in match_key, held in its primary key's index (INCLUDE), the
lookup is an index-only scan of one index. Measured on a million workers (the
eighth session, docs/benchmarks.md): a 1,000-record batch's candidate read,
12,800 keys and 29,000 owners, went from 340-620 ms to 100-150 ms.

The golden id is written with the keys (Repository.replace_match_keys), and a
statement-level trigger on source_record follows every change of a record's
golden id (merges, unmerges, splits, relinks) to its keys, whichever code path
makes it. A deleted record has no keys (Repository.mark_deleted deletes them),
so the lookup need not ask source_record whether it is deleted either.

The table is rebuilt, not updated in place: an UPDATE of every row would write
each one twice over and update both indexes; the rebuild copies the keys of live
records with their golden ids (about 2 minutes for 16.4 million keys on the
benchmark machine). Keys of no live record (there should be none) are dropped.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FOLLOW = """
CREATE OR REPLACE FUNCTION mdm_match_key_follow_golden() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE match_key m SET golden_id = n.golden_id
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE m.source_record_id = n.id AND n.golden_id IS DISTINCT FROM o.golden_id;
    RETURN NULL;
END
$$
"""

_TRIGGER = """
CREATE TRIGGER mdm_match_key_follow_golden AFTER UPDATE ON source_record
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_match_key_follow_golden()
"""


def upgrade() -> None:
    op.execute("ALTER TABLE match_key RENAME TO match_key_0013")
    op.execute("ALTER INDEX pk_match_key RENAME TO pk_match_key_0013")
    op.execute("ALTER INDEX ix_match_key_source_record_id RENAME TO ix_match_key_0013")
    op.execute(
        """
        CREATE TABLE match_key (
            entity text NOT NULL,
            key text COLLATE "C" NOT NULL,
            source_record_id bigint NOT NULL,
            golden_id text NOT NULL
        )
        """
    )
    op.execute(
        """
        INSERT INTO match_key (entity, key, source_record_id, golden_id)
        SELECT m.entity, m.key, m.source_record_id, s.golden_id
        FROM match_key_0013 m JOIN source_record s ON s.id = m.source_record_id
        WHERE s.deleted_at IS NULL
        """
    )
    op.execute("DROP TABLE match_key_0013")
    op.execute(
        "ALTER TABLE match_key ADD CONSTRAINT pk_match_key"
        " PRIMARY KEY (entity, key, source_record_id) INCLUDE (golden_id)"
    )
    op.execute("CREATE INDEX ix_match_key_source_record_id ON match_key (source_record_id)")
    op.execute(_FOLLOW)
    op.execute(_TRIGGER)
    op.execute("ANALYZE match_key")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS mdm_match_key_follow_golden ON source_record")
    op.execute("DROP FUNCTION IF EXISTS mdm_match_key_follow_golden()")
    op.execute("ALTER TABLE match_key DROP CONSTRAINT pk_match_key")
    op.execute("ALTER TABLE match_key DROP COLUMN golden_id")
    op.execute(
        "ALTER TABLE match_key ADD CONSTRAINT pk_match_key"
        " PRIMARY KEY (entity, key, source_record_id)"
    )
    op.execute("ANALYZE match_key")
