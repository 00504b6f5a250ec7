"""Random sequences of ingest, update, delete, merge and unmerge against the real database.

After every step the invariants of ARCHITECTURE.md are checked on what
PostgreSQL holds: each source record belongs to exactly one golden record and a
live one to an active golden record; golden ids are never reused; redirects lead
in one hop to a record that is not merged; versions only grow and every version
has exactly one history row and one outbox event; a merge followed by the
unmerge of what it moved restores both records' cross-references.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, ClassVar, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mdm.adapters.tables import metadata
from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.bootstrap import load_rules
from mdm.services.context import RequestContext
from mdm.services.ingest import Accepted, IncomingRecord, delete_record, ingest_records
from mdm.services.lifecycle import merge_goldens, unmerge_records
from tests.integration.machines import run_machine

T = TypeVar("T")
RULES = load_rules()
SOURCES = st.sampled_from(["hcm", "psa", "erp"])
SOURCE_IDS = st.sampled_from(["1", "2", "3", "4", "5"])
PEOPLE = st.integers(min_value=0, max_value=3)  # few e-mails, so records link often
TITLES = st.sampled_from(["Consultant", "Manager", None])


class LifecycleMachine(RuleBasedStateMachine):
    runner: ClassVar[asyncio.Runner]
    engine: ClassVar[AsyncEngine]

    def __init__(self) -> None:
        super().__init__()
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        self.sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        self.seen: set[str] = set()
        self.versions: dict[str, int] = {}

    # -- helpers ---------------------------------------------------------------

    def run(self, coro: Awaitable[T]) -> T:
        return self.runner.run(coro)  # type: ignore[arg-type]

    def sql(self, statement: str, **params: Any) -> list[Any]:
        async def go() -> list[Any]:
            async with self.engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return list(result) if result.returns_rows else []

        return self.run(go())

    def in_transaction(self, work: Any) -> Any:
        async def go() -> Any:
            async with self.engine.begin() as conn:
                return await work(SqlUnitOfWork(conn))

        return self.run(go())

    def new_id(self, golden_id: str) -> None:
        assert golden_id not in self.seen, f"golden id {golden_id} was reused"
        self.seen.add(golden_id)

    def active_goldens(self) -> list[str]:
        return [
            r[0]
            for r in self.sql(
                "SELECT golden_id FROM golden_record WHERE status = 'active' ORDER BY golden_id"
            )
        ]

    def members(self, golden_id: str) -> list[tuple[str, str, bool]]:
        return [
            tuple(r)
            for r in self.sql(
                "SELECT source, source_id, deleted_at IS NULL FROM source_record "
                "WHERE golden_id = :g ORDER BY source, source_id",
                g=golden_id,
            )
        ]

    def live_xrefs(self, golden_id: str) -> set[tuple[str, str]]:
        return {(s, i) for s, i, live in self.members(golden_id) if live}

    # -- rules -----------------------------------------------------------------

    @rule(source=SOURCES, source_id=SOURCE_IDS, person=PEOPLE, title=TITLES)
    def ingest(self, source: str, source_id: str, person: int, title: str | None) -> None:
        attributes: dict[str, Any] = {
            "family_name": f"Person{person}",
            "email": f"p{person}@example.com",
        }
        if title:
            attributes["job_title"] = title
        record = IncomingRecord(source_id=source_id, attributes=attributes)
        (result,) = self.in_transaction(
            lambda repo: ingest_records(repo, RULES, "worker", source, [record], RequestContext())
        )
        assert isinstance(result, Accepted)
        if result.outcome == "created":
            self.new_id(result.golden_id)
        assert result.golden_id in self.seen

    @rule(source=SOURCES, source_id=SOURCE_IDS)
    def delete(self, source: str, source_id: str) -> None:
        exists = self.sql(
            "SELECT 1 FROM source_record WHERE source = :s AND source_id = :i",
            s=source,
            i=source_id,
        )
        if not exists:
            return
        result = self.in_transaction(
            lambda repo: delete_record(repo, RULES, "worker", source, source_id, RequestContext())
        )
        assert result.outcome in {"deleted", "unchanged"}

    @precondition(lambda self: len(self.active_goldens()) >= 2)
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        survivor, loser = data.draw(
            st.lists(st.sampled_from(self.active_goldens()), min_size=2, max_size=2, unique=True)
        )
        self.in_transaction(
            lambda repo: merge_goldens(
                repo, RULES, "worker", survivor, [loser], "steward", "test", RequestContext()
            )
        )

    @rule(data=st.data())
    def unmerge(self, data: st.DataObject) -> None:
        candidates = [g for g in self.active_goldens() if len(self.live_xrefs(g)) >= 2]
        if not candidates:
            return
        golden_id = data.draw(st.sampled_from(candidates))
        live = sorted(self.live_xrefs(golden_id))
        chosen = data.draw(
            st.lists(st.sampled_from(live), min_size=1, max_size=len(live) - 1, unique=True)
        )
        result = self.in_transaction(
            lambda repo: unmerge_records(
                repo, RULES, "worker", golden_id, chosen, "steward", "test", RequestContext()
            )
        )
        if not result.restored:
            self.new_id(result.split_golden_id)
        assert self.live_xrefs(result.split_golden_id) == set(chosen)

    @precondition(lambda self: len(self.active_goldens()) >= 2)
    @rule(data=st.data())
    def merge_then_unmerge_restores(self, data: st.DataObject) -> None:
        survivor, loser = data.draw(
            st.lists(st.sampled_from(self.active_goldens()), min_size=2, max_size=2, unique=True)
        )
        before = {g: self.members(g) for g in (survivor, loser)}
        self.in_transaction(
            lambda repo: merge_goldens(
                repo, RULES, "worker", survivor, [loser], "steward", "test", RequestContext()
            )
        )
        moved = [(s, i) for s, i, _ in before[loser]]
        result = self.in_transaction(
            lambda repo: unmerge_records(
                repo, RULES, "worker", survivor, moved, "steward", "undo", RequestContext()
            )
        )
        assert result.restored and result.split_golden_id == loser
        assert {g: self.members(g) for g in (survivor, loser)} == before

    # -- invariants --------------------------------------------------------------

    @invariant()
    def every_source_record_in_one_fitting_golden_record(self) -> None:
        bad = self.sql(
            "SELECT s.source, s.source_id, g.status FROM source_record s "
            "JOIN golden_record g ON g.golden_id = s.golden_id "
            "WHERE (s.deleted_at IS NULL AND g.status <> 'active') OR g.status = 'merged'"
        )
        assert bad == []
        empty_active = self.sql(
            "SELECT g.golden_id FROM golden_record g WHERE g.status = 'active' AND NOT EXISTS "
            "(SELECT 1 FROM source_record s WHERE s.golden_id = g.golden_id "
            " AND s.deleted_at IS NULL)"
        )
        assert empty_active == []

    @invariant()
    def live_records_and_only_they_have_match_keys(self) -> None:
        # a deleted record's keys go (Repository.mark_deleted), a restored one's return
        bad = self.sql(
            "SELECT m.key FROM match_key m LEFT JOIN source_record s ON s.id = m.source_record_id "
            "WHERE s.id IS NULL OR s.deleted_at IS NOT NULL"
        )
        assert bad == []
        live_without_keys = self.sql(
            "SELECT s.id FROM source_record s WHERE s.deleted_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM match_key m WHERE m.source_record_id = s.id)"
        )
        assert live_without_keys == []

    @invariant()
    def redirects_lead_to_a_record_that_is_not_merged(self) -> None:
        bad = self.sql(
            "SELECT g.golden_id FROM golden_record g JOIN golden_record t "
            "ON t.golden_id = g.merged_into WHERE t.status = 'merged'"
        )
        assert bad == []

    @invariant()
    def ids_are_kept_and_versions_grow_with_one_event_each(self) -> None:
        rows = self.sql(
            "SELECT g.golden_id, g.version, "
            " (SELECT count(*) FROM golden_record_history h WHERE h.golden_id = g.golden_id), "
            " (SELECT count(*) FROM outbox o WHERE o.golden_id = g.golden_id), "
            " (SELECT max(version) FROM outbox o WHERE o.golden_id = g.golden_id) "
            "FROM golden_record g"
        )
        now = {golden_id for golden_id, *_ in rows}
        assert self.seen <= now, "a golden id disappeared"
        for golden_id, version, history, events, last_event in rows:
            assert version == history == events == last_event, golden_id
            assert version >= self.versions.get(golden_id, 0), golden_id
            self.versions[golden_id] = version


def test_lifecycle_state_machine(database_url: str) -> None:
    run_machine(LifecycleMachine, database_url, max_examples=200, steps=10)
