"""The outbox relay: publishes committed outbox rows to NATS JetStream, in order per golden record.

One round: in one PostgreSQL transaction, lock a batch of publishable rows
(see publishers.outbox.claim), publish each with `Nats-Msg-Id` = event id,
wait for every PubAck, then mark the acknowledged rows published and commit.
A relay that dies anywhere in a round leaves its rows unpublished and their
locks released; the next round publishes them again and JetStream drops the
copies it already has (PubAck.duplicate), as long as that happens within the
stream's duplicate window.

Several relays (one per hub process, or `mdm relay` processes) may run at
once: a row is only claimable while no earlier version of its golden record
is unpublished, and claims skip rows another relay has locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from publishers import metrics, outbox
from publishers.connection import NatsLink
from publishers.outbox import OutboxRow
from publishers.settings import RelaySettings
from publishers.stream import ensure_stream, subject_for

log = logging.getLogger("mdm.relay")

#: Concurrent publishes in flight per round (across golden records; one at a time within one).
MAX_IN_FLIGHT = 256


_ANALYZED = ("source_record", "match_key", "golden_record", "golden_reference", "review_task")
_STALE = text(
    "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:tables) "
    "AND n_mod_since_analyze > 1000 + 0.1 * n_live_tup ORDER BY relname"
)


class RelayUnavailable(Exception):
    """NATS is not connected (or the stream could not be set up); back off and retry."""


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """An outbox row JetStream acknowledged, and when (time.time())."""

    row: OutboxRow
    ack: PubAck
    acked_at: float


@dataclass(frozen=True, slots=True)
class RoundResult:
    claimed: int = 0
    published: int = 0  # acknowledged and marked, duplicates included
    duplicates: int = 0  # of those, how many JetStream already had
    failed: int = 0  # claimed but left for a later round


PublishHook = Callable[[Sequence[PublishedEvent]], Awaitable[None]]


class Relay:
    """Publishes the outbox until stopped; `publish_pending()` runs a single round."""

    def __init__(
        self,
        engine: AsyncEngine,
        nats: NatsLink,
        settings: RelaySettings,
        *,
        name: str = "relay",
        listen: bool = True,
        after_publish: PublishHook | None = None,
        on_published: PublishHook | None = None,
    ) -> None:
        """`after_publish` runs after the PubAcks and before the rows are marked (a
        raise there rolls the round back, as a crash would); `on_published` after commit."""
        self.engine = engine
        self.nats = nats
        self.settings = settings
        self.name = name
        self.listen = listen
        self.after_publish = after_publish
        self.on_published = on_published
        self._js: JetStreamContext | None = None
        self._js_client: Any = None
        self._stream_ready = False
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.listening = asyncio.Event()  # set while the LISTEN connection is up
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._last_cleanup = time.monotonic()

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Run in the background; returns at once even when NATS is down."""
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name=f"mdm-{self.name}")

    def request_stop(self) -> None:
        """Finish the round in progress, then stop (what SIGTERM does)."""
        self._stopping.set()
        self._wake.set()

    async def stop(self, timeout: float = 15.0) -> None:
        """Drain: let the current round publish and mark its rows, then stop.

        A round still running after `timeout` is cancelled; its rows stay
        unpublished and are published again (as duplicates JetStream drops).
        """
        self.request_stop()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.warning("%s: round did not finish in %.0fs; cancelling it", self.name, timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Publish until `request_stop()`: rounds back to back while rows wait, else sleep
        until a NOTIFY or the poll interval; back off exponentially while NATS is down."""
        if self.listen:
            self._listener = asyncio.create_task(self._listen(), name=f"mdm-{self.name}-listen")
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    result = await self.publish_pending()
                except Exception as exc:  # NATS, PostgreSQL or a hook: all mean "later"
                    metrics.FAILED_ROUNDS.inc()
                    failures += 1
                    delay = self._backoff(failures)
                    log.warning("%s: round failed (%s); retrying in %.1fs", self.name, exc, delay)
                    await self._idle(delay)
                    continue
                if result.failed:
                    failures += 1
                    await self._idle(self._backoff(failures))
                    continue
                failures = 0
                try:
                    await self._housekeeping()
                except Exception as exc:  # clean-up must never stop publishing
                    log.warning("%s: housekeeping failed: %r", self.name, exc)
                if result.claimed == 0:
                    await self._idle(self.settings.poll_interval)
        finally:
            if self._listener is not None:
                self._listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._listener
                self._listener = None

    # -- one round --------------------------------------------------------------------

    async def publish_pending(self) -> RoundResult:
        """Claim, publish and mark one batch. Raises RelayUnavailable when NATS is down."""
        js = await self._jetstream()
        # Cleared before claiming: a NOTIFY that arrives during the round wakes the next.
        self._wake.clear()
        async with self.engine.connect() as conn, conn.begin():
            rows = await outbox.claim(conn, self.settings.batch_size)
            if not rows:
                return RoundResult()
            published, failed = await self._publish(js, rows)
            if published and self.after_publish is not None:
                await self.after_publish(published)
            await outbox.mark_published(conn, [p.row.id for p in published])
        duplicates = sum(1 for p in published if p.ack.duplicate)
        for p in published:
            metrics.PUBLISHED.labels(entity=p.row.entity).inc()
        metrics.DUPLICATES.inc(duplicates)
        metrics.FAILURES.inc(failed)
        if published and self.on_published is not None:
            try:
                await self.on_published(published)
            except Exception:  # the rows are committed; a hook's failure is not the relay's
                log.exception("%s: on_published hook failed", self.name)
        return RoundResult(len(rows), len(published), duplicates, failed)

    async def _jetstream(self) -> JetStreamContext:
        client = self.nats.client
        if client is None or not client.is_connected:
            raise RelayUnavailable("NATS is not connected")
        if client is not self._js_client or self._js is None:
            self._js = client.jetstream(timeout=self.settings.publish_timeout)
            self._js_client, self._stream_ready = client, False
        if not self._stream_ready:
            try:
                await ensure_stream(self._js, self.settings)
            except Exception as exc:
                raise RelayUnavailable(f"stream {self.settings.stream} not ready: {exc}") from exc
            self._stream_ready = True
        return self._js

    async def _publish(
        self, js: JetStreamContext, rows: Sequence[OutboxRow]
    ) -> tuple[list[PublishedEvent], int]:
        """Publish golden records concurrently, each one's versions one after another.

        A version goes out only after the previous one's PubAck, so a failure
        can never let a later version overtake an earlier one.
        """
        chains: dict[str, list[OutboxRow]] = {}
        for row in rows:
            chains.setdefault(row.golden_id, []).append(row)
        gate = asyncio.Semaphore(MAX_IN_FLIGHT)
        published: list[PublishedEvent] = []
        failed = 0

        async def send(chain: list[OutboxRow]) -> None:
            nonlocal failed
            for i, row in enumerate(chain):
                async with gate:
                    try:
                        ack = await self._publish_one(js, row)
                    except Exception as exc:
                        if isinstance(exc, NoStreamResponseError):
                            self._stream_ready = False  # stream gone (e.g. NATS wiped): recreate
                        log.debug("%s: publish of %s failed: %r", self.name, row.event_id, exc)
                        failed += len(chain) - i
                        return
                published.append(PublishedEvent(row, ack, time.time()))

        await asyncio.gather(*(send(chain) for chain in chains.values()))
        return published, failed

    async def _publish_one(self, js: JetStreamContext, row: OutboxRow) -> PubAck:
        started = time.perf_counter()
        ack = await js.publish(
            subject_for(self.settings.subject_prefix, row.entity, row.type),
            row.body.encode(),
            timeout=self.settings.publish_timeout,
            stream=self.settings.stream,
            headers={"Nats-Msg-Id": row.event_id},
        )
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        return ack

    # -- waiting, clean-up ---------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        """Exponential from 0.1 s up to max_backoff, with jitter so relays do not stampede."""
        ceiling = min(self.settings.max_backoff, 0.1 * 2 ** min(failures, 16))
        return ceiling * random.uniform(0.5, 1.0)

    async def _idle(self, timeout: float) -> None:
        if self._stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_cleanup >= self.settings.cleanup_interval:
            self._last_cleanup = now
            await self.cleanup()

    async def cleanup(self, now: dt.datetime | None = None) -> int:
        """Delete rows published more than `outbox_retention` ago; answer how many."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(
            seconds=self.settings.outbox_retention
        )
        total = 0
        while True:
            async with self.engine.begin() as conn:
                deleted = await outbox.delete_published_before(conn, cutoff)
            total += deleted
            if deleted < 10_000:
                break
        if total:
            metrics.CLEANED.inc(total)
            log.info("%s: deleted %d outbox rows published before %s", self.name, total, cutoff)
        await self._vacuum()
        return total

    async def _vacuum(self) -> None:
        """VACUUM (ANALYZE) the outbox. Every publish leaves a dead row behind, which the
        claim and lag queries step over in the partial index of unpublished rows until a
        vacuum removes it, and the planner's idea of the backlog goes stale. Where
        autovacuum runs this is nearly free; where it is off (as on the machines the
        benchmarks ran on) it keeps the relay's queries sound. SKIP_LOCKED: another
        relay vacuuming at the same moment is as good."""
        async with self.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(text("VACUUM (SKIP_LOCKED, ANALYZE) outbox"))
            # The tables ingestion reads by index get fresh planner statistics when a
            # tenth of them changed since the last ANALYZE (autovacuum's own rule, with
            # a floor): with stale ones PostgreSQL took the strong-key lookup for a scan
            # of the whole key table once it had grown (docs/benchmarks.md).
            stale = await auto.execute(_STALE, {"tables": list(_ANALYZED)})
            for (table,) in stale.all():
                await auto.execute(text(f"ANALYZE (SKIP_LOCKED) {table}"))
                log.info("%s: analyzed %s (its statistics were stale)", self.name, table)

    async def _listen(self) -> None:
        """Keep a LISTEN connection; each commit that inserted outbox rows wakes the loop.

        Notifications are lost while this connection is down, which is why the
        loop also polls every poll_interval.
        """
        _args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        failures = 0
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(**kwargs)
                closed = asyncio.Event()
                conn.add_termination_listener(_setter(closed))
                await conn.add_listener(outbox.NOTIFY_CHANNEL, _setter(self._wake))
                self.listening.set()
                failures = 0
                self._wake.set()  # rows may have committed while nobody listened
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.debug("%s: LISTEN connection failed: %r", self.name, exc)
                await asyncio.sleep(self._backoff(failures))
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)


def _setter(event: asyncio.Event) -> Callable[..., None]:
    """An asyncpg callback (listener or termination) that sets `event`."""

    def callback(*_args: object) -> None:
        event.set()

    return callback
