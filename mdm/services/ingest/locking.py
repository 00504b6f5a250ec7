"""The locks of a unit of work of ingestion, and the re-check of a plan made before them.

Two units of work that share a match key must not both decide without seeing the
other (ARCHITECTURE.md invariant 4), in one process or several: each takes
PostgreSQL advisory transaction locks on its source records, on the buckets of
its match keys and on the records it references, in one sorted acquisition.

A unit of work reads and matches *before* it takes them (`plan_records(lock=False)`,
then `ingest_records`), so that the locks are held only while it writes, and
then checks, holding them, that what the plan depended on is unchanged:

- its source records as stored (version, content, golden record): read again;
- the live records carrying each of its keys (`KeyCarriers`: their ids, golden
  ids and versions). Every change to them bumps, in its own transaction, the
  counter of each bucket of the keys concerned (mdm/adapters/key_changes.py). The
  plan read its buckets' counters before its reads; they are read again under the
  locks, and only the keys of a bucket whose counter moved are read again.

If anything differs the unit of work plans again under its locks: the fully locked
path, deciding on what is stored when the locks are held. A writer that shares a
key bucket holds its lock until it commits, so it either committed before the
counters are read again (and moved them) or waits for this unit of work.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mdm.domain.ports import UnitOfWork
from mdm.domain.stored import KeyCarriers, StoredSourceRecord
from mdm.services.matcher import GENERIC_KEY_CAP

#: Match keys are locked by bucket: a batch of a thousand records with a dozen
#: keys each takes at most this many advisory locks (PostgreSQL's shared lock
#: table holds max_locks_per_transaction x max_connections, 6,400 by default),
#: while two single records collide on one only rarely (and then merely wait).
KEY_LOCK_BUCKETS = 1024


def key_bucket(key: str) -> int:
    """The bucket of a match key: a CRC-32 of the key (stable across processes, and
    cheap: a batch has some twenty thousand keys)."""
    return zlib.crc32(key.encode()) % KEY_LOCK_BUCKETS


def key_locks(entity: str, keys: Sequence[str]) -> list[str]:
    """Lock names that two units of work sharing any match key have in common."""
    return [f"mk:{entity}:{b}" for b in sorted({key_bucket(key) for key in keys})]


@dataclass(frozen=True, slots=True)
class PlanReads:
    """What a plan made before its locks read: the key-change counters of its buckets
    (read first), its source records as stored and the records carrying its keys."""

    changes: Mapping[int, int]  # each bucket of its keys -> changes counted
    source_ids: Sequence[str]
    stored: Mapping[str, StoredSourceRecord]
    carriers: KeyCarriers


async def plan_holds(uow: UnitOfWork, entity: str, source: str, reads: PlanReads) -> bool:
    """Whether what a plan read is still what is stored (the plan's locks held)."""
    now = await uow.matches.key_changes(entity, list(reads.changes))
    stored = await uow.records.source_records(entity, source, reads.source_ids)
    if stored != reads.stored:
        return False
    moved = {b for b, n in reads.changes.items() if now.get(b, 0) != n}
    if not moved:
        return True
    before = reads.carriers
    later = await uow.matches.key_carriers(
        entity,
        [k for k in before.strong if key_bucket(k) in moved],
        [k for k in [*before.blocking, *before.generic] if key_bucket(k) in moved],
        GENERIC_KEY_CAP,
    )
    return before.agree(later)
