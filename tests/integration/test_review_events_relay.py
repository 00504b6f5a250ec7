"""Review events through the outbox relay to a real NATS JetStream: per-task order,
and the subscriber helper leaves them alone instead of dead-lettering them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.js import JetStreamContext

from mdm.bootstrap import Hub
from mdm.services.context import RequestContext
from mdm.services.ingest import IncomingRecord, ingest_records
from mdm.services.reviews import decide
from mdm.settings import DatabaseSettings, NatsSettings, RelaySettings, Settings
from publishers.connection import NatsLink
from publishers.relay import Relay
from publishers.state import MemoryStateStore
from publishers.subscriber import Outcome, Subscriber, SubscriberConfig
from schemas.events import Event, ReviewEvent
from tests.integration.review_data import pair
from tests.support import read_stream, scratch_database, wait_for


@pytest.fixture(scope="module")
async def review_db(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


async def test_review_events_reach_jetstream_in_task_order(
    review_db: str, nats_url: str, js: JetStreamContext
) -> None:
    token = secrets.token_hex(4)
    settings = RelaySettings(
        stream=f"MDMREV_{token}",
        subject_prefix=f"mdmrev{token}",
        stream_max_age=3600,
        duplicate_window=120,
    )
    hub = Hub.from_settings(
        Settings(database=DatabaseSettings(url=review_db), nats=NatsSettings(url=nats_url))
    )
    link = NatsLink(nats_url)
    await link.start()
    try:
        hcm, psa = pair(0)
        for source, sid, attrs in (("hcm", "H-0", hcm), ("psa", "P-0", psa)):
            async with hub.transaction() as repo:
                (accepted,) = await ingest_records(
                    repo,
                    hub.rules,
                    "worker",
                    source,
                    [IncomingRecord(source_id=sid, attributes=attrs)],
                    RequestContext(),
                )
        assert accepted.review  # type: ignore[union-attr]
        async with hub.transaction() as repo:
            await decide(repo, hub.rules, 1, "defer", "steward.kim", "later", RequestContext())
        async with hub.transaction() as repo:
            await decide(repo, hub.rules, 1, "merge", "steward.kim", "same", RequestContext())
        relay = Relay(hub.engine, link, settings, listen=False)
        # Review events and golden events: 2 created, 1 merged, 1 lost_merge, 3 review.
        published = 0
        while published < 7:
            round_ = await relay.publish_pending()
            assert round_.published or round_.claimed == 0
            if not round_.published:
                break
            published += round_.published
        assert published == 7

        prefix = settings.subject_prefix
        msgs = await read_stream(js, settings.stream, f"{prefix}.worker.review.*", 3)
        events = [msgspec.json.decode(m.data, type=ReviewEvent) for m in msgs]
        assert [(e.type, e.version, e.payload.status) for e in events] == [
            ("review.opened", 1, "open"),
            ("review.resolved", 2, "deferred"),
            ("review.resolved", 3, "merged"),
        ]
        assert [m.subject for m in msgs] == [
            f"{prefix}.worker.review.opened",
            f"{prefix}.worker.review.resolved",
            f"{prefix}.worker.review.resolved",
        ]
        assert all(
            m.headers and m.headers["Nats-Msg-Id"] == e.event_id
            for m, e in zip(msgs, events, strict=True)
        )
        assert events[2].payload.survivor_id == min(events[2].golden_id, events[2].candidate_id)

        # A connector following everything applies the golden events and skips review ones.
        applied: list[str] = []

        async def handler(event: Event, _unit: object) -> None:
            applied.append(event.type)

        sub = Subscriber(
            js,
            MemoryStateStore(),
            handler,
            SubscriberConfig(
                durable="all-events",
                stream=settings.stream,
                subjects=[f"{prefix}.>"],
                fetch_timeout=0.2,
            ),
        )
        await sub.start()
        task = asyncio.create_task(sub.run())
        await wait_for(lambda: sum(sub.outcomes.values()) >= 7)
        sub.request_stop()
        await task
        assert sub.outcomes[Outcome.IGNORED] == 3
        assert sub.outcomes[Outcome.DEAD_LETTERED] == 0
        assert sorted(applied) == [
            "golden.created",
            "golden.created",
            "golden.lost_merge",
            "golden.merged",
        ]
    finally:
        await link.close()
        await hub.engine.dispose()
        for name in (settings.stream, f"{settings.stream}_DLQ"):
            try:
                await js.delete_stream(name)
            except Exception:
                pass
