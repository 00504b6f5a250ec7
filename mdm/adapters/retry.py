"""Units of work that PostgreSQL aborted to break a deadlock, run again from their start.

Two transactions that lock rows in different orders (a batch locking its golden
records while a re-matching run merges some of them, one chunk of merges at a time)
can each wait for the other. PostgreSQL then aborts one of them with SQLSTATE
40P01 (`deadlock_detected`); under SERIALIZABLE it would be 40001
(`serialization_failure`). Nothing of the aborted transaction was committed, so the
answer is to run it again: the other one has finished or moved on by then. Lock
order keeps such aborts rare; this keeps a rare one from becoming an error.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: SQLSTATEs of a transaction the server aborted so that another could go on.
ABORTED = {"40P01": "deadlock detected", "40001": "serialization failure"}
#: Runs of one unit of work, the first included, before the abort is raised.
ATTEMPTS = 4
#: Seconds waited before running again: up to this times the attempt, at random.
BACKOFF = 0.05


def aborted(exc: BaseException) -> str | None:
    """Why the server aborted the transaction that raised `exc` (None: another error)."""
    if not isinstance(exc, DBAPIError):
        return None
    return ABORTED.get(getattr(exc.orig, "sqlstate", None) or "")


async def run_again_if_aborted(
    begin: Callable[[], AbstractAsyncContextManager[R]],
    work: Callable[[R], Awaitable[T]],
    attempts: int = ATTEMPTS,
) -> T:
    """`work` in the transaction `begin()` opens (committed when `work` returns), run
    again in a new one when the server aborted it (`ABORTED`), up to `attempts` runs.

    `work` must do nothing outside the transaction that a second run would repeat
    (counters, messages): such effects belong after this returns."""
    attempt = 1
    while True:
        try:
            async with begin() as unit:
                return await work(unit)
        except DBAPIError as exc:
            why = aborted(exc)
            if why is None or attempt >= attempts:
                raise
            log.warning(
                "unit of work aborted (%s); running it again (%d of %d)", why, attempt + 1, attempts
            )
            await asyncio.sleep(random.uniform(0, BACKOFF * attempt))
            attempt += 1
