"""The key-change counters: per entity and key bucket, how often the live records
carrying its keys changed.

A unit of work of ingestion plans before it takes its locks and then checks that
the records carrying its keys are unchanged (mdm/services/ingest/locking.py). So
that it reads again only the keys that may have changed, every statement that
changes them counts, in its own transaction, one change in each bucket of the keys
concerned (mdm.services.ingest.locking.key_bucket, the buckets of the key locks):

- match keys written or deleted (Repository.replace_match_keys; an ingested
  record's version and golden record are written with its keys);
- a record deleted (Repository.mark_deleted);
- records moved to another golden record (MergeStore.move_all and move: merges,
  unmerges, re-matching, steward decisions).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable

from sqlalchemy import BigInteger, Integer, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.services.ingest.locking import key_bucket

# One row per (entity, bucket), made by its first change; the rows taken in bucket
# order, so two transactions counting changes never wait for each other in a circle.
_COUNT = text(
    "INSERT INTO match_key_change AS c (entity, bucket, changes) "
    "SELECT :entity, b, 1 FROM unnest(:buckets) AS b ORDER BY b "
    "ON CONFLICT (entity, bucket) DO UPDATE SET changes = c.changes + 1"
).bindparams(bindparam("entity", type_=Text), bindparam("buckets", type_=ARRAY(Integer)))

_READ = text(
    "SELECT bucket, changes FROM match_key_change WHERE entity = :entity AND bucket = ANY(:buckets)"
).bindparams(bindparam("entity", type_=Text), bindparam("buckets", type_=ARRAY(Integer)))

# The keys of some source records: those whose carriers a move changes.
_KEYS_OF = text("SELECT entity, key FROM match_key WHERE source_record_id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(BigInteger))
)


async def count_changes(conn: AsyncConnection, keys: Iterable[tuple[str, str]]) -> None:
    """Count a change in the bucket of each (entity, key), in the open transaction."""
    buckets: dict[str, set[int]] = defaultdict(set)
    for entity, key in keys:
        buckets[entity].add(key_bucket(key))
    for entity in sorted(buckets):
        await conn.execute(_COUNT, {"entity": entity, "buckets": sorted(buckets[entity])})


async def count_moves(conn: AsyncConnection, record_ids: Collection[int]) -> None:
    """Count a change in the buckets of the keys of these (moved) source records."""
    if record_ids:
        rows = await conn.execute(_KEYS_OF, {"ids": sorted(record_ids)})
        await count_changes(conn, ((entity, key) for entity, key in rows))


async def read_changes(
    conn: AsyncConnection, entity: str, buckets: Collection[int]
) -> dict[int, int]:
    """The changes counted in each of these buckets (a bucket never changed is absent)."""
    if not buckets:
        return {}
    rows = await conn.execute(_READ, {"entity": entity, "buckets": sorted(buckets)})
    return {bucket: changes for bucket, changes in rows}
