"""The prepared matching features of stored source records, kept per process.

A unit of work that matches reads the live records of its candidate golden records
with their features: some 20,000 records a batch of 1,000 at a million stored,
about 14 MB of JSONB that PostgreSQL renders and the driver decodes each time.
Features change only when their record's row does, so this cache keeps each
record's features (as the JSON text PostgreSQL gave, about 500 bytes) with the
`xmin` of the row version they were read from: the transaction that wrote that
version. `MatchStore.members` (mdm/adapters/matching.py) then reads only each
member's id, golden id and `xmin`, and the features of the members whose row
version this process has not seen.

Nothing needs invalidating: any change to a row (an update of its features, a
move to another golden record, a deletion, by any process) writes a new row
version with a new `xmin`, and an entry whose `xmin` differs is not used. Only
committed row versions are stored: a transaction writes all its versions of a row
under its one `xmin`, so features read by a transaction that has written are not
kept (it may write the row again; its writes may roll back). Entries
are per database (a database copied from a template holds the same ids and
`xmin`s as its template), hence one cache per engine, built by the composition
root. Bounded by a budget in bytes (MDM_FEATURE_CACHE_MB), oldest stored first out;
warmed at start with the store's records until the budget is full, in pages, so
that a hub restarted on a large store does not read each candidate's features
once more.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable
from typing import Any

import msgspec
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mdm.adapters.repository import fetch_rows

log = logging.getLogger("mdm.features")

#: Bytes an entry takes besides its JSON text: the dict slot, the int key and the
#: bytes object's header (measured with tracemalloc, CPython 3.11).
ENTRY_OVERHEAD = 120

#: An entry is one bytes object: the row version's xmin in its first XMIN bytes, then
#: the JSON text. No tuple per entry: a dict of ints and bytes holds no container the
#: cyclic garbage collector would walk on each of its full passes.
XMIN = 4

#: The features of the records `$1` as PostgreSQL renders them, with their row
#: version. A record deleted or changed meanwhile is answered as it is now. The last
#: column: whether the reading transaction has written nothing (then every version
#: it sees is committed, and may be kept).
FEATURES_SQL = """
SELECT id, xmin, match_features::text, pg_current_xact_id_if_assigned() IS NULL
FROM source_record
WHERE id = ANY($1::bigint[]) AND jsonb_typeof(match_features) = 'object'
"""

#: One page of the warming: the next `$2` live records with features after id `$1`.
WARM_SQL = """
SELECT id, xmin, match_features::text
FROM source_record
WHERE id > $1 AND deleted_at IS NULL AND jsonb_typeof(match_features) = 'object'
ORDER BY id
LIMIT $2
"""
WARM_PAGE = 5000

_RESULTS = Counter(
    "mdm_feature_cache_total",
    "Candidate members whose matching features were found in the feature cache (hit) "
    "or read from the database (miss)",
    ["result"],
)
_HIT = _RESULTS.labels("hit")
_MISS = _RESULTS.labels("miss")
_HELD_BYTES = Gauge(
    "mdm_feature_cache_bytes", "Bytes the feature cache's entries are accounted for now"
)
_WARMED = Gauge(
    "mdm_feature_cache_warmed",
    "1 once the feature cache's warming at start has finished (or none is to run), else 0",
)
_WARM_SECONDS = Gauge(
    "mdm_feature_cache_warm_seconds",
    "How long the feature cache's last finished warming took (0 until one finished)",
)

_decode = msgspec.json.Decoder().decode


class FeatureCache:
    """Record id -> its row version's xmin and features as JSON text, within `max_bytes`."""

    def __init__(self, max_bytes: int, warm: bool = True) -> None:
        self.max_bytes = max(0, max_bytes)
        self.warm = warm
        self.bytes = 0
        self._entries: dict[int, bytes] = {}
        self.warmed = asyncio.Event()  # set when a warming has finished (or none runs)
        self._warming: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def off(self) -> bool:
        return self.max_bytes == 0

    def get(self, record_id: int, xmin: int) -> dict[str, Any] | None:
        """The features of the row version `xmin` of record `record_id`, if held."""
        found = self._entries.get(record_id)
        if found is None or int.from_bytes(found[:XMIN], "little") != xmin:
            return None
        return _decode(memoryview(found)[XMIN:])

    def put(self, record_id: int, xmin: int, features: bytes) -> None:
        if self.off:
            return
        entry = xmin.to_bytes(XMIN, "little") + features
        size = len(entry) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        old = self._entries.pop(record_id, None)
        if old is not None:
            self.bytes -= len(old) + ENTRY_OVERHEAD
        entries = self._entries
        while entries and self.bytes + size > self.max_bytes:
            # the oldest stored first (a dict keeps insertion order)
            self.bytes -= len(entries.pop(next(iter(entries)))) + ENTRY_OVERHEAD
        entries[record_id] = entry
        self.bytes += size

    def room_for(self, features: bytes) -> bool:
        return self.bytes + XMIN + len(features) + ENTRY_OVERHEAD <= self.max_bytes

    def count(self, hits: int, misses: int) -> None:
        _HIT.inc(hits)
        _MISS.inc(misses)

    async def read(
        self, conn: AsyncConnection, record_ids: Iterable[int]
    ) -> dict[int, dict[str, Any]]:
        """The features of `record_ids` read from the database on `conn` and stored
        here; a record without features is left out."""
        out: dict[int, dict[str, Any]] = {}
        ids = sorted(set(record_ids))
        if not ids:
            return out
        for record_id, xmin, text, committed in await fetch_rows(conn, FEATURES_SQL, ids):
            raw = text.encode()
            if committed:
                self.put(record_id, int(xmin), raw)
            out[record_id] = _decode(raw)
        return out

    # -- warming -------------------------------------------------------------------

    def start(self, engine: AsyncEngine) -> None:
        """Warm in the background from `engine`'s database (when warming is on)."""
        self._expose()
        if self.off or not self.warm:
            self.warmed.set()
            _WARMED.set(1)
            return
        _WARMED.set(0)
        self._warming = asyncio.create_task(self._warm(engine), name="mdm-feature-warming")

    async def stop(self) -> None:
        warming, self._warming = self._warming, None
        if warming is not None:
            warming.cancel()
            try:
                await warming
            except asyncio.CancelledError:
                if not warming.cancelled():
                    raise  # our own caller's cancellation, not the warming's

    async def fill(self, engine: AsyncEngine, page: int = WARM_PAGE) -> int:
        """Read live records' features in id order until the next one does not fit."""
        last, stored = 0, 0
        while True:
            async with engine.connect() as conn:
                rows = await fetch_rows(conn, WARM_SQL, last, page)
            if not rows:
                return stored
            for record_id, xmin, text in rows:
                raw = text.encode()
                if not self.room_for(raw):
                    return stored
                self.put(record_id, int(xmin), raw)
                stored += 1
            last = rows[-1][0]

    async def _warm(self, engine: AsyncEngine) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            stored = await self.fill(engine)
        except Exception as exc:  # matching goes on, reading what is not held
            log.warning("feature cache warming stopped: %s", exc)
            return
        finally:
            self.warmed.set()
            _WARMED.set(1)
        took = loop.time() - began
        _WARM_SECONDS.set(max(took, 1e-6))
        log.info(
            "feature cache warmed: %s records, %.0f of %.0f MiB, in %.1f s",
            f"{stored:,}",
            self.bytes / 2**20,
            self.max_bytes / 2**20,
            took,
        )

    def _expose(self) -> None:
        held = weakref.ref(self)  # a stopped hub's cache is not kept alive by the gauge

        def used() -> float:
            cache = held()
            return cache.bytes if cache is not None else 0.0

        _HELD_BYTES.set_function(used)
