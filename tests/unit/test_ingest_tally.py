"""What an ingesting unit of work counts for the dashboard's history (mdm.services.ingest
`apply_plan`, through the Tallies port), on the in-memory unit of work."""

from __future__ import annotations

import pytest

from mdm.bootstrap import load_rules
from mdm.domain.errors import FieldProblem
from mdm.services.context import RequestContext
from mdm.services.ingest import Accepted, IncomingRecord, Rejected, ingest_records
from mdm.services.ingest.apply import outcome_counts
from tests.integration.review_data import pair
from tests.unit.memory_uow import MemoryUnits

RULES = load_rules()


def test_a_record_a_steward_will_compare_counts_as_review_whatever_its_outcome() -> None:
    results: list[Accepted | Rejected] = [
        Accepted("w1", "created"),
        Accepted("w2", "created", review=["w1"]),
        Accepted("w3", "linked", review=["w4"]),
        Accepted("w3", "linked"),
        Accepted("w5", "unchanged"),
        Rejected([FieldProblem("$.family_name", "blank")]),
    ]
    assert outcome_counts(results, refused=2) == {
        "created": 1,
        "review": 2,
        "linked": 1,
        "unchanged": 1,
        "rejected": 3,
    }
    assert outcome_counts([]) == {}


async def test_a_unit_of_work_counts_its_records_once_and_only_if_it_commits() -> None:
    units = MemoryUnits()
    hcm, psa = pair(0)
    ctx = RequestContext()
    async with units.transaction() as uow:
        await ingest_records(
            uow,
            RULES,
            "worker",
            "hcm",
            [IncomingRecord("H-0", hcm), IncomingRecord("H-1", {"given_name": " "})],
            ctx,
            refused=1,
        )
    async with units.transaction() as uow:
        await ingest_records(uow, RULES, "worker", "psa", [IncomingRecord("P-0", psa)], ctx)
    assert units.state.tallies == [
        (ctx.received_at, "worker", "hcm", "created", 1),
        (ctx.received_at, "worker", "hcm", "rejected", 2),
        (ctx.received_at, "worker", "psa", "review", 1),
    ]

    with pytest.raises(RuntimeError):
        async with units.transaction() as uow:
            await ingest_records(
                uow, RULES, "worker", "hcm", [IncomingRecord("H-0", hcm)], RequestContext()
            )
            raise RuntimeError("the unit of work fails after ingesting")
    assert len(units.state.tallies) == 3
