"""The outbox relay against the real PostgreSQL and NATS JetStream.

Each test gets its own stream and subject prefix, so tests can share one
nats-server (the machine's, in CI) with each other and with other sessions.
The relay tests use a database of their own: the shared app's database is
compared row by row by other tests, and a relay would change it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Sequence

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from nats.js import JetStreamContext
from nats.js.api import StorageType
from prometheus_client import generate_latest
from sqlalchemy import text

from mdm.api.app import create_app
from mdm.bootstrap import Hub
from mdm.services.context import RequestContext
from mdm.services.ingest import IncomingRecord, ingest_records
from mdm.settings import AuthSettings, DatabaseSettings, NatsSettings, RelaySettings, Settings
from publishers import metrics as relay_metrics
from publishers import outbox
from publishers.connection import NatsLink
from publishers.relay import PublishedEvent, Relay
from publishers.replay import REPLAY_HEADER, replay
from publishers.state import MemoryStateStore
from publishers.subscriber import Outcome, Subscriber, SubscriberConfig
from schemas.events import Event
from tests.integration.prometheus_text import samples
from tests.support import (
    read_stream,
    scratch_database,
    truncate_hub_tables,
    wait_for,
)

_decode = msgspec.json.Decoder(Event).decode


@pytest.fixture(scope="module")
async def relay_db(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


@pytest.fixture
async def hub(relay_db: str, nats_url: str) -> AsyncIterator[Hub]:
    await truncate_hub_tables(relay_db)
    hub = Hub.from_settings(
        Settings(database=DatabaseSettings(url=relay_db), nats=NatsSettings(url=nats_url))
    )
    yield hub
    await hub.engine.dispose()


@pytest.fixture
async def link(nats_url: str) -> AsyncIterator[NatsLink]:
    link = NatsLink(nats_url, name="relay-test")
    await link.start()
    yield link
    await link.close()


async def ingest(hub: Hub, records: Sequence[tuple[str, str]], source: str = "crm") -> None:
    """Upsert customers (source_id, name) in one transaction, as the API would."""
    async with hub.transaction() as repo:
        await ingest_records(
            repo,
            hub.rules,
            "customer",
            source,
            [IncomingRecord(source_id=sid, attributes={"name": name}) for sid, name in records],
            RequestContext(),
        )


async def outbox_counts(hub: Hub) -> tuple[int, int]:
    """(all rows, unpublished rows)."""
    async with hub.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox")
            )
        ).one()
    return int(row[0]), int(row[1])


async def all_published(hub: Hub) -> bool:
    total, pending = await outbox_counts(hub)
    return total > 0 and pending == 0


def assert_in_order_per_golden(events: Sequence[Event]) -> None:
    """Each golden record's versions arrive 1, 2, 3, ... with none missing or repeated."""
    seen: dict[str, int] = {}
    for event in events:
        assert event.version == seen.get(event.golden_id, 0) + 1, (event.golden_id, seen)
        seen[event.golden_id] = event.version


async def test_relay_publishes_with_the_event_id_as_msg_id_and_marks_rows(
    hub: Hub, link: NatsLink, js: JetStreamContext, relay_settings: RelaySettings
) -> None:
    await ingest(hub, [("ACC-1", "Acme Consulting"), ("ACC-2", "Globex")])
    await ingest(hub, [("ACC-1", "Acme Consulting GmbH")])
    relay = Relay(hub.engine, link, relay_settings)
    await relay.start()
    try:
        await wait_for(lambda: all_published(hub))
    finally:
        await relay.stop()

    msgs = await read_stream(js, relay_settings.stream, f"{relay_settings.subject_prefix}.>", 3)
    events = [_decode(m.data) for m in msgs]
    acme = next(e.golden_id for e in events if e.payload.attributes["name"] == "Acme Consulting")
    assert [(e.type, e.version) for e in events if e.golden_id == acme] == [
        ("golden.created", 1),
        ("golden.updated", 2),
    ]
    for msg, event in zip(msgs, events, strict=True):
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == event.event_id
        assert msg.subject == f"{relay_settings.subject_prefix}.customer.{event.type}"
    async with hub.engine.connect() as conn:
        ids = set(await conn.scalars(text("SELECT event_id::text FROM outbox")))
    assert ids == {e.event_id for e in events}

    info = await js.stream_info(relay_settings.stream)
    assert info.config.subjects == [f"{relay_settings.subject_prefix}.>"]
    assert info.config.storage == StorageType.FILE
    assert info.config.duplicate_window == relay_settings.duplicate_window
    assert info.config.max_age == relay_settings.stream_max_age


async def test_two_relays_at_once_keep_each_golden_records_order(
    hub: Hub, nats_url: str, js: JetStreamContext, relay_settings: RelaySettings
) -> None:
    """Two relays race for the same outbox while writers keep adding versions."""

    async def jitter(_published: Sequence[PublishedEvent]) -> None:
        await asyncio.sleep(random.uniform(0, 0.004))  # widen the window between ack and mark

    counts = [0, 0]
    links = [NatsLink(nats_url, name=f"relay-{i}") for i in range(2)]
    relays = []
    for i, link in enumerate(links):
        await link.start()

        async def count(published: Sequence[PublishedEvent], i: int = i) -> None:
            counts[i] += len(published)

        relays.append(
            Relay(
                hub.engine,
                link,
                relay_settings,
                name=f"relay-{i}",
                after_publish=jitter,
                on_published=count,
            )
        )
    for relay in relays:
        await relay.start()

    async def writer(n: int) -> None:
        for version in range(15):
            await ingest(hub, [(f"ACC-{n}", f"Customer {n} rev {version}")])

    try:
        await asyncio.gather(*(writer(n) for n in range(12)))
        await wait_for(lambda: all_published(hub))
    finally:
        for relay in relays:
            await relay.stop()
        for link in links:
            await link.close()

    total, _ = await outbox_counts(hub)
    assert total == 12 * 15
    msgs = await read_stream(js, relay_settings.stream, f"{relay_settings.subject_prefix}.>", total)
    events = [_decode(m.data) for m in msgs]
    assert len(events) == total
    assert len({e.event_id for e in events}) == total
    assert_in_order_per_golden(events)
    assert sum(counts) == total
    assert all(counts), f"one relay did all the work: {counts}"


async def test_a_notify_wakes_the_relay_without_waiting_for_the_poll(
    hub: Hub, link: NatsLink, relay_settings: RelaySettings
) -> None:
    import dataclasses

    slow_poll = dataclasses.replace(relay_settings, poll_interval=30.0)
    published = asyncio.Event()

    async def done(_p: Sequence[PublishedEvent]) -> None:
        published.set()

    relay = Relay(hub.engine, link, slow_poll, on_published=done)
    await relay.start()
    try:
        await asyncio.wait_for(relay.listening.wait(), 10)
        await asyncio.sleep(0.2)  # let the first (empty) round finish and go idle
        started = asyncio.get_running_loop().time()
        await ingest(hub, [("ACC-1", "Acme")])
        await asyncio.wait_for(published.wait(), 5)
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await relay.stop()


async def test_relay_killed_between_puback_and_mark_is_a_duplicate_the_server_drops(
    hub: Hub, link: NatsLink, js: JetStreamContext, relay_settings: RelaySettings
) -> None:
    """Fault: PubAck received, then the relay dies before it marks the row."""

    class RelayKilled(Exception):
        pass

    async def die(_published: Sequence[PublishedEvent]) -> None:
        raise RelayKilled

    await ingest(hub, [("ACC-1", "Acme")])
    first = Relay(hub.engine, link, relay_settings, listen=False, after_publish=die)
    with pytest.raises(RelayKilled):
        await first.publish_pending()
    assert await outbox_counts(hub) == (1, 1)  # the mark rolled back

    restarted = Relay(hub.engine, link, relay_settings, listen=False)
    acks: list[PublishedEvent] = []

    async def keep(published: Sequence[PublishedEvent]) -> None:
        acks.extend(published)

    restarted.on_published = keep
    result = await restarted.publish_pending()
    assert (result.published, result.duplicates) == (1, 1)
    assert acks[0].ack.duplicate is True
    assert await outbox_counts(hub) == (1, 0)

    info = await js.stream_info(relay_settings.stream)
    assert info.state.messages == 1
    applied: list[str] = []

    async def handler(event: Event, _unit: object) -> None:
        applied.append(event.event_id)

    sub = Subscriber(
        js,
        MemoryStateStore(),
        handler,
        SubscriberConfig(
            durable="once",
            stream=relay_settings.stream,
            subjects=[f"{relay_settings.subject_prefix}.>"],
        ),
    )
    await sub.start()
    task = asyncio.create_task(sub.run())
    await wait_for(lambda: sum(sub.outcomes.values()) >= 1)
    await asyncio.sleep(0.3)  # a second copy, if there were one, would arrive now
    sub.request_stop()
    await task
    assert applied == [acks[0].row.event_id]


async def test_cleanup_deletes_only_published_rows_past_retention(
    hub: Hub, link: NatsLink, relay_settings: RelaySettings
) -> None:
    await ingest(hub, [("ACC-1", "Acme"), ("ACC-2", "Globex"), ("ACC-3", "Initech")])
    relay = Relay(hub.engine, link, relay_settings, listen=False)
    await relay.publish_pending()
    await ingest(hub, [("ACC-4", "Umbrella")])  # stays unpublished
    async with hub.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE outbox SET published_at = now() - interval '30 days', "
                "occurred_at = now() - interval '30 days' WHERE id IN (1, 2)"
            )
        )
        await conn.execute(
            text("UPDATE outbox SET occurred_at = now() - interval '30 days' WHERE id = 4")
        )
    assert await relay.cleanup() == 2
    async with hub.engine.connect() as conn:
        left = list(await conn.scalars(text("SELECT id FROM outbox ORDER BY id")))
        # ... and vacuumed the outbox (its dead rows gone even where autovacuum is off).
        vacuumed = await conn.scalar(
            text("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'outbox'")
        )
    assert left == [3, 4]
    assert vacuumed is not None
    async with hub.engine.connect() as conn:
        pending, lag = await outbox.lag(conn)
    assert pending == 1 and lag > 29 * 86400


async def test_cleanup_refreshes_stale_planner_statistics(
    hub: Hub, link: NatsLink, relay_settings: RelaySettings
) -> None:
    """Where autovacuum is off (or behind), the relay's cleanup ANALYZEs the tables
    ingestion reads by index once a tenth of them (and over 1,000 rows) changed."""

    async def source_record_stats() -> tuple[int, int]:
        async with hub.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables "
                        "WHERE relname = 'source_record'"
                    )
                )
            ).one()
        return int(row[0]), int(row[1])

    async def autovacuum(enabled: bool) -> None:
        # Where autovacuum runs (the embedded server), its own ANALYZE of the 1,500
        # records would reset the counter this test waits for: off for the test.
        option = "RESET (autovacuum_enabled)" if enabled else "SET (autovacuum_enabled = off)"
        async with hub.engine.begin() as conn:
            await conn.execute(text(f"ALTER TABLE source_record {option}"))

    relay = Relay(hub.engine, link, relay_settings, listen=False)
    await autovacuum(False)
    try:
        await relay.cleanup()  # whatever earlier tests left: analyzed now if stale
        before, _ = await source_record_stats()
        await ingest(hub, [(f"STAT-{i}", f"Statistics Company {i}") for i in range(1500)])

        async def grown() -> bool:  # the writers' counters reach the statistics shortly
            changed, live = await source_record_stats()
            return changed - before >= 1500 and changed > 1000 + 0.1 * live

        await wait_for(grown, timeout=30, every=0.5)
        await relay.cleanup()
        changed, _ = await source_record_stats()
        assert changed < 1000
    finally:
        await autovacuum(True)


async def test_replay_is_a_new_delivery_with_the_same_event_ids(
    hub: Hub, link: NatsLink, js: JetStreamContext, relay_settings: RelaySettings
) -> None:
    await ingest(hub, [("ACC-1", "Acme"), ("ACC-2", "Globex")])
    await ingest(hub, [("ACC-1", "Acme GmbH")])
    relay = Relay(hub.engine, link, relay_settings, listen=False)
    # One round: ACC-1's v2 rides behind its v1 (a tail of the head this relay holds).
    assert (await relay.publish_pending()).published == 3
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    # Inside the duplicate window: the original msg ids would all be dropped.
    result = await replay(hub.engine, js, relay_settings, "customer", since)
    assert result.published == 3
    prefix = relay_settings.subject_prefix
    msgs = await read_stream(js, relay_settings.stream, f"{prefix}.>", 6)
    assert len(msgs) == 6
    originals, copies = msgs[:3], msgs[3:]
    assert [m.data for m in copies] == [m.data for m in originals]
    for msg in copies:
        assert msg.headers is not None and msg.headers[REPLAY_HEADER] == result.replay_id
        assert msg.headers["Nats-Msg-Id"] != _decode(msg.data).event_id
    assert_in_order_per_golden([_decode(m.data) for m in copies])

    # A subscriber that has the originals applies each event once.
    applied: list[str] = []

    async def handler(event: Event, _unit: object) -> None:
        applied.append(event.event_id)

    sub = Subscriber(
        js,
        MemoryStateStore(),
        handler,
        SubscriberConfig(
            durable="replayed", stream=relay_settings.stream, subjects=[f"{prefix}.>"]
        ),
    )
    await sub.start()
    task = asyncio.create_task(sub.run())
    await wait_for(lambda: sum(sub.outcomes.values()) >= 6)
    sub.request_stop()
    await task
    assert sorted(applied) == sorted(_decode(m.data).event_id for m in originals)
    assert sub.outcomes[Outcome.DUPLICATE] == 3

    # --golden-id narrows it to one golden record.
    one = _decode(originals[0].data).golden_id
    narrowed = await replay(hub.engine, js, relay_settings, "customer", since, golden_id=one)
    assert narrowed.published == sum(1 for m in originals if _decode(m.data).golden_id == one)


def _cli_env(relay_db: str, nats_url: str, settings: RelaySettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDM_")}
    env.update(
        MDM_DATABASE_URL=relay_db,
        MDM_NATS_URL=nats_url,
        MDM_STREAM=settings.stream,
        MDM_SUBJECT_PREFIX=settings.subject_prefix,
        MDM_STREAM_MAX_AGE="1h",
        MDM_STREAM_DUPLICATE_WINDOW="2m",
        MDM_RELAY_MAX_BACKOFF="1",
    )
    return env


async def test_mdm_relay_command_publishes_and_drains_on_sigterm(
    hub: Hub, relay_db: str, nats_url: str, js: JetStreamContext, relay_settings: RelaySettings
) -> None:
    await ingest(hub, [("ACC-1", "Acme")])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdm.cli",
        "relay",
        env=_cli_env(relay_db, nats_url, relay_settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_for(lambda: all_published(hub), timeout=30)
        await ingest(hub, [("ACC-2", "Globex")])
        await wait_for(lambda: all_published(hub), timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()
    assert "relay stopped" in out.decode()
    assert (
        len(await read_stream(js, relay_settings.stream, f"{relay_settings.subject_prefix}.>", 2))
        == 2
    )

    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    replayed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdm.cli",
        "events",
        "replay",
        "--entity",
        "customer",
        "--since",
        since,
        env=_cli_env(relay_db, nats_url, relay_settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(replayed.communicate(), 30)
    assert replayed.returncode == 0, out.decode()
    assert "re-published 2 event(s)" in out.decode()


ADMIN = "mdm_relay-test-admin"
PUBLISHED = 'mdm_relay_published_events_total{entity="customer"}'


async def test_the_hub_app_runs_the_relay_inline_and_shows_its_metrics(
    relay_db: str, nats_url: str, hub: Hub, js: JetStreamContext, relay_settings: RelaySettings
) -> None:
    # MDM_RELAY=inline; by default `mdm serve` runs it as a child process instead
    # (tests/integration/test_serve_embedded.py).
    settings = Settings(
        database=DatabaseSettings(url=relay_db),
        nats=NatsSettings(url=nats_url),
        relay=dataclasses.replace(relay_settings, mode="inline"),
        auth=AuthSettings(admin_key=ADMIN),
    )
    before = samples(generate_latest(relay_metrics.REGISTRY).decode())
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["X-API-Key"] = ADMIN
        response = await client.put(
            "/v1/sources/crm/customer/ACC-1", json={"attributes": {"name": "Acme"}}
        )
        assert response.status_code == 200
        await wait_for(lambda: all_published(hub))
        metrics = samples((await client.get("/metrics")).text)  # each family once
    # The relay's counters are this test process's, which other tests' relays count in too.
    assert metrics[PUBLISHED] == before.get(PUBLISHED, 0) + 1
    assert metrics["mdm_outbox_unpublished_events"] == 0
    assert metrics["mdm_outbox_lag_seconds"] == 0
    for name in ("mdm_relay_publish_seconds_bucket", "mdm_relay_duplicate_publishes_total"):
        assert any(sample.startswith(name) for sample in metrics), name
    prefix = relay_settings.subject_prefix
    assert len(await read_stream(js, relay_settings.stream, f"{prefix}.>", 1)) == 1


async def test_mdm_relay_0_keeps_the_relay_out_of_the_app(
    relay_db: str, nats_url: str, hub: Hub, relay_settings: RelaySettings
) -> None:
    off = Settings.from_env(
        {
            "MDM_DATABASE_URL": relay_db,
            "MDM_NATS_URL": nats_url,
            "MDM_RELAY": "0",
            "MDM_ADMIN_KEY": ADMIN,
        }
    )
    assert off.relay.enabled is False
    async with AsyncTestClient(app=create_app(off)) as client:
        client.headers["X-API-Key"] = ADMIN
        response = await client.put(
            "/v1/sources/crm/customer/ACC-1", json={"attributes": {"name": "Acme"}}
        )
        assert response.status_code == 200
        await asyncio.sleep(0.5)
    assert await outbox_counts(hub) == (1, 1)
