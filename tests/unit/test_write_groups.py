"""Group commit (mdm/services/ingest/group.py) on the in-memory unit of work: how
writes are gathered into groups, and what their callers are told when the hub stops
mid-group. The same behaviour against PostgreSQL: tests/integration/test_group_commit.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from mdm.bootstrap import load_rules
from mdm.services.context import RequestContext
from mdm.services.ingest import Accepted, IncomingRecord
from mdm.services.ingest.group import Answered, GroupCommit, SingleWrite
from tests.unit.memory_uow import MemoryUnits


def _respond(result: Accepted) -> tuple[int, bytes]:
    return 200, msgspec.json.encode({"golden_id": result.golden_id, "outcome": result.outcome})


def _put(source_id: str, name: str) -> SingleWrite:
    record = IncomingRecord(source_id, {"name": name})
    return SingleWrite("crm", source_id, record, RequestContext(), _respond)


async def test_groups_hold_at_most_max_group_writes_in_arrival_order() -> None:
    units = MemoryUnits()
    committer = GroupCommit(units.run, load_rules(), max_group=2)
    sizes: list[int] = []
    committer.observers.append(lambda _entity, n: sizes.append(n))
    writes = [_put(f"M-{i}", f"Member Firm {i}") for i in range(5)]
    answers = await asyncio.gather(*(committer.submit("customer", w) for w in writes))
    assert sizes == [2, 2, 1]
    assert units.commits == 3
    assert [msgspec.json.decode(a.body)["outcome"] for a in answers] == ["created"] * 5
    assert sorted(r.source_id for r in units.state.live_rows()) == [f"M-{i}" for i in range(5)]


async def test_a_lone_write_is_not_held_back() -> None:
    units = MemoryUnits()
    committer = GroupCommit(units.run, load_rules())
    answer = await asyncio.wait_for(committer.submit("customer", _put("L-1", "Lone Ltd")), 5)
    assert isinstance(answer, Answered) and answer.status == 200


async def test_writes_of_other_sources_are_other_groups() -> None:
    units = MemoryUnits()
    committer = GroupCommit(units.run, load_rules())
    sizes: list[int] = []
    committer.observers.append(lambda _entity, n: sizes.append(n))
    erp = SingleWrite(
        "erp", "E-1", IncomingRecord("E-1", {"name": "Erp Firm"}), RequestContext(), _respond
    )
    await asyncio.gather(
        committer.submit("customer", _put("S-1", "Crm Firm")), committer.submit("customer", erp)
    )
    assert sorted(sizes) == [1, 1]


async def test_a_stopping_hub_cancels_the_group_in_flight_and_the_writes_queued() -> None:
    """Cancelled mid-transaction (the hub stopping): nothing commits, and every caller
    is told it was cancelled rather than left waiting for ever."""
    units = MemoryUnits()
    entered, never = asyncio.Event(), asyncio.Event()

    async def run_unit(work: Callable[[Any], Awaitable[Any]]) -> Any:
        async def held(uow: Any) -> Any:
            result = await work(uow)
            entered.set()
            await never.wait()  # the commit that does not come
            return result

        return await units.run(held)

    committer = GroupCommit(run_unit, load_rules())
    first = asyncio.create_task(committer.submit("customer", _put("C-1", "In Flight Ltd")))
    await asyncio.wait_for(entered.wait(), 5)
    queued = [
        asyncio.create_task(committer.submit("customer", _put(f"Q-{i}", f"Queued {i} Ltd")))
        for i in range(2)
    ]
    await asyncio.sleep(0)
    (drain,) = committer._draining.values()
    drain.cancel()
    for task in (first, *queued):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    assert units.commits == 0 and not list(units.state.live_rows())
    assert not committer._draining
