"""The subscriber helper against real NATS JetStream and a real PostgreSQL state store."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mdm.bootstrap import Hub
from mdm.services.context import RequestContext
from mdm.services.ingest import IncomingRecord, ingest_records
from mdm.settings import DatabaseSettings, NatsSettings, RelaySettings, Settings
from publishers.connection import NatsLink
from publishers.relay import Relay
from publishers.state import PostgresStateStore, PostgresUnit
from publishers.subscriber import Outcome, Subscriber, SubscriberConfig
from schemas.events import Event
from tests.support import read_stream, scratch_database, truncate_hub_tables, wait_for


class Crash(BaseException):
    """Stands in for the process dying: nothing below catches it, nothing gets acked."""


@pytest.fixture(scope="module")
async def hub_db(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


@pytest.fixture
async def connector_engine(server_database_url: str) -> AsyncIterator[AsyncEngine]:
    async with scratch_database(server_database_url, migrate=False) as url:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE applied (event_id text NOT NULL)"))
        yield engine
        await engine.dispose()


@pytest.fixture
async def published(
    hub_db: str, nats_url: str, js: JetStreamContext
) -> AsyncIterator[tuple[RelaySettings, Event]]:
    """One golden.created event, published by the relay to a stream of this test's own."""
    await truncate_hub_tables(hub_db)
    token = secrets.token_hex(4)
    settings = RelaySettings(
        stream=f"MDMSUB_{token}",
        subject_prefix=f"mdmsub{token}",
        stream_max_age=3600,
        duplicate_window=120,
    )
    hub = Hub.from_settings(
        Settings(database=DatabaseSettings(url=hub_db), nats=NatsSettings(url=nats_url))
    )
    async with hub.transaction() as repo:
        await ingest_records(
            repo,
            hub.rules,
            "customer",
            "crm",
            [IncomingRecord(source_id="ACC-1", attributes={"name": "Acme"})],
            RequestContext(),
        )
    link = NatsLink(nats_url)
    await link.start()
    assert (await Relay(hub.engine, link, settings, listen=False).publish_pending()).published
    await link.close()
    await hub.engine.dispose()
    (msg,) = await read_stream(js, settings.stream, f"{settings.subject_prefix}.>", 1)
    yield settings, msgspec.json.decode(msg.data, type=Event)
    for name in (settings.stream, f"{settings.stream}_DLQ"):
        try:
            await js.delete_stream(name)
        except Exception:
            pass


def _config(settings: RelaySettings, **overrides: object) -> SubscriberConfig:
    base: dict[str, object] = {
        "durable": "test-connector",
        "stream": settings.stream,
        "subjects": [f"{settings.subject_prefix}.customer.golden.*"],
        "ack_wait": 1.0,
        "backoff": (0.2,),
        "fetch_timeout": 0.2,
    }
    base.update(overrides)
    return SubscriberConfig(**base)  # type: ignore[arg-type]


async def _applied(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list(await conn.scalars(text("SELECT event_id FROM applied")))


async def _run_until(sub: Subscriber, done: Callable[[], bool], timeout: float = 15.0) -> None:
    task = asyncio.create_task(sub.run())
    try:
        await wait_for(done, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; outcomes so far: {dict(sub.outcomes)}") from None
    finally:
        sub.request_stop()
        await asyncio.wait_for(task, 5)


async def test_a_subscriber_that_crashes_mid_handler_gets_the_event_again_and_applies_it_once(
    published: tuple[RelaySettings, Event], js: JetStreamContext, connector_engine: AsyncEngine
) -> None:
    settings, event = published
    store = PostgresStateStore(connector_engine, consumer="test-connector")
    await store.setup()
    deliveries: list[int] = []

    async def crashing(e: Event, unit: PostgresUnit) -> None:
        await unit.connection.execute(text("INSERT INTO applied VALUES (:e)"), {"e": e.event_id})
        deliveries.append(len(deliveries) + 1)
        raise Crash  # after its write, before the commit and the ack

    first = Subscriber(js, store, crashing, _config(settings))
    await first.start()
    with pytest.raises(Crash):
        await first.run()
    assert await _applied(connector_engine) == []  # the write rolled back with the crash

    async def handler(e: Event, unit: PostgresUnit) -> None:
        await unit.connection.execute(text("INSERT INTO applied VALUES (:e)"), {"e": e.event_id})

    restarted = Subscriber(js, store, handler, _config(settings))
    attempts = _spy_attempts(restarted)
    await _run_until(restarted, lambda: restarted.outcomes[Outcome.APPLIED] == 1)
    assert attempts == [2]  # the same message, redelivered after ack_wait
    assert await _applied(connector_engine) == [event.event_id]


def _spy_attempts(sub: Subscriber) -> list[int]:
    """Record each handled message's delivery count."""
    attempts: list[int] = []
    handle = sub.handle

    async def spy(msg: Msg) -> Outcome:
        attempts.append(msg.metadata.num_delivered)
        return await handle(msg)

    sub.handle = spy  # type: ignore[method-assign]
    return attempts


async def test_a_crash_after_the_commit_and_before_the_ack_is_not_applied_twice(
    published: tuple[RelaySettings, Event], js: JetStreamContext, connector_engine: AsyncEngine
) -> None:
    settings, event = published
    store = PostgresStateStore(connector_engine, consumer="test-connector")
    await store.setup()

    async def handler(e: Event, unit: PostgresUnit) -> None:
        await unit.connection.execute(text("INSERT INTO applied VALUES (:e)"), {"e": e.event_id})

    original_ack = Msg.ack

    async def crash_on_ack(self: Msg) -> None:
        raise Crash

    Msg.ack = crash_on_ack  # type: ignore[method-assign]
    try:
        first = Subscriber(js, store, handler, _config(settings))
        with pytest.raises(Crash):
            await first.run()
    finally:
        Msg.ack = original_ack  # type: ignore[method-assign]
    assert await _applied(connector_engine) == [event.event_id]

    await _replay_as_new_delivery(js, settings, event)  # and a replayed copy on top
    restarted = Subscriber(js, store, handler, _config(settings))
    attempts = _spy_attempts(restarted)
    await _run_until(restarted, lambda: restarted.outcomes[Outcome.DUPLICATE] >= 2)
    # The replayed copy, and the unacked original again.
    assert sorted(attempts) == [1, 2], restarted.outcomes
    assert restarted.outcomes[Outcome.APPLIED] == 0
    assert await _applied(connector_engine) == [event.event_id]


async def _replay_as_new_delivery(
    js: JetStreamContext, settings: RelaySettings, event: Event
) -> None:
    """Put the same event on the stream once more, as `mdm events replay` would."""
    await js.publish(
        f"{settings.subject_prefix}.customer.{event.type}",
        msgspec.json.encode(event),
        stream=settings.stream,
        headers={"Nats-Msg-Id": f"{event.event_id}:replay:test"},
    )


async def test_a_failing_handler_is_retried_with_backoff_until_it_succeeds(
    published: tuple[RelaySettings, Event], js: JetStreamContext, connector_engine: AsyncEngine
) -> None:
    settings, event = published
    store = PostgresStateStore(connector_engine, consumer="test-connector")
    await store.setup()
    attempts: list[int] = []

    async def flaky(e: Event, unit: PostgresUnit) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("ERP busy")
        await unit.connection.execute(text("INSERT INTO applied VALUES (:e)"), {"e": e.event_id})

    sub = Subscriber(js, store, flaky, _config(settings, backoff=(0.3, 0.3)))
    started = asyncio.get_running_loop().time()
    await _run_until(sub, lambda: sub.outcomes[Outcome.APPLIED] == 1)
    assert asyncio.get_running_loop().time() - started >= 0.5  # two naks with a delay
    assert sub.outcomes[Outcome.RETRY] == 2
    assert await _applied(connector_engine) == [event.event_id]


async def test_after_max_attempts_the_event_goes_to_the_dead_letter_subject(
    published: tuple[RelaySettings, Event], js: JetStreamContext, connector_engine: AsyncEngine
) -> None:
    settings, event = published
    store = PostgresStateStore(connector_engine, consumer="test-connector")
    await store.setup()

    async def broken(_e: Event, _unit: PostgresUnit) -> None:
        raise ValueError("no such ERP currency")

    config = _config(settings, max_attempts=3, backoff=(0.1,))
    # A message that is not an event at all goes there at once.
    await js.publish(
        f"{settings.subject_prefix}.customer.golden.created", b"{not json", stream=settings.stream
    )
    sub = Subscriber(js, store, broken, config)
    await _run_until(sub, lambda: sub.outcomes[Outcome.DEAD_LETTERED] == 2)
    assert sub.outcomes[Outcome.RETRY] == 2
    dead = await read_stream(js, config.dlq_stream, config.dlq_subject, 2)
    assert len(dead) == 2
    by_attempts = {m.headers["Mdm-Attempts"]: m for m in dead if m.headers}
    assert msgspec.json.decode(by_attempts["3"].data, type=Event).event_id == event.event_id
    assert "no such ERP currency" in by_attempts["3"].headers["Mdm-Error"]  # type: ignore[index]
    assert "undecodable" in by_attempts["1"].headers["Mdm-Error"]  # type: ignore[index]
    # Terminated: nothing comes back after ack_wait.
    await asyncio.sleep(1.5)
    quiet = Subscriber(js, store, broken, config)
    await quiet.start()
    task = asyncio.create_task(quiet.run())
    await asyncio.sleep(0.5)
    quiet.request_stop()
    await task
    assert sum(quiet.outcomes.values()) == 0


async def test_pruned_event_ids_still_drop_old_versions(
    published: tuple[RelaySettings, Event], js: JetStreamContext, connector_engine: AsyncEngine
) -> None:
    settings, event = published
    store = PostgresStateStore(connector_engine, consumer="test-connector")
    await store.setup()

    async def handler(e: Event, unit: PostgresUnit) -> None:
        await unit.connection.execute(text("INSERT INTO applied VALUES (:e)"), {"e": e.event_id})

    sub = Subscriber(js, store, handler, _config(settings))
    await _run_until(sub, lambda: sub.outcomes[Outcome.APPLIED] == 1)
    assert await store.prune(dt.timedelta(0)) == 1  # the event id is forgotten ...

    await _replay_as_new_delivery(js, settings, event)
    again = Subscriber(js, store, handler, _config(settings))
    await _run_until(again, lambda: again.outcomes[Outcome.STALE] == 1)  # ... its version is not
    assert await _applied(connector_engine) == [event.event_id]
