"""A background loop of the serving process: one piece of work every `interval`
seconds, from `start()` to `stop()` (the app's startup and shutdown). The dashboard's
history sampler (mdm/api/history.py) and the retraining check (mdm/api/retrain.py)
are two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging


class Periodic:
    """Runs `run_once` every `interval` seconds: first at start when `at_start`, else
    one interval after it. A failed run is logged and the loop goes on."""

    #: what a run is, for the log line of a failed one ("the retraining check")
    what = "the periodic task"
    at_start = False

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def interval(self) -> float:
        raise NotImplementedError

    async def run_once(self) -> object:
        raise NotImplementedError

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """End the loop, cancelling a run at work (its transaction rolls back). The loop
        also watches `_stopping`: a cancellation that lands in a run's clean-up (an
        unlock on a connection whose query was cancelled raises instead) is lost as an
        error the loop logs, and without the flag the loop would run on and the
        shutdown wait for ever."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        interval = self.interval
        wait = not self.at_start
        while True:
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), interval)
            wait = True
            if self._stopping.is_set():
                return
            try:
                await self.run_once()
            except Exception:
                self._log.exception("%s failed; it runs again in %gs", self.what, interval)
