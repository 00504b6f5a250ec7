"""The locks of a unit of work of ingestion.

Two units of work that share a match key must not both decide without seeing the
other (ARCHITECTURE.md invariant 4), in one process or several: each takes
PostgreSQL advisory transaction locks on its source records, on the buckets of
its match keys and on the records it references, in one sorted acquisition.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

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
