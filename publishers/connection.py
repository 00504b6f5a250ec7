"""The hub's connection to NATS, kept alive in the background.

The hub must keep accepting writes while NATS is down (events wait in the
outbox), so a failed first connect is retried in the background instead of
failing start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats
from nats.aio.client import Client

log = logging.getLogger("mdm.nats")


class NatsLink:
    def __init__(self, url: str, name: str = "mdm-hub", retry_seconds: float = 2.0) -> None:
        self.url = url
        self.name = name
        self.retry_seconds = retry_seconds
        self.client: Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect now if NATS answers; otherwise keep trying in the background."""
        if not await self._connect_once():
            self._task = asyncio.create_task(self._keep_trying(), name="nats-connect")

    async def _connect_once(self) -> bool:
        try:
            self.client = await nats.connect(
                self.url,
                name=self.name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                # Publishing while disconnected fails at once instead of queueing: a
                # queued event flushed after a long outage could land behind a newer
                # version another relay published meanwhile (publishers/relay.py).
                pending_size=0,
            )
        except Exception as exc:  # nats-py raises several unrelated types here
            log.warning("NATS at %s not reachable yet: %s", self.url, exc)
            return False
        log.info("connected to NATS at %s", self.url)
        return True

    async def _keep_trying(self) -> None:
        connected = False
        while not connected:
            await asyncio.sleep(self.retry_seconds)
            connected = await self._connect_once()

    async def healthy(self, timeout: float = 1.0) -> bool:
        """True when the connection is up and the server answers a ping in time."""
        client = self.client
        if client is None or not client.is_connected:
            return False
        try:
            # nats-py annotates an int; it hands the timeout to asyncio.wait_for (a float).
            await client.flush(timeout=timeout)  # type: ignore[arg-type]
        except Exception:
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None and not self.client.is_closed:
            with contextlib.suppress(Exception):
                await self.client.drain()
