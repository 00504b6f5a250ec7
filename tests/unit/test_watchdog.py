"""The event loop's watchdog (mdm/watchdog.py): a loop held by blocking code is caught
in the act, its stack logged, the stall counted and its lag recorded."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import REGISTRY

from mdm.watchdog import LoopWatchdog


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def hold_the_loop_with_blocking_code(seconds: float) -> None:
    time.sleep(seconds)


async def test_a_blocked_loop_is_logged_with_the_code_that_holds_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stalls = _value("mdm_event_loop_stalls_total")
    late = _value("mdm_event_loop_lag_seconds_count") - _value(
        "mdm_event_loop_lag_seconds_bucket", {"le": "0.25"}
    )
    watchdog = LoopWatchdog(threshold=0.1, interval=0.01)
    with caplog.at_level(logging.WARNING, logger="mdm.watchdog"):
        watchdog.start()
        await asyncio.sleep(0.05)
        hold_the_loop_with_blocking_code(0.4)
        await asyncio.sleep(0.1)  # the heartbeat runs again: the stall has ended
        await watchdog.stop()
    assert _value("mdm_event_loop_stalls_total") == stalls + 1
    messages = [r.getMessage() for r in caplog.records]
    (stack,) = [m for m in messages if "stalled" in m]
    assert "hold_the_loop_with_blocking_code" in stack
    (ended,) = [m for m in messages if "stall ended" in m]
    assert 300 <= float(ended.split()[-2]) < 2000
    # The heartbeat that came 0.4 s late is in the histogram, above 0.25 s.
    after = _value("mdm_event_loop_lag_seconds_count") - _value(
        "mdm_event_loop_lag_seconds_bucket", {"le": "0.25"}
    )
    assert after == late + 1


async def test_a_loop_that_runs_freely_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    watchdog = LoopWatchdog(threshold=0.5, interval=0.01)
    with caplog.at_level(logging.WARNING, logger="mdm.watchdog"):
        watchdog.start()
        for _ in range(20):
            await asyncio.sleep(0.01)
        await watchdog.stop()
    assert not [r for r in caplog.records if r.name == "mdm.watchdog"]
