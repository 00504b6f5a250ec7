"""Review events, and closing the tasks that no longer ask anything.

A task's events (`review.opened`, then a `review.resolved` per decision) go to
the outbox ordered by the task. The matcher opens tasks (`announce_opened`); a
task is withdrawn (`withdraw`: superseded, no steward's decision) when a newer
model puts its pair below the review band, or when its two golden records were
merged into one (mdm.services.lifecycle.merge_goldens): either way the question
is answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from mdm.domain.ids import new_event_id
from mdm.domain.ports import UnitOfWork
from mdm.services.context import RequestContext
from schemas.events import Causation, ReviewEvent, ReviewPayload


def review_event(
    task: Mapping[str, Any],
    type_: Literal["review.opened", "review.resolved"],
    version: int,
    status: str,
    ctx: RequestContext,
    cause: Causation,
    *,
    decision: str | None = None,
    comment: str | None = None,
    survivor_id: str | None = None,
) -> ReviewEvent:
    return ReviewEvent(
        event_id=new_event_id(),
        type=type_,
        entity=task["entity"],
        review_id=task["id"],
        version=version,
        golden_id=task["golden_id"],
        candidate_id=task["candidate_id"],
        occurred_at=ctx.received_at,
        correlation_id=ctx.correlation_id,
        causation=cause,
        payload=ReviewPayload(
            status=status,  # type: ignore[arg-type]
            reason=task["reason"],
            source=task["source"],
            source_id=task["source_id"],
            probability=task["probability"],
            weight=task["weight"],
            decision=decision,  # type: ignore[arg-type]
            comment=comment,
            survivor_id=survivor_id,
        ),
    )


async def announce_opened(
    uow: UnitOfWork, tasks: Sequence[Mapping[str, Any]], ctx: RequestContext
) -> None:
    """review.opened for tasks the matcher just stored (each row has its id and source)."""
    await uow.outbox.append(
        [
            review_event(
                t,
                "review.opened",
                1,
                "open",
                ctx,
                Causation(kind="source_record", source=t["source"], source_id=t["source_id"]),
            )
            for t in tasks
        ]
    )


async def withdraw(
    uow: UnitOfWork, task: Mapping[str, Any], actor: str, why: str, ctx: RequestContext
) -> None:
    """Close an undecided task that no longer asks anything (the matcher re-scored its
    pair under a newer model below the review band, or its golden records were merged):
    superseded, with no steward's decision, and its review.resolved event carries the
    system's reason."""
    await uow.reviews.set_status([task["id"]], "superseded", actor, why, ctx.received_at)
    # The task's events count its opening and each decision; this closing is one more.
    version = 2 + await uow.reviews.decision_count(task["id"])
    cause = Causation(kind="system", actor=actor, reason=why, review_id=task["id"])
    event = review_event(task, "review.resolved", version, "superseded", ctx, cause, comment=why)
    await uow.outbox.append([event])


async def withdraw_answered(
    uow: UnitOfWork,
    survivor_id: str,
    tasks: Sequence[Mapping[str, Any]],
    actor: str,
    ctx: RequestContext,
) -> None:
    """Withdraw `tasks` (ReviewStore.undecided_within, locked before the merge locked its
    golden records), undecided review tasks between golden records a merge into
    `survivor_id` made one: the records they ask about now share a golden record, so
    they ask nothing."""
    for task in tasks:
        why = f"{task['golden_id']} and {task['candidate_id']} were merged into {survivor_id}"
        await withdraw(uow, task, actor, why, ctx)
