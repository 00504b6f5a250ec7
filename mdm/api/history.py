"""The dashboard's history sampler: the hub's background loop (settings.dashboard).

At start and then every `sample_interval` seconds it takes one sample
(mdm/adapters/history.py `sample`): the ingestion counts folded into their hours,
the gauges sampled, the recent decisions counted, the old hours pruned. Every hub
process runs the loop; a sample another process is taking at that moment is not
taken twice (the adapter's advisory try-lock).
"""

from __future__ import annotations

import logging
import math

from sqlalchemy.ext.asyncio import AsyncEngine

from mdm.adapters.history import sample
from mdm.api.periodic import Periodic
from mdm.domain.sources import ENTITIES
from mdm.settings import DashboardSettings

log = logging.getLogger("mdm.history")


class HistorySampler(Periodic):
    what = "the dashboard's sample"
    at_start = True

    def __init__(self, engine: AsyncEngine, settings: DashboardSettings) -> None:
        super().__init__(log)
        self.engine = engine
        self.settings = settings
        # The first sample of a process counts the decisions of the whole retention
        # (none are lost while no hub ran); later ones the last hour and this one.
        self._recount_hours = max(1, math.ceil(settings.retention / 3600))

    @property
    def interval(self) -> float:
        return self.settings.sample_interval

    async def run_once(self) -> bool:
        return await self.sample()

    async def sample(self) -> bool:
        """Take one sample now; False when another process was taking one."""
        async with self.engine.begin() as conn:
            taken = await sample(conn, ENTITIES, self.settings.retention, self._recount_hours)
        if taken:
            self._recount_hours = 1
        return taken
