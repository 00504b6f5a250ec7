"""Re-publishing kept outbox events: `mdm events replay --entity ... --since ...`.

A replay is a new delivery of the same events. Each copy keeps its envelope
(and so its event_id) but is published with `Nats-Msg-Id` =
`<event_id>:replay:<replay_id>`: JetStream would drop a copy carrying the
original id as a duplicate inside the duplicate window, and the replay would
silently do nothing. Subscribers de-duplicate on the envelope's event_id (and
drop versions older than the last they applied), so a subscriber that already
has an event ignores its replay, and one that lost it (or is new) applies it.
Retries within one replay reuse its ids, so JetStream de-duplicates those.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from publishers import outbox
from publishers.settings import RelaySettings
from publishers.stream import ensure_stream, subject_for

log = logging.getLogger("mdm.replay")

REPLAY_HEADER = "Mdm-Replay"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    replay_id: str
    published: int


async def replay(
    engine: AsyncEngine,
    js: JetStreamContext,
    settings: RelaySettings,
    entity: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    golden_id: str | None = None,
    attempts: int = 3,
) -> ReplayResult:
    """Publish again every published event of `entity` that occurred in [since, until).

    Sent one at a time in outbox order, so each golden record's versions arrive
    in order. Only published rows are replayed: unpublished ones are the relay's.
    """
    await ensure_stream(js, settings)
    async with engine.connect() as conn:
        rows = await outbox.published_since(conn, entity, since, until, golden_id)
    replay_id = uuid.uuid4().hex
    for row in rows:
        headers = {"Nats-Msg-Id": f"{row.event_id}:replay:{replay_id}", REPLAY_HEADER: replay_id}
        for attempt in range(1, attempts + 1):
            try:
                await js.publish(
                    subject_for(settings.subject_prefix, row.entity, row.type),
                    row.body.encode(),
                    timeout=settings.publish_timeout,
                    stream=settings.stream,
                    headers=dict(headers),
                )
                break
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("replay %s: publishing %s failed; retrying", replay_id, row.event_id)
    log.info("replay %s: re-published %d %s event(s)", replay_id, len(rows), entity)
    return ReplayResult(replay_id=replay_id, published=len(rows))
