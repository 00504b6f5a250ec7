"""The dashboard's sampling loop (mdm.api.history.HistorySampler): it samples at start,
goes on after a failed sample, and stops when asked."""

from __future__ import annotations

import asyncio

from mdm.api.history import HistorySampler
from mdm.settings import DashboardSettings


async def test_the_loop_samples_at_start_survives_a_failure_and_stops() -> None:
    sampler = HistorySampler(engine=None, settings=DashboardSettings(sample_interval=0.01))  # type: ignore[arg-type]
    taken = 0
    third = asyncio.Event()

    async def sample() -> bool:
        nonlocal taken
        taken += 1
        if taken == 1:
            raise RuntimeError("the database is not reachable")
        if taken == 3:
            third.set()
        return True

    sampler.sample = sample  # type: ignore[method-assign]
    sampler.start()
    await asyncio.wait_for(third.wait(), 5)
    await asyncio.wait_for(sampler.stop(), 5)
    stopped_at = taken
    await asyncio.sleep(0.05)
    assert taken == stopped_at
    assert sampler._task is None


def test_the_first_sample_of_a_process_recounts_the_decisions_of_the_retention() -> None:
    sampler = HistorySampler(engine=None, settings=DashboardSettings(retention=2 * 86400))  # type: ignore[arg-type]
    assert sampler._recount_hours == 48
