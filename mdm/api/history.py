"""The dashboard's history sampler: the hub's background loop (settings.dashboard).

At start and then every `sample_interval` seconds it takes one sample
(mdm/adapters/history.py `sample`): the ingestion counts folded into their hours,
the gauges sampled, the recent decisions counted, the old hours pruned. Every hub
process runs the loop; a sample another process is taking at that moment is not
taken twice (the adapter's advisory try-lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

from sqlalchemy.ext.asyncio import AsyncEngine

from mdm.adapters.history import sample
from mdm.domain.sources import ENTITIES
from mdm.settings import DashboardSettings

log = logging.getLogger("mdm.history")


class HistorySampler:
    def __init__(self, engine: AsyncEngine, settings: DashboardSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # The first sample of a process counts the decisions of the whole retention
        # (none are lost while no hub ran); later ones the last hour and this one.
        self._recount_hours = max(1, math.ceil(settings.retention / 3600))

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """End the loop, cancelling a sample at work (its transaction rolls back)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        interval = self.settings.sample_interval
        while not self._stopping.is_set():
            try:
                await self.sample()
            except Exception:
                log.exception("the dashboard's sample failed; it runs again in %gs", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)

    async def sample(self) -> bool:
        """Take one sample now; False when another process was taking one."""
        async with self.engine.begin() as conn:
            taken = await sample(conn, ENTITIES, self.settings.retention, self._recount_hours)
        if taken:
            self._recount_hours = 1
        return taken
