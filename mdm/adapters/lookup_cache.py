"""The ID lookup's hot path: raw asyncpg reads, answer and API-key caches, invalidation.

A lookup by source id reads one prepared statement on a small asyncpg pool of
its own (no ORM, no SQLAlchemy pool) and keeps the *encoded answer* in an LRU
keyed by "entity/source/source_id" (the request path's tail, so a cached
answer is found before the path is split), indexed by the golden id it names.
The LRU is bounded by a budget in bytes (MDM_LOOKUP_CACHE_MB): each answer is
accounted for its key's and body's lengths plus a measured constant for the
Python objects and table slots around them (`answer_size`), so that the budget
is close to the memory the answers take.

Warming: once its invalidation listener is live, a process reads the stored
answers page by page (golden ids in order, a thousand a page) into the cache
until the next one would not fit the budget, in the background, so that after a
restart the lookups of a store the cache can hold are answered from memory from
the first request; it then logs (and exposes as gauges) what share of the
store's answers the cache holds. Each page is one statement whose answers go
through the same generation check as a lookup's, so a page overtaken by a
change of one of its golden ids does not store that answer.

Invalidation, correct with several hub processes on one database: triggers
(migration 0012) NOTIFY `mdm_lookup` at commit with the golden ids whose
cross-reference view a transaction changed, and `k` when API keys change.
Every process LISTENs on a dedicated connection and evicts. While that
connection is down the caches are empty and bypassed (a notification could be
missed), and it reconnects. A read that raced an invalidation (read from the
database, the eviction arrives, then the stale answer would be stored) is not
stored: each eviction bumps a generation, and a put whose read began before an
eviction naming its golden id is dropped. The process that commits a change
evicts the ids itself right after its commit (`evict_committed`), so it reads
its own writes without waiting for the notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import asyncpg
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import make_url

log = logging.getLogger("mdm.lookup")

CHANNEL = "mdm_lookup"
FLUSH = "*"

_CACHE_RESULTS = Counter(
    "mdm_lookup_cache_total",
    "ID lookup cache reads by cache (xref answers, api keys) and result (hit, miss)",
    ["cache", "result"],
)
_XREF_HIT = _CACHE_RESULTS.labels("xref", "hit")
_XREF_MISS = _CACHE_RESULTS.labels("xref", "miss")
_KEY_HIT = _CACHE_RESULTS.labels("api_key", "hit")
_KEY_MISS = _CACHE_RESULTS.labels("api_key", "miss")
_EVICTIONS = Counter(
    "mdm_lookup_cache_evictions_total",
    "Invalidations applied to the ID lookup cache, by origin (notify, local, flush)",
    ["origin"],
)

_WARMED = Gauge(
    "mdm_lookup_cache_warmed_entries",
    "xref answers the ID lookup cache read in by its last finished warming",
)
_WARMED_STORE = Gauge(
    "mdm_lookup_cache_warmed_store_answers",
    "xref answers the store held (its live source records) when the last warming finished",
)
_WARMED_SHARE = Gauge(
    "mdm_lookup_cache_warmed_share",
    "Share of the store's xref answers the ID lookup cache held when its last warming "
    "finished (1: every lookup of a stored record is answered from memory)",
)
_WARMED_BYTES = Gauge(
    "mdm_lookup_cache_warmed_bytes",
    "Bytes the ID lookup cache's answers were accounted for when its last warming finished",
)
_HELD_BYTES = Gauge(
    "mdm_lookup_cache_bytes",
    "Bytes the xref answers held in the ID lookup cache are accounted for now",
)
_BUDGET_BYTES = Gauge(
    "mdm_lookup_cache_budget_bytes",
    "The ID lookup cache's budget for xref answers in bytes (MDM_LOOKUP_CACHE_MB)",
)
_WARM_SECONDS = Gauge(
    "mdm_lookup_cache_warm_seconds",
    "How long the ID lookup cache's last finished warming took (0 until one finished)",
)

#: A source record's golden id, that golden record's status and every live
#: source record linked to it: all an xref answer is made of, in one statement.
XREF_QUERY = """
SELECT g.golden_id, g.status, x.source, x.source_id, x.received_at
FROM source_record s
JOIN golden_record g ON g.golden_id = s.golden_id
JOIN source_record x ON x.golden_id = s.golden_id AND x.deleted_at IS NULL
WHERE s.entity = $1 AND s.source = $2 AND s.source_id = $3 AND s.deleted_at IS NULL
ORDER BY x.source, x.source_id
"""

#: One page of the warming: the next `$2` golden records after `$1` (a merged-away
#: one has no live source record: one row with nulls) and the last id of the page.
WARM_QUERY = """
WITH page AS (
    SELECT golden_id, entity, status FROM golden_record
    WHERE golden_id > $1 ORDER BY golden_id LIMIT $2
)
SELECT p.golden_id, p.entity, p.status, x.source, x.source_id, x.received_at,
       (SELECT max(golden_id) FROM page) AS last
FROM page p
LEFT JOIN source_record x ON x.golden_id = p.golden_id AND x.deleted_at IS NULL
ORDER BY p.golden_id, x.source, x.source_id
"""
WARM_PAGE = 1000

#: The answers the store holds, when a warming stopped before its end.
COUNT_QUERY = "SELECT count(*) FROM source_record WHERE deleted_at IS NULL"


class Filled(NamedTuple):
    """What a warming (`Lookups.fill`) did."""

    stored: int  # answers put in the cache
    read: int  # answers it tried to store: all of the store's when complete
    complete: bool  # read to the store's end (else the budget was reached, or it went dark)


_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.InterfaceError,  # the connection is closed
    # A connection killed while a query was being sent can be left mid-operation.
    asyncpg.exceptions._base.InternalClientError,
)

K = TypeVar("K")
V = TypeVar("V")


class GenerationalLru(Generic[K, V]):
    """A bounded LRU whose entries are tagged with golden ids, evicted by tag.

    Bounded in entries (`max_entries`, None: no bound) and, given `weigh` (the
    bytes an entry is accounted for), in bytes (`max_bytes`, None: no bound);
    the least recently used entries go until both hold. 0 for either: nothing is
    ever stored.

    `put` takes the generation read before the value was loaded and refuses the
    value if an eviction naming its tag (or a flush) happened since.
    """

    def __init__(
        self,
        max_entries: int | None,
        remembered: int = 1024,
        *,
        max_bytes: int | None = None,
        weigh: Callable[[K, V], int] | None = None,
    ) -> None:
        self.max_entries = None if max_entries is None else max(0, max_entries)
        self.max_bytes = None if max_bytes is None else max(0, max_bytes)
        self._weigh: Callable[[K, V], int] = weigh or _weightless
        self.bytes = 0  # what the entries held now are accounted for (by `weigh`)
        self.generation = 0
        self.live = False  # only while invalidations are being received
        self._entries: OrderedDict[K, tuple[str, V]] = OrderedDict()
        # tag -> its one key, or a set of its keys when it has several (most golden
        # records are asked for by one source id: no set of 200 bytes for each)
        self._by_tag: dict[str, Any] = {}
        # (generation, tags evicted at it, or None for a flush), newest last.
        self._recent: deque[tuple[int, frozenset[str] | None]] = deque(maxlen=remembered)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[1]

    @property
    def off(self) -> bool:
        """Sized to hold nothing (caching turned off)."""
        return self.max_entries == 0 or self.max_bytes == 0

    def room_for(self, key: K, value: V) -> bool:
        """Whether storing `value` as a new entry would evict nothing to stay in bounds."""
        return (self.max_entries is None or len(self._entries) < self.max_entries) and (
            self.max_bytes is None or self.bytes + self._weigh(key, value) <= self.max_bytes
        )

    def put(self, key: K, tag: str, value: V, generation: int) -> bool:
        """Store `value` unless it may be stale or cannot fit at all; True when stored."""
        if not self.live or self.off or not self._still_valid(tag, generation):
            return False
        self._remove(key)
        size = self._weigh(key, value)
        if self.max_bytes is not None and size > self.max_bytes:
            return False  # larger than the whole budget: it would only empty the cache
        self._entries[key] = (tag, value)
        self.bytes += size
        keys = self._by_tag.get(tag)
        if keys is None:
            self._by_tag[tag] = key
        elif isinstance(keys, set):
            keys.add(key)
        else:
            self._by_tag[tag] = {keys, key}
        while (self.max_entries is not None and len(self._entries) > self.max_entries) or (
            self.max_bytes is not None and self.bytes > self.max_bytes
        ):
            self._remove(next(iter(self._entries)))
        return True

    def evict(self, tags: Iterable[str]) -> None:
        evicted = frozenset(tags)
        self.generation += 1
        self._recent.append((self.generation, evicted))
        for tag in evicted:
            keys = self._by_tag.pop(tag, None)
            if isinstance(keys, set):
                for key in keys:
                    self._pop(key)
            elif keys is not None:
                self._pop(keys)

    def clear(self) -> None:
        self.generation += 1
        self._recent.append((self.generation, None))
        self._entries.clear()
        self._by_tag.clear()
        self.bytes = 0

    def _still_valid(self, tag: str, generation: int) -> bool:
        if generation == self.generation:
            return True
        if not self._recent or self._recent[0][0] > generation + 1:
            return False  # evictions since then were forgotten: assume the worst
        for at, tags in reversed(self._recent):
            if at <= generation:
                break
            if tags is None or tag in tags:
                return False
        return True

    def _pop(self, key: K) -> tuple[str, V] | None:
        """Drop `key`'s entry and its bytes (its tag's index is the caller's)."""
        found = self._entries.pop(key, None)
        if found is not None:
            self.bytes -= self._weigh(key, found[1])
        return found

    def _remove(self, key: K) -> None:
        found = self._pop(key)
        if found is None:
            return
        tag = found[0]
        keys = self._by_tag.get(tag)
        if isinstance(keys, set):
            keys.discard(key)
            if len(keys) == 1:
                self._by_tag[tag] = keys.pop()
        elif keys == key:
            del self._by_tag[tag]


def _weightless(key: Any, value: Any) -> int:
    return 0


#: "entity/source/source_id": the tail of the lookup's path (neither an entity nor
#: a source holds a slash, so it names one record)
XrefKey = str
#: Builds an answer's bytes from XREF_QUERY's rows (the API layer knows the view).
Render = Callable[[Sequence[Any]], bytes]
#: The same for any entity: (entity, rows) -> bytes; what warming renders with.
RenderAny = Callable[[str, Sequence[Any]], bytes]


def xref_key(entity: str, source: str, source_id: str) -> XrefKey:
    return f"{entity}/{source}/{source_id}"


#: Bytes an answer holds in the cache beyond its key's and encoded answer's lengths:
#: the two objects' headers, the golden id (one for the answers of one golden
#: record), the entry's tuple, the LRU's slot and the golden-id index's share, as
#: the process's resident set grows with them (bench/lookup_cache_memory.py;
#: docs/benchmarks.md). The dicts' share shrinks as they fill up to their next
#: doubling, so this is rounded up from what a cache of a million answers costs.
ANSWER_OVERHEAD = 400

MIB = 1024 * 1024


def answer_size(key: XrefKey, body: bytes) -> int:
    """The bytes a cached answer is accounted for against the budget.

    Lengths and a constant, no introspection: exact for ASCII keys; an answer
    shared by several keys of a golden record is counted with each of them.
    """
    return len(key) + len(body) + ANSWER_OVERHEAD


def answer_cache(max_bytes: int | None, max_entries: int | None) -> GenerationalLru[XrefKey, bytes]:
    """The LRU of encoded xref answers, bounded by its byte budget (and entries if given)."""
    return GenerationalLru(max_entries, max_bytes=max_bytes, weigh=answer_size)


def _size(n: float) -> str:
    for unit, scale in (("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:,.0f} {unit}"
    return f"{n:,.0f} bytes"


def _budget_text(cache: GenerationalLru[XrefKey, bytes]) -> str:
    """`412 MiB of its 768 MiB budget`, and the cap on answers when there is one."""
    if cache.max_bytes is None:
        text = f"{_size(cache.bytes)}, no byte budget"
    else:
        text = f"{_size(cache.bytes)} of its {_size(cache.max_bytes)} budget"
    if cache.max_entries is not None:
        text += f", at most {cache.max_entries:,} answers"
    return text


_KEYS_TAG = "api_key"


async def _no_reset(conn: asyncpg.Connection) -> None:
    # The pool's connections only run single autocommit reads: nothing to reset,
    # and asyncpg's default reset is one more round trip per lookup.
    return None


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy `postgresql+asyncpg://` URL as a plain libpq one for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Lookups:
    """The lookup pool, the caches and their invalidation listener, one per hub process."""

    def __init__(
        self,
        database_url: str,
        max_bytes: int | None = None,  # the answers' budget (mdm/settings.py LookupSettings)
        max_entries: int | None = None,
        max_keys: int = 10_000,
        pool_size: int = 4,
        health_interval: float = 5.0,
        reconnect_delay: float = 0.5,
        warm: bool = True,
    ) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.warm = warm
        #: set by the API (mdm/api/golden.py render_xref): warming renders with it
        self.renderer: RenderAny | None = None
        self.warmed: asyncio.Event = asyncio.Event()  # set when a warming has finished
        self.answers = answer_cache(max_bytes, max_entries)
        self.keys: GenerationalLru[str, Any] = GenerationalLru(max_keys)
        self.pool_size = pool_size
        self.health_interval = health_interval
        self.reconnect_delay = reconnect_delay
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._listen_conn: asyncpg.Connection | None = None
        self._warming: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, wait: float = 5.0) -> None:
        self._expose()
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            reset=_no_reset,
            server_settings={"application_name": "mdm-lookup"},
        )
        self._listener = asyncio.create_task(self._listen_forever(), name="mdm-lookup-listener")
        # Serving starts with the cache live; if the listener cannot connect yet,
        # lookups still answer (uncached) and it keeps trying.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait)

    async def stop(self) -> None:
        warming = self._warming
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if warming is not None:
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warming
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def live(self) -> bool:
        return self.answers.live

    def _expose(self) -> None:
        """Bind the cache's size gauges to this process's cache (read at each scrape)."""
        held = weakref.ref(self.answers)  # a stopped hub's cache is not kept alive by them

        def used() -> float:
            cache = held()
            return cache.bytes if cache is not None else 0.0

        _HELD_BYTES.set_function(used)
        budget = self.answers.max_bytes
        _BUDGET_BYTES.set(float("inf") if budget is None else budget)

    # -- reads -------------------------------------------------------------------

    async def xref(self, entity: str, source: str, source_id: str, render: Render) -> bytes | None:
        """The encoded answer for a source id (None when no live record has it)."""
        key = xref_key(entity, source, source_id)
        body = self.answers.get(key)
        if body is not None:
            _XREF_HIT.inc()
            return body
        _XREF_MISS.inc()
        generation = self.answers.generation
        assert self._pool is not None, "Lookups.start() was not awaited"
        async with self._pool.acquire() as conn:
            try:
                rows = await conn.fetch(XREF_QUERY, entity, source, source_id)
            except _CONNECTION_LOST as exc:
                # Closed, so that the pool connects a new one for the next lookup; and
                # an OSError, so the API answers 503 as for the engine's lost
                # connections (mdm/api/problems.py).
                with contextlib.suppress(asyncpg.InterfaceError):  # already given back
                    conn.terminate()
                raise ConnectionError(f"the lookup connection was lost: {exc}") from exc
        if not rows:
            return None  # not cached: a record may arrive at any time
        body = render(rows)
        self.answers.put(key, rows[0]["golden_id"], body, generation)
        return body

    async def fill(self, page: int = WARM_PAGE) -> Filled:
        """Read the stored answers into the cache until the next one does not fit.

        Pages of `page` golden records in id order, each one statement on the lookup
        pool. Stops early when the cache goes dark.
        """
        assert self._pool is not None and self.renderer is not None
        render, answers = self.renderer, self.answers
        stored = read = 0
        last = ""
        while answers.live:
            generation = answers.generation
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(WARM_QUERY, last, page)
            if not rows:
                return Filled(stored, read, complete=True)
            last = rows[0]["last"]
            for golden_id, grouped in itertools.groupby(rows, key=lambda r: r["golden_id"]):
                members = list(grouped)
                entity = members[0]["entity"]
                if members[0]["source"] is None:
                    continue  # merged away or retired with no live record: no answer
                body = render(entity, members)
                for r in members:
                    key = xref_key(entity, r["source"], r["source_id"])
                    if not answers.room_for(key, body):
                        return Filled(stored, read, complete=False)
                    read += 1
                    stored += answers.put(key, golden_id, body, generation)
        return Filled(stored, read, complete=False)

    async def _warm(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            filled = await self.fill()
            took = loop.time() - began
            store = filled.read if filled.complete else await self._count_answers()
        except Exception as exc:  # lookups go on, uncached until asked for
            log.warning("lookup cache warming stopped: %s", exc)
            return
        answers = self.answers
        held = len(answers)
        share = min(1.0, held / store) if store else 1.0
        # rounded down: "100%" only when every answer is held
        percent = math.floor(1000 * share) / 10
        _WARMED.set(filled.stored)
        _WARMED_STORE.set(store)
        _WARMED_SHARE.set(share)
        _WARMED_BYTES.set(answers.bytes)
        _WARM_SECONDS.set(max(took, 1e-6))
        self.warmed.set()
        log.info(
            "lookup cache warmed: %s of %s answers (%g%%), %s, in %.1f s",
            f"{held:,}",
            f"{store:,}",
            percent,
            _budget_text(answers),
            took,
        )

    async def _count_answers(self) -> int:
        """The store's answers: its live source records (one answer each)."""
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            count: int = await conn.fetchval(COUNT_QUERY)
        return count

    def count_fast_hit(self) -> None:
        """An answer sent from both caches before routing (mdm/api/fast_lookup.py)."""
        _XREF_HIT.inc()
        _KEY_HIT.inc()

    def cached_key(self, digest: str) -> Any | None:
        found = self.keys.get(digest)
        (_KEY_HIT if found is not None else _KEY_MISS).inc()
        return found

    def key_generation(self) -> int:
        return self.keys.generation

    def remember_key(self, digest: str, identity: Any, generation: int) -> None:
        self.keys.put(digest, _KEYS_TAG, identity, generation)

    # -- invalidation ------------------------------------------------------------

    def evict_committed(self, touched: str | None) -> None:
        """Evict what a transaction of this process committed (mdm.lookup_touched)."""
        if touched:
            self._apply(touched, "local")

    def _apply(self, ids: str, origin: str) -> None:
        if ids.strip() == FLUSH:
            self.answers.clear()
            _EVICTIONS.labels("flush").inc()
            return
        self.answers.evict(ids.split())
        _EVICTIONS.labels(origin).inc()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        kind, ids = payload[:1], payload[1:]
        if kind == "k":
            self.keys.clear()
        elif kind == "x":
            self._apply(ids, "notify")

    def _go_dark(self) -> None:
        self._connected.clear()
        if self._warming is not None:
            self._warming.cancel()  # what it would store now could be stale
            self._warming = None
        for cache in (self.answers, self.keys):
            cache.live = False
            cache.clear()

    async def _listen_forever(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": "mdm-lookup-listen"}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                # Anything cached before LISTEN took effect may have missed its eviction.
                for cache in (self.answers, self.keys):
                    cache.clear()
                    cache.live = True
                self._listen_conn = conn
                self._connected.set()
                log.debug("lookup cache live: listening on %s", CHANNEL)
                if self.warm and self.renderer is not None and not self.answers.off:
                    self._warming = asyncio.create_task(self._warm(), name="mdm-lookup-warm")
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.health_interval)
                    if not lost.is_set():
                        # A silent network loss shows no termination: ask.
                        await conn.fetchval("SELECT 1", timeout=self.health_interval)
                raise ConnectionError("the listening connection was closed")
            except asyncio.CancelledError:
                self._go_dark()
                if conn is not None:
                    conn.terminate()
                raise
            except Exception as exc:  # any failure: dark, then retry
                self._go_dark()
                log.warning("lookup cache off until its LISTEN connection is back: %s", exc)
                if conn is not None:
                    conn.terminate()
                self._listen_conn = None
                await asyncio.sleep(self.reconnect_delay)
