"""A watchdog on the event loop of a hub process (`mdm serve`): how late the loop
runs, and what it was running when it was late.

Every request of a hub process shares one event loop. Anything that holds it (a
long computation between two awaits, a blocking call, a garbage collection over a
large heap) delays every request in flight, and shows only as a tail latency
that no single request explains. The watchdog has two halves:

- a task on the loop wakes every `interval` and records how late it woke into
  the histogram mdm_event_loop_lag_seconds of /metrics;
- a thread of its own checks that task's heartbeat. When the loop has not run it
  for longer than `threshold`, the thread logs the loop thread's stack as it is at
  that moment (the code holding the loop, caught while it holds it), counts the
  stall in mdm_event_loop_stalls_total, and, once the loop runs again, logs how
  long the stall lasted. One stack per stall.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from prometheus_client import Counter, Histogram

log = logging.getLogger("mdm.watchdog")

LOOP_LAG = Histogram(
    "mdm_event_loop_lag_seconds",
    "How late this hub process's event loop ran a task due at a given time",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
STALLS = Counter(
    "mdm_event_loop_stalls_total",
    "Times this hub process's event loop did not run for longer than the watchdog's threshold",
)


class LoopWatchdog:
    """Started on the loop it watches (`start`), stopped there (`stop`)."""

    def __init__(self, threshold: float = 0.1, interval: float = 0.02) -> None:
        if threshold <= 0 or interval <= 0:
            raise ValueError("the watchdog's threshold and interval must be positive")
        self.threshold = threshold
        self.interval = interval
        self._beat = time.monotonic()
        self._loop_thread = 0
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        self._thread = threading.Thread(target=self._watch, name="mdm-loop-watchdog", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def _heartbeat(self) -> None:
        while True:
            due = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            LOOP_LAG.observe(max(0.0, now - due))
            self._beat = now

    def _watch(self) -> None:
        stalled_since: float | None = None
        while not self._stopped.wait(self.interval):
            beat = self._beat
            late = time.monotonic() - beat - self.interval
            if late > self.threshold and stalled_since != beat:
                stalled_since = beat
                STALLS.inc()
                log.warning(
                    "event loop stalled for %.0f ms so far; it is running:\n%s",
                    late * 1000,
                    self._loop_stack(),
                )
            elif stalled_since is not None and beat != stalled_since:
                log.warning(
                    "event loop stall ended after %.0f ms",
                    (beat - stalled_since - self.interval) * 1000,
                )
                stalled_since = None

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return "(the loop's thread has ended)"
        return "".join(traceback.format_stack(frame))
