"""A unit of work that PostgreSQL aborts to break a deadlock runs again (mdm.adapters.retry),
against the real server: two transactions lock two rows in opposite orders."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mdm.adapters.retry import aborted, run_again_if_aborted
from mdm.bootstrap import make_engine
from tests.support import scratch_database


@pytest.fixture
async def engine(server_database_url: str) -> AsyncIterator[AsyncEngine]:
    async with scratch_database(server_database_url, migrate=False) as url:
        engine = make_engine(url, pool_size=2)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE probe (id int PRIMARY KEY, n int NOT NULL)"))
            await conn.execute(text("INSERT INTO probe VALUES (1, 0), (2, 0)"))
        yield engine
        await engine.dispose()


async def _crossed(engine: AsyncEngine, attempts: int) -> tuple[list[object], Counter[str]]:
    """Units "a" (row 1, then row 2) and "b" (row 2, then row 1), each taking its second
    row only once the other holds its first: a deadlock, which the server breaks."""
    runs: Counter[str] = Counter()
    holds = {"a": asyncio.Event(), "b": asyncio.Event()}

    @asynccontextmanager
    async def begin() -> AsyncIterator[AsyncConnection]:
        async with engine.begin() as conn:
            yield conn

    async def unit(name: str, first: int, then: int, other: str) -> str:
        async def work(conn: AsyncConnection) -> str:
            runs[name] += 1
            await conn.execute(text("UPDATE probe SET n = n + 1 WHERE id = :i"), {"i": first})
            holds[name].set()
            await holds[other].wait()
            await conn.execute(text("UPDATE probe SET n = n + 1 WHERE id = :i"), {"i": then})
            return name

        return await run_again_if_aborted(begin, work, attempts=attempts)

    done = await asyncio.gather(unit("a", 1, 2, "b"), unit("b", 2, 1, "a"), return_exceptions=True)
    return list(done), runs


async def test_a_unit_of_work_aborted_to_break_a_deadlock_runs_again(engine: AsyncEngine) -> None:
    done, runs = await _crossed(engine, attempts=4)
    assert done == ["a", "b"]
    assert sorted(runs.values()) == [1, 2]  # the server aborted one; it ran once more
    async with engine.connect() as conn:
        counts = dict((await conn.execute(text("SELECT id, n FROM probe"))).all())
    assert counts == {1: 2, 2: 2}  # each unit's updates committed once, the aborted run's none


async def test_without_a_second_run_the_deadlock_is_raised(engine: AsyncEngine) -> None:
    done, runs = await _crossed(engine, attempts=1)
    failed = [d for d in done if isinstance(d, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], DBAPIError)
    assert aborted(failed[0]) == "deadlock detected"
    assert sorted(runs.values()) == [1, 1]
    assert aborted(ValueError("no database error")) is None
