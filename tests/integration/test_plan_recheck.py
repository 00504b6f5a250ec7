"""A unit of work of ingestion plans before it takes its locks, then checks under them
that what it read is unchanged, and plans again if not (mdm/services/ingest/locking.py).

Each test stops one unit of work between its plan and its locks (its `lock` waits
for an event), commits another transaction that changes what the plan read, and
lets the first one go on: it must decide as a unit of work that took its locks
first would have, on what was stored when it took them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mdm.adapters.matching import MatchStore
from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.bootstrap import load_rules, make_engine
from mdm.domain.mastering import MasteringRules
from mdm.services.context import RequestContext
from mdm.services.ingest import Accepted, IncomingRecord, delete_record, ingest_records
from mdm.services.lifecycle import merge_goldens
from tests.support import scratch_database

RULES: MasteringRules = load_rules()


@pytest.fixture
async def engine(server_database_url: str) -> AsyncIterator[AsyncEngine]:
    async with scratch_database(server_database_url) as url:
        engine = make_engine(url, pool_size=3)
        # The model stored first: a paused unit of work must not hold its first row.
        async with engine.begin() as conn:
            await RULES.models.current(MatchStore(conn), "worker")
        yield engine
        await engine.dispose()


class PausedBeforeLocks(SqlUnitOfWork):
    """A unit of work whose first `lock` (taken once its plan is made) tells `planned`
    and waits for `go`."""

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self.planned = asyncio.Event()
        self.go = asyncio.Event()

    async def lock(self, names: Iterable[str]) -> None:
        if not self.planned.is_set():
            self.planned.set()
            await self.go.wait()
        await super().lock(names)


async def put(engine: AsyncEngine, source: str, source_id: str, **attributes: Any) -> Accepted:
    async with engine.begin() as conn:
        (result,) = await ingest_records(
            SqlUnitOfWork(conn),
            RULES,
            "worker",
            source,
            [IncomingRecord(source_id, attributes)],
            RequestContext(),
        )
    assert isinstance(result, Accepted)
    return result


async def put_interrupted(
    engine: AsyncEngine, meanwhile: Any, source: str, source_id: str, **attributes: Any
) -> tuple[Accepted, list[str]]:
    """PUT a worker record, running `meanwhile(engine)` (its own committed transaction)
    after the record's plan is made and before its locks are taken; the result and
    the entities of the re-plans."""
    replans: list[str] = []
    async with engine.begin() as conn:
        uow = PausedBeforeLocks(conn)
        ingest = asyncio.create_task(
            ingest_records(
                uow,
                RULES,
                "worker",
                source,
                [IncomingRecord(source_id, attributes)],
                RequestContext(),
                replans=replans.append,
            )
        )
        await asyncio.wait_for(uow.planned.wait(), 30)
        await asyncio.wait_for(meanwhile(engine), 30)
        uow.go.set()
        (result,) = await ingest
    assert isinstance(result, Accepted)
    return result, replans


async def golden_of(engine: AsyncEngine, source: str, source_id: str) -> str:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT golden_id FROM source_record WHERE source = :s AND source_id = :i"),
            {"s": source, "i": source_id},
        )
    assert isinstance(found, str)
    return found


async def active_goldens(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM golden_record WHERE status = 'active'")
        )
    return int(found or 0)


ANNA = {"given_name": "Anna", "family_name": "Achterberg"}


async def test_a_record_sharing_a_key_committed_meanwhile_is_linked_to(
    engine: AsyncEngine,
) -> None:
    """Planned alone, the record would make a new golden record; the same person came
    in from another source before its locks were taken: it links to that one."""

    async def psa_sends_her(engine: AsyncEngine) -> None:
        await put(engine, "psa", "P-1", **ANNA, national_id="81000001", email="anna@example.com")

    result, replans = await put_interrupted(
        engine, psa_sends_her, "hcm", "H-1", **ANNA, national_id="81000001"
    )
    assert result.outcome == "linked"
    assert result.golden_id == await golden_of(engine, "psa", "P-1")
    assert await active_goldens(engine) == 1
    assert replans == ["worker"]


async def test_a_merge_of_the_golden_records_the_plan_used_is_seen(engine: AsyncEngine) -> None:
    """The record shares an identifier with each of two golden records (planned alone:
    an ambiguous strong-key link, with a warning naming both); a steward merged them
    before its locks were taken: it links to the survivor, unambiguously."""
    first = await put(
        engine, "hcm", "H-1", **ANNA, national_id="81000002", date_of_birth="1970-01-01"
    )
    second = await put(
        engine, "erp", "E-1", **ANNA, email="anna.a@example.com", date_of_birth="1985-06-15"
    )
    assert first.golden_id != second.golden_id  # two people, as far as the model can tell
    survivor, loser = sorted([first.golden_id, second.golden_id])

    async def steward_merges_them(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await merge_goldens(
                SqlUnitOfWork(conn),
                RULES,
                "worker",
                survivor,
                [loser],
                "steward@example.com",
                "one person",
                RequestContext(),
            )

    result, replans = await put_interrupted(
        engine,
        steward_merges_them,
        "psa",
        "P-1",
        **ANNA,
        national_id="81000002",
        email="anna.a@example.com",
    )
    assert (result.outcome, result.golden_id) == ("linked", survivor)
    assert not [w for w in result.warnings if w["code"] == "ambiguous_match"], result.warnings
    async with engine.connect() as conn:
        rule = await conn.scalar(
            text("SELECT link_rule FROM source_record WHERE source_id = 'P-1'")
        )
    assert rule == "strong_key"
    assert await active_goldens(engine) == 1
    assert replans == ["worker"]


async def test_a_candidate_deleted_meanwhile_is_not_linked_to(engine: AsyncEngine) -> None:
    """The record shares an identifier with a golden record whose only source record
    was deleted before its locks were taken: it gets a golden record of its own, not
    the retired one."""
    old = await put(engine, "hcm", "H-1", **ANNA, national_id="81000003")

    async def hcm_deletes_her(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await delete_record(
                SqlUnitOfWork(conn), RULES, "worker", "hcm", "H-1", RequestContext()
            )

    result, replans = await put_interrupted(
        engine, hcm_deletes_her, "psa", "P-1", **ANNA, national_id="81000003"
    )
    assert result.outcome == "created"
    assert result.golden_id != old.golden_id
    async with engine.connect() as conn:
        status = await conn.scalar(
            text("SELECT status FROM golden_record WHERE golden_id = :g"), {"g": old.golden_id}
        )
    assert status == "retired"
    assert await active_goldens(engine) == 1
    assert replans == ["worker"]


async def test_a_change_to_other_keys_needs_no_second_plan(engine: AsyncEngine) -> None:
    """Another person committed meanwhile (whatever buckets her keys share): the plan
    holds, and is applied as made."""

    async def someone_else(engine: AsyncEngine) -> None:
        await put(
            engine,
            "psa",
            "P-9",
            given_name="Jonas",
            family_name="Brandauer",
            national_id="92000009",
            email="jonas@example.com",
        )

    result, replans = await put_interrupted(
        engine, someone_else, "hcm", "H-1", **ANNA, national_id="81000004"
    )
    assert replans == []
    assert result.outcome == "created"
    assert await active_goldens(engine) == 2


async def test_every_writer_of_match_keys_counts_its_changes(engine: AsyncEngine) -> None:
    """Ingesting, deleting and merging each count changes in their keys' buckets."""

    async def counted() -> int:
        async with engine.connect() as conn:
            return int(
                await conn.scalar(text("SELECT coalesce(sum(changes), 0) FROM match_key_change"))
                or 0
            )

    assert await counted() == 0
    a = await put(engine, "hcm", "H-1", **ANNA, national_id="81000005")
    after_ingest = await counted()
    assert after_ingest > 0
    b = await put(engine, "erp", "E-1", given_name="Clara", family_name="Dreyfus")
    after_second = await counted()
    async with engine.begin() as conn:
        await merge_goldens(
            SqlUnitOfWork(conn),
            RULES,
            "worker",
            a.golden_id,
            [b.golden_id],
            "s",
            None,
            RequestContext(),
        )
    after_merge = await counted()
    assert after_merge > after_second > after_ingest
    async with engine.begin() as conn:
        await delete_record(SqlUnitOfWork(conn), RULES, "worker", "erp", "E-1", RequestContext())
    assert await counted() > after_merge
