"""Cache invalidation for the ID lookup: committed changes NOTIFY every hub process.

Statement-level triggers (transition tables, so a 1,000-record batch costs one
call, not 1,000) on source_record and golden_record name the golden ids whose
cross-reference view a statement changed; api_key changes name no id, they
clear every process's key cache. Each id list goes two ways:

- `pg_notify('mdm_lookup', 'x <ids>')` is delivered at commit to every hub
  process listening (mdm/adapters/lookup_cache.py), in chunks under
  PostgreSQL's 8000-byte payload limit; past 4,096 ids one `x *` (flush all);
- the transaction-local setting `mdm.lookup_touched` collects the same ids, so
  the process that made the change evicts them itself right after its commit
  (read-your-writes without waiting for the notification).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTIONS = """
CREATE OR REPLACE FUNCTION mdm_lookup_touch(ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    chunk text := '';
    one text;
    seen text;
BEGIN
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    seen := current_setting('mdm.lookup_touched', true);
    IF cardinality(ids) > 4096 THEN
        PERFORM pg_notify('mdm_lookup', 'x *');
        PERFORM set_config('mdm.lookup_touched', '*', true);
        RETURN;
    END IF;
    FOREACH one IN ARRAY ids LOOP
        IF octet_length(chunk) + octet_length(one) > 7900 THEN
            PERFORM pg_notify('mdm_lookup', 'x' || chunk);
            chunk := '';
        END IF;
        chunk := chunk || ' ' || one;
    END LOOP;
    PERFORM pg_notify('mdm_lookup', 'x' || chunk);
    IF seen IS NULL OR seen = '' THEN
        seen := array_to_string(ids, ' ');
    ELSIF seen <> '*' THEN
        seen := seen || ' ' || array_to_string(ids, ' ');
    END IF;
    IF octet_length(seen) > 262144 THEN
        seen := '*';
    END IF;
    PERFORM set_config('mdm.lookup_touched', seen, true);
END
$$;

-- What a lookup answers: the record's golden id, that golden record's status,
-- and every live source record (source, source_id, received_at) linked to it.
CREATE OR REPLACE FUNCTION mdm_lookup_source_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mdm_lookup_touch(ARRAY(SELECT DISTINCT golden_id FROM new_rows));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION mdm_lookup_source_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mdm_lookup_touch(ARRAY(
        SELECT o.golden_id FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.golden_id, o.deleted_at, o.received_at, o.entity, o.source, o.source_id)
              IS DISTINCT FROM
              (n.golden_id, n.deleted_at, n.received_at, n.entity, n.source, n.source_id)
        UNION
        SELECT n.golden_id FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.golden_id, o.deleted_at, o.received_at, o.entity, o.source, o.source_id)
              IS DISTINCT FROM
              (n.golden_id, n.deleted_at, n.received_at, n.entity, n.source, n.source_id)
    ));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION mdm_lookup_source_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mdm_lookup_touch(ARRAY(SELECT DISTINCT golden_id FROM old_rows));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION mdm_lookup_golden_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Only the status is in the view: a new version alone changes no lookup.
    PERFORM mdm_lookup_touch(ARRAY(
        SELECT o.golden_id FROM old_rows o JOIN new_rows n ON n.golden_id = o.golden_id
        WHERE o.status IS DISTINCT FROM n.status
        UNION
        SELECT o.golden_id FROM old_rows o WHERE NOT EXISTS
            (SELECT 1 FROM new_rows n WHERE n.golden_id = o.golden_id)
    ));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION mdm_lookup_golden_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mdm_lookup_touch(ARRAY(SELECT golden_id FROM old_rows));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION mdm_lookup_flush() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mdm_lookup', 'x *');
    PERFORM set_config('mdm.lookup_touched', '*', true);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION mdm_lookup_keys_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mdm_lookup', 'k');
    RETURN NULL;
END
$$;
"""

_TRIGGERS = """
CREATE TRIGGER mdm_lookup_source_inserted AFTER INSERT ON source_record
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_source_inserted();
CREATE TRIGGER mdm_lookup_source_updated AFTER UPDATE ON source_record
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_source_updated();
CREATE TRIGGER mdm_lookup_source_deleted AFTER DELETE ON source_record
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_source_deleted();
CREATE TRIGGER mdm_lookup_source_truncated AFTER TRUNCATE ON source_record
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_flush();
CREATE TRIGGER mdm_lookup_golden_updated AFTER UPDATE ON golden_record
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_golden_updated();
CREATE TRIGGER mdm_lookup_golden_deleted AFTER DELETE ON golden_record
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_golden_deleted();
CREATE TRIGGER mdm_lookup_golden_truncated AFTER TRUNCATE ON golden_record
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_flush();
CREATE TRIGGER mdm_lookup_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_key
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_keys_changed();
CREATE TRIGGER mdm_lookup_keys_truncated AFTER TRUNCATE ON api_key
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_lookup_keys_changed();
"""

_DROP = """
DROP TRIGGER IF EXISTS mdm_lookup_keys_truncated ON api_key;
DROP TRIGGER IF EXISTS mdm_lookup_keys_changed ON api_key;
DROP TRIGGER IF EXISTS mdm_lookup_golden_truncated ON golden_record;
DROP TRIGGER IF EXISTS mdm_lookup_golden_deleted ON golden_record;
DROP TRIGGER IF EXISTS mdm_lookup_golden_updated ON golden_record;
DROP TRIGGER IF EXISTS mdm_lookup_source_truncated ON source_record;
DROP TRIGGER IF EXISTS mdm_lookup_source_deleted ON source_record;
DROP TRIGGER IF EXISTS mdm_lookup_source_updated ON source_record;
DROP TRIGGER IF EXISTS mdm_lookup_source_inserted ON source_record;
DROP FUNCTION IF EXISTS mdm_lookup_keys_changed();
DROP FUNCTION IF EXISTS mdm_lookup_flush();
DROP FUNCTION IF EXISTS mdm_lookup_golden_deleted();
DROP FUNCTION IF EXISTS mdm_lookup_golden_updated();
DROP FUNCTION IF EXISTS mdm_lookup_source_deleted();
DROP FUNCTION IF EXISTS mdm_lookup_source_updated();
DROP FUNCTION IF EXISTS mdm_lookup_source_inserted();
DROP FUNCTION IF EXISTS mdm_lookup_touch(text[]);
"""


def _statements(script: str) -> list[str]:
    # Function bodies hold semicolons: split functions on their CREATE, the rest on ';'.
    if "$$" in script:
        parts = script.split("CREATE OR REPLACE FUNCTION")
        return ["CREATE OR REPLACE FUNCTION" + p for p in parts[1:]]
    return [s.strip() for s in script.split(";") if s.strip()]


def upgrade() -> None:
    for statement in _statements(_FUNCTIONS) + _statements(_TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(_DROP):
        op.execute(statement)
