"""A small helper for connector authors: consume the hub's events once, in effect, in order.

    store = PostgresStateStore(engine, consumer="erp-customers")
    await store.setup()
    sub = Subscriber(js, store, handle, SubscriberConfig(
        durable="erp-customers", subjects=["mdm.customer.golden.*"],
        types={"golden.created", "golden.updated"}))
    await sub.run()          # until sub.request_stop()

What it does with each message of a durable pull consumer (explicit acks):

- decodes the envelope (schemas.events.Event); one that does not decode goes
  to the dead-letter subject at once, except review events (`review.*`, their
  own envelope, schemas.events.ReviewEvent), which it acknowledges unread;
- asks the state store whether the event is new: an event id applied before is
  a duplicate (JetStream redelivery, a relay re-publish, a replay) and a version
  at or below the last one applied for that golden record is stale; both are
  acknowledged without calling the handler;
- runs the handler and records the event in the same unit of work, then acks;
- when the handler raises, naks with a growing delay; after `max_attempts`
  deliveries the message goes to the dead-letter subject and is terminated.

Every event carries the whole golden record, so a connector that skips a stale
version loses nothing: the newer one it already applied has it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from publishers.state import StateStore, Verdict
from schemas.events import Event

log = logging.getLogger("mdm.subscriber")

Handler = Callable[[Event, Any], Awaitable[None]]
_decoder = msgspec.json.Decoder(Event)


class _TypeOnly(msgspec.Struct):
    type: str


_peek = msgspec.json.Decoder(_TypeOnly).decode


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IGNORED = "ignored"  # a type this subscriber does not handle
    RETRY = "retry"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class SubscriberConfig:
    durable: str  # the consumer's name; it keeps its position across restarts
    subjects: Sequence[str] = ("mdm.>",)  # several need nats-server 2.10+
    types: Collection[str] | None = None  # event types to handle; others are acked unread
    stream: str = "MDM"
    max_attempts: int = 5
    backoff: Sequence[float] = (1.0, 5.0, 15.0, 60.0)  # nak delay after attempt 1, 2, ...
    ack_wait: float = 30.0  # a crashed handler's message comes back after this
    batch: int = 64
    fetch_timeout: float = 1.0
    dead_letter_subject: str | None = None  # default dlq.<stream>.<durable>
    dead_letter_stream: str | None = None  # default <stream>_DLQ, created if missing
    extra: dict[str, Any] = field(default_factory=dict)  # more ConsumerConfig fields

    @property
    def dlq_subject(self) -> str:
        return self.dead_letter_subject or f"dlq.{self.stream}.{self.durable}"

    @property
    def dlq_stream(self) -> str:
        return self.dead_letter_stream or f"{self.stream}_DLQ"


class Subscriber:
    def __init__(
        self,
        js: JetStreamContext,
        store: StateStore,
        handler: Handler,
        config: SubscriberConfig,
        on_applied: Callable[[Event], Awaitable[None]] | None = None,
    ) -> None:
        """`handler(event, unit)` applies one event; `unit` is the store's unit of work
        (PostgresUnit.connection is the transaction to write in). `on_applied` runs
        after the commit and the ack, for side effects that must not be repeated."""
        self.js = js
        self.store = store
        self.handler = handler
        self.config = config
        self.on_applied = on_applied
        self.outcomes: Counter[Outcome] = Counter()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Create (or update) the durable consumer and the dead-letter stream, and bind."""
        cfg = self.config
        subjects = list(cfg.subjects)
        consumer = ConsumerConfig(
            durable_name=cfg.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=cfg.ack_wait,
            # The helper dead-letters itself; the server must never drop a message silently.
            max_deliver=-1,
            # mypy checks a ** dict's value type against every keyword's type.
            **({"filter_subject": subjects[0]} if len(subjects) == 1 else {}),  # type: ignore[arg-type]
            **({"filter_subjects": subjects} if len(subjects) > 1 else {}),  # type: ignore[arg-type]
            **cfg.extra,
        )
        await self.js.add_consumer(cfg.stream, consumer)
        await self._ensure_dead_letter_stream()
        self._sub = await self.js.pull_subscribe_bind(durable=cfg.durable, stream=cfg.stream)

    async def _ensure_dead_letter_stream(self) -> None:
        cfg = self.config
        try:
            await self.js.stream_info(cfg.dlq_stream)
        except NotFoundError:
            await self.js.add_stream(
                StreamConfig(
                    name=cfg.dlq_stream,
                    subjects=[cfg.dlq_subject],
                    storage=StorageType.FILE,
                    description=f"Events the {cfg.durable} consumer could not apply",
                )
            )
            return
        # Another consumer made it: make sure it also captures this consumer's subject.
        info = await self.js.stream_info(cfg.dlq_stream)
        subjects = list(info.config.subjects or [])
        if cfg.dlq_subject not in subjects:
            info.config.subjects = [*subjects, cfg.dlq_subject]
            await self.js.update_stream(info.config)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Fetch and handle until `request_stop()`; the message in hand is finished first."""
        if self._sub is None:
            await self.start()
        assert self._sub is not None
        while not self._stopping.is_set():
            try:
                msgs = await self._sub.fetch(self.config.batch, timeout=self.config.fetch_timeout)
            except TimeoutError:  # nats.errors.TimeoutError, or asyncio's from deep in fetch
                continue
            except nats.errors.Error as exc:  # disconnected, reconnecting, server busy
                log.warning("%s: fetch failed (%r); retrying", self.config.durable, exc)
                await asyncio.sleep(1.0)
                continue
            for i, msg in enumerate(msgs):
                if self._stopping.is_set():
                    # Hand the rest back now rather than after ack_wait.
                    for rest in msgs[i:]:
                        with contextlib.suppress(Exception):
                            await rest.nak()
                    break
                await self.handle(msg)

    async def handle(self, msg: Msg) -> Outcome:
        """Apply one message (at most once in effect) and ack, nak or dead-letter it."""
        outcome = await self._handle(msg)
        self.outcomes[outcome] += 1
        return outcome

    async def _handle(self, msg: Msg) -> Outcome:
        attempt = msg.metadata.num_delivered
        try:
            event = _decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if self._not_ours(msg.data):
                # A type newer than this code (types evolve by adding): not ours to fail on.
                await msg.ack()
                return Outcome.IGNORED
            return await self._dead_letter(msg, None, f"undecodable event: {exc}", attempt)
        if self.config.types is not None and event.type not in self.config.types:
            await msg.ack()
            return Outcome.IGNORED
        if attempt > self.config.max_attempts:
            # Deliveries beyond the limit come from crashes mid-handler: stop retrying.
            return await self._dead_letter(msg, event, "crashed on every attempt", attempt)
        try:
            async with self.store.unit() as unit:
                verdict = await unit.verdict(event)
                if verdict is Verdict.NEW:
                    await self.handler(event, unit)
                    await unit.remember(event)
        except Exception as exc:
            if attempt >= self.config.max_attempts:
                return await self._dead_letter(msg, event, repr(exc), attempt)
            delay = self._delay(attempt)
            log.warning(
                "%s: event %s failed (attempt %d), again in %.1fs: %r",
                self.config.durable,
                event.event_id,
                attempt,
                delay,
                exc,
            )
            await msg.nak(delay=delay)
            return Outcome.RETRY
        # Acked after the commit: a crash in between means a redelivery the store
        # recognises as a duplicate, never a second application.
        await msg.ack()
        if verdict is not Verdict.NEW:
            return Outcome(verdict.value)
        if self.on_applied is not None:
            try:
                await self.on_applied(event)
            except Exception:
                log.exception("%s: on_applied failed for %s", self.config.durable, event.event_id)
        return Outcome.APPLIED

    def _not_ours(self, data: bytes) -> bool:
        try:
            peek = _peek(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        if peek.type.startswith("review."):
            # Review events have an envelope of their own (schemas.events.ReviewEvent),
            # ordered per task: this helper applies golden-record events only.
            return True
        return self.config.types is not None and peek.type not in self.config.types

    def _delay(self, attempt: int) -> float:
        steps = self.config.backoff or (1.0,)
        return steps[min(attempt, len(steps)) - 1]

    async def _dead_letter(
        self, msg: Msg, event: Event | None, reason: str, attempt: int
    ) -> Outcome:
        cfg = self.config
        key = event.event_id if event is not None else f"seq-{msg.metadata.sequence.stream}"
        headers = {
            # Dead-lettering twice (a crash before the term) keeps one copy.
            "Nats-Msg-Id": f"{key}:dlq:{cfg.durable}",
            "Mdm-Original-Subject": msg.subject,
            "Mdm-Consumer": cfg.durable,
            "Mdm-Attempts": str(attempt),
            "Mdm-Error": " ".join(reason.split())[:500],
        }
        try:
            await self.js.publish(cfg.dlq_subject, msg.data, headers=headers)
        except Exception as exc:
            log.error("%s: could not dead-letter %s (%r); retrying", cfg.durable, key, exc)
            await msg.nak(delay=self._delay(attempt))
            return Outcome.RETRY
        log.error("%s: dead-lettered %s after %d attempt(s): %s", cfg.durable, key, attempt, reason)
        await msg.term()
        return Outcome.DEAD_LETTERED
