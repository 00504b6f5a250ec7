"""The stewards' review queue: read tasks, assign them, decide them.

A decision calls the existing lifecycle services (a merge is
`merge_goldens`, a not-a-match is the same not_a_match pairs an unmerge
stores) in the caller's transaction, together with the task's status change,
its audit row (review_decision: who, when, the comment) and its
`review.resolved` event. A task whose golden records were merged or retired
meanwhile is superseded: it is closed as such, never decided twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mdm.domain.errors import Conflict, NotFound
from mdm.domain.mastering import MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.stored import UNDECIDED
from mdm.services.context import RequestContext
from mdm.services.lifecycle import merge_goldens
from mdm.services.review_events import review_event
from schemas.events import Causation

Decision = Literal["merge", "not_a_match", "defer"]
_STATUS: dict[str, str] = {"merge": "merged", "not_a_match": "not_a_match", "defer": "deferred"}


# -- reading ---------------------------------------------------------------------------


def _different(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(left) | set(right) if left.get(k) != right.get(k))


@dataclass(frozen=True, slots=True)
class TaskDetail:
    task: dict[str, Any]
    sides: tuple[dict[str, Any], dict[str, Any]]
    different: list[str]
    decidable: bool
    decisions: list[dict[str, Any]]


async def task_detail(uow: UnitOfWork, task_id: int) -> TaskDetail:
    store = uow.reviews
    task = await store.task(task_id)
    if task is None:
        raise NotFound(f"no review task {task_id}")
    sides = []
    for golden_id in (task["golden_id"], task["candidate_id"]):
        golden = await uow.records.golden(golden_id)
        if golden is None:
            raise NotFound(f"review task {task_id} names an unknown golden record {golden_id}")
        records = await store.records(golden_id)
        sides.append(
            {
                "golden_id": golden_id,
                "status": golden.status,
                "version": golden.version,
                "merged_into": golden.merged_into,
                "attributes": golden.attributes,
                "provenance": golden.provenance,
                "records": [
                    {
                        "source": r["source"],
                        "source_id": r["source_id"],
                        "attributes": r["standardized"],
                        "under_review": r["id"] == task["record_id"],
                    }
                    for r in records
                ],
            }
        )
    left, right = sides
    decidable = (
        task["status"] in UNDECIDED and left["status"] == "active" and right["status"] == "active"
    )
    return TaskDetail(
        task=task,
        sides=(left, right),
        different=_different(left["attributes"], right["attributes"]),
        decidable=decidable,
        decisions=await store.decisions(task_id=task_id),
    )


# -- deciding --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decided:
    task_id: int
    status: str  # the task's status now (superseded if it could not be decided)
    decision: str
    decision_id: int
    survivor_id: str | None = None
    version: int | None = None
    kept_apart: int | None = None
    superseded_why: str | None = None
    also_superseded: list[int] = field(default_factory=list)


async def _close(
    uow: UnitOfWork,
    task: Mapping[str, Any],
    decision: str,
    status: str,
    actor: str,
    comment: str | None,
    outcome: dict[str, Any],
    ctx: RequestContext,
    cause: Causation,
) -> int:
    """Status change, audit row and review.resolved event of one task."""
    store = uow.reviews
    await store.set_status([task["id"]], status, actor, comment, ctx.received_at)
    decision_id = await store.add_decision(
        {
            "task_id": task["id"],
            "entity": task["entity"],
            "golden_id": task["golden_id"],
            "candidate_id": task["candidate_id"],
            "decision": decision,
            "status": status,
            "actor": actor,
            "comment": comment,
            "outcome": outcome,
            "created_at": ctx.received_at,
        }
    )
    version = 1 + await store.decision_count(task["id"])
    event = review_event(
        task,
        "review.resolved",
        version,
        status,
        ctx,
        cause,
        decision=decision,
        comment=comment,
        survivor_id=outcome.get("survivor_id"),
    )
    await uow.outbox.append([event])
    return decision_id


async def decide(
    uow: UnitOfWork,
    rules: MasteringRules,
    task_id: int,
    decision: Decision,
    actor: str,
    comment: str | None,
    ctx: RequestContext,
) -> Decided:
    """Apply a steward's decision to one review task (in the caller's transaction)."""
    store = uow.reviews
    task = await store.task(task_id, lock=True)
    if task is None:
        raise NotFound(f"no review task {task_id}")
    if task["status"] not in UNDECIDED:
        raise Conflict(f"review task {task_id} is already {task['status']}")
    cause = Causation(kind="steward", actor=actor, reason=comment, review_id=task_id)
    left, right = task["golden_id"], task["candidate_id"]
    goldens = await uow.records.lock_goldens(sorted({left, right}))
    gone = [g for g in (left, right) if g not in goldens or goldens[g].status != "active"]
    if gone or left == right:
        why = "; ".join(
            f"{g} was merged into {goldens[g].merged_into}"
            if g in goldens and goldens[g].merged_into
            else f"{g} is {goldens[g].status if g in goldens else 'unknown'}"
            for g in gone
        )
        outcome: dict[str, Any] = {"superseded": why}
        decision_id = await _close(
            uow, task, decision, "superseded", actor, comment, outcome, ctx, cause
        )
        return Decided(task_id, "superseded", decision, decision_id, superseded_why=why)

    outcome = {}
    survivor: str | None = None
    version: int | None = None
    kept_apart: int | None = None
    if decision == "merge":
        # The older golden record keeps its id (ids begin with their creation time).
        survivor, loser = min(left, right), max(left, right)
        merged = await merge_goldens(
            uow,
            rules,
            task["entity"],
            survivor,
            [loser],
            actor,
            comment,
            ctx,
            review_id=task_id,
        )
        version = merged.version
        outcome = {"survivor_id": survivor, "merged": [loser], "merge_id": merged.merge_id}
    elif decision == "not_a_match":
        merges = uow.merges
        a = [m.record_id for m in await merges.members(left)]
        b = [m.record_id for m in await merges.members(right)]
        pairs = [(x, y) for x in a for y in b]
        await merges.add_not_a_match(pairs, actor, comment, ctx.received_at)
        kept_apart = len(pairs)
        outcome = {"kept_apart": kept_apart}
    status = _STATUS[decision]
    decision_id = await _close(uow, task, decision, status, actor, comment, outcome, ctx, cause)

    # Other tasks about the same two golden records are answered by this one.
    also: list[int] = []
    if decision != "defer":
        for other in await store.undecided_between(left, right, exclude=task_id):
            note = {"superseded": f"decided by review task {task_id} ({decision})"}
            await _close(uow, other, decision, "superseded", actor, comment, note, ctx, cause)
            also.append(other["id"])
    return Decided(
        task_id,
        status,
        decision,
        decision_id,
        survivor_id=survivor,
        version=version,
        kept_apart=kept_apart,
        also_superseded=also,
    )


async def assign(
    uow: UnitOfWork, task_id: int, assignee: str | None, ctx: RequestContext
) -> dict[str, Any]:
    store = uow.reviews
    task = await store.task(task_id, lock=True)
    if task is None:
        raise NotFound(f"no review task {task_id}")
    if task["status"] not in UNDECIDED:
        raise Conflict(f"review task {task_id} is already {task['status']}")
    await store.assign(task_id, assignee, ctx.received_at)
    found = await store.task(task_id)
    assert found is not None
    return found
