"""The retraining loop stops when asked, even when a check's clean-up swallows the
cancellation (mdm.api.retrain.Retrainer.stop)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from mdm.api.retrain import Retrainer
from mdm.settings import RetrainSettings, Settings


async def test_stop_ends_the_loop_when_a_check_turns_its_cancellation_into_an_error() -> None:
    settings = dataclasses.replace(Settings(), retrain=RetrainSettings(interval=0.01))
    retrainer = Retrainer(engine=None, settings=settings)  # type: ignore[arg-type]
    entered = asyncio.Event()
    checks = 0

    async def check() -> list[str]:
        # As `_check` does when the cancelled query leaves its connection unusable: the
        # unlock in its `finally` raises, and that error replaces the cancellation. Later
        # checks find nothing to do.
        nonlocal checks
        checks += 1
        if checks > 1:
            return []
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError(
                "cannot use the connection: another operation is in progress"
            ) from None
        return []

    retrainer.check = check  # type: ignore[method-assign]
    retrainer.start()
    await asyncio.wait_for(entered.wait(), 5)
    stopping = asyncio.create_task(retrainer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=2)
    if not done:  # the loop ran on: end it for good before failing
        loop_task = retrainer._task
        assert loop_task is not None
        loop_task.cancel()
        await asyncio.wait({stopping}, timeout=2)
    assert done, "stop() did not return: the retraining loop ran on after its cancellation"
    assert checks == 1
    assert retrainer._task is None


async def test_stop_before_the_first_check_runs_none() -> None:
    settings = dataclasses.replace(Settings(), retrain=RetrainSettings(interval=3600))
    retrainer = Retrainer(engine=None, settings=settings)  # type: ignore[arg-type]
    called: list[Any] = []

    async def check() -> list[str]:
        called.append(1)
        return []

    retrainer.check = check  # type: ignore[method-assign]
    retrainer.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(retrainer.stop(), 5)
    assert called == []
