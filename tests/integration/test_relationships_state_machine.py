"""Random sequences of customer writes, deletes, merges and unmerges under referring projects.

After every step, on what PostgreSQL holds: each active project's customer_ref
is the golden id of the live PSA customer record it names (absent while there
is none), its stored reference agrees, the pending list is exactly the
references without a live record, and every golden version still has one
history row and one outbox event.
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
CUSTOMER_IDS = st.sampled_from(["1", "2", "3", "4"])
COMPANIES = st.integers(min_value=0, max_value=2)  # few tax ids, so records link often
# Projects far apart in name, one PSA record each, so none of them link together.
PROJECTS = st.sampled_from(["Apollo rollout", "Zephyr audit", "Kestrel migration"])


class ReferenceMachine(RuleBasedStateMachine):
    runner: ClassVar[asyncio.Runner]
    engine: ClassVar[AsyncEngine]

    def __init__(self) -> None:
        super().__init__()
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        self.sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")

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

    def active_customers(self) -> list[str]:
        rows = self.sql(
            "SELECT golden_id FROM golden_record WHERE entity = 'customer' AND status = 'active' "
            "ORDER BY golden_id"
        )
        return [r[0] for r in rows]

    def live_xrefs(self, golden_id: str) -> list[tuple[str, str]]:
        rows = self.sql(
            "SELECT source, source_id FROM source_record WHERE golden_id = :g "
            "AND deleted_at IS NULL ORDER BY source, source_id",
            g=golden_id,
        )
        return [(r[0], r[1]) for r in rows]

    # -- rules -----------------------------------------------------------------

    @rule(source=st.sampled_from(["psa", "erp"]), source_id=CUSTOMER_IDS, company=COMPANIES)
    def customer(self, source: str, source_id: str, company: int) -> None:
        attributes = {"name": f"Company {company}", "tax_id": f"DE10000000{company}"}
        record = IncomingRecord(source_id=source_id, attributes=attributes)
        (result,) = self.in_transaction(
            lambda repo: ingest_records(repo, RULES, "customer", source, [record], RequestContext())
        )
        assert isinstance(result, Accepted)

    @rule(name=PROJECTS, customer_id=CUSTOMER_IDS)
    def project(self, name: str, customer_id: str) -> None:
        record = IncomingRecord(
            source_id=name.split()[0], attributes={"name": name, "customer_ref": customer_id}
        )
        (result,) = self.in_transaction(
            lambda repo: ingest_records(repo, RULES, "project", "psa", [record], RequestContext())
        )
        assert isinstance(result, Accepted)

    @rule(source_id=CUSTOMER_IDS)
    def delete_customer(self, source_id: str) -> None:
        if not self.sql(
            "SELECT 1 FROM source_record WHERE entity = 'customer' AND source = 'psa' "
            "AND source_id = :i",
            i=source_id,
        ):
            return
        self.in_transaction(
            lambda repo: delete_record(repo, RULES, "customer", "psa", source_id, RequestContext())
        )

    @precondition(lambda self: len(self.active_customers()) >= 2)
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        survivor, loser = data.draw(
            st.lists(st.sampled_from(self.active_customers()), min_size=2, max_size=2, unique=True)
        )
        self.in_transaction(
            lambda repo: merge_goldens(
                repo, RULES, "customer", survivor, [loser], "steward", None, RequestContext()
            )
        )

    @rule(data=st.data())
    def unmerge(self, data: st.DataObject) -> None:
        candidates = [g for g in self.active_customers() if len(self.live_xrefs(g)) >= 2]
        if not candidates:
            return
        golden_id = data.draw(st.sampled_from(candidates))
        live = self.live_xrefs(golden_id)
        chosen = data.draw(
            st.lists(st.sampled_from(live), min_size=1, max_size=len(live) - 1, unique=True)
        )
        self.in_transaction(
            lambda repo: unmerge_records(
                repo, RULES, "customer", golden_id, chosen, "steward", None, RequestContext()
            )
        )

    # -- invariants --------------------------------------------------------------

    @invariant()
    def every_project_names_the_current_golden_record_of_its_customer(self) -> None:
        rows = self.sql(
            "SELECT g.golden_id, g.attributes->>'customer_ref', r.target_golden_id, "
            "  r.source_id, (SELECT c.golden_id FROM source_record c WHERE c.entity = 'customer'"
            "   AND c.source = 'psa' AND c.source_id = s.standardized->>'customer_ref'"
            "   AND c.deleted_at IS NULL) "
            "FROM golden_record g "
            "JOIN source_record s ON s.golden_id = g.golden_id AND s.deleted_at IS NULL "
            "LEFT JOIN golden_reference r ON r.golden_id = g.golden_id "
            "WHERE g.entity = 'project' AND g.status = 'active'"
        )
        for project, attribute, stored, named, expected in rows:
            assert attribute == expected, (project, named)
            assert stored == expected, (project, named)
            assert named is not None  # every project states one
        pending = self.sql(
            "SELECT golden_id FROM golden_reference WHERE target_golden_id IS NULL ORDER BY 1"
        )
        assert [r[0] for r in pending] == sorted(p for p, _, _, _, e in rows if e is None)

    @invariant()
    def every_version_has_one_history_row_and_one_event(self) -> None:
        rows = self.sql(
            "SELECT g.golden_id, g.version, "
            " (SELECT count(*) FROM golden_record_history h WHERE h.golden_id = g.golden_id), "
            " (SELECT count(*) FROM outbox o WHERE o.golden_id = g.golden_id) "
            "FROM golden_record g"
        )
        for golden_id, version, history, events in rows:
            assert version == history == events, golden_id


def test_relationships_state_machine(database_url: str) -> None:
    run_machine(ReferenceMachine, database_url, max_examples=80, steps=12)
