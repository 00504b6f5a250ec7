"""What `mdm relay` and `mdm events replay` run, once the CLI has resolved the settings.

The caller hands over what they need: an engine on the hub's database (its own, which
the caller disposes of after), the NATS URL and the relay's settings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal

from sqlalchemy.ext.asyncio import AsyncEngine

from publishers import metrics
from publishers.connection import NatsLink
from publishers.relay import Relay
from publishers.replay import ReplayResult, replay
from publishers.settings import RelaySettings

log = logging.getLogger("mdm.relay")


async def run_relay(engine: AsyncEngine, nats_url: str, settings: RelaySettings) -> None:
    """Publish the outbox until SIGTERM or SIGINT, then finish the round in hand and drain.

    `engine` is on the hub's database; it is left open for the caller to dispose of.
    """
    link = NatsLink(nats_url, name="mdm-relay")
    await link.start()
    relay = Relay(engine, link, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay.request_stop)
    log.info(
        "relay publishing the outbox to stream %s (subjects %s.>)",
        settings.stream,
        settings.subject_prefix,
    )
    server = await _serve_metrics(settings.metrics_socket)
    try:
        await relay.run()
    finally:
        if server is not None:
            server.close()
        await link.close()  # drains: pending PubAcks are awaited before the socket closes
    log.info("relay stopped")


async def _serve_metrics(path: str | None) -> asyncio.Server | None:
    """Answer the hub's /metrics on `path` (publishers/metrics.py); publish without if
    that fails. A socket file a relay leaves behind (killed, say) has nobody listening:
    a hub reading it gets nothing, and the next relay on that path replaces it."""
    if not path:
        return None
    try:
        server = await metrics.serve(path)
    except OSError as exc:
        log.warning("relay metrics not served on %s: %s", path, exc)
        return None
    log.info("relay metrics served on %s", path)
    return server


async def run_replay(
    engine: AsyncEngine,
    nats_url: str,
    settings: RelaySettings,
    entity: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    golden_id: str | None = None,
) -> ReplayResult:
    """Re-publish kept events (see publishers.replay) and answer how many went out.

    `engine` is on the hub's database; it is left open for the caller to dispose of.
    """
    import nats

    client = await nats.connect(nats_url, name="mdm-replay", connect_timeout=5)
    try:
        js = client.jetstream(timeout=settings.publish_timeout)
        return await replay(engine, js, settings, entity, since, until, golden_id)
    finally:
        await client.drain()
