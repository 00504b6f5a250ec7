"""The review queue: list, read side by side, assign, decide (one or many)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from mdm.adapters.reviews import ReviewSort
from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.api.actor import actor_of
from mdm.api.auth import Permission, requires
from mdm.api.context import request_context
from mdm.api.openapi import UNKNOWN_ENTITY, problem
from mdm.api.problems import field_errors, status_of
from mdm.bootstrap import Hub
from mdm.domain.errors import Conflict, MdmError, ValidationFailed
from mdm.domain.sources import check_entity
from mdm.domain.stored import ReviewFilter
from mdm.services.reviews import Decided, assign, decide, task_detail
from schemas.api import (
    MAX_AGE_HOURS,
    MAX_ID,
    MAX_OFFSET,
    AssignRequest,
    BulkDecisionItemResult,
    BulkDecisionRequest,
    BulkDecisionResponse,
    DecisionRequest,
    DecisionResult,
    Problem,
    ReviewDecisionView,
    ReviewRecord,
    ReviewSide,
    ReviewTaskDetail,
    ReviewTaskList,
    ReviewTaskView,
)

TaskId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
_VIEW_FIELDS = set(ReviewTaskView.__struct_fields__)


def task_view(row: dict[str, Any]) -> ReviewTaskView:
    return ReviewTaskView(**{k: v for k, v in row.items() if k in _VIEW_FIELDS})


def decision_view(row: dict[str, Any]) -> ReviewDecisionView:
    return ReviewDecisionView(**row)


def _result(d: Decided) -> DecisionResult:
    return DecisionResult(
        task_id=d.task_id,
        status=d.status,  # type: ignore[arg-type]
        decision=d.decision,  # type: ignore[arg-type]
        decision_id=d.decision_id,
        survivor_id=d.survivor_id,
        version=d.version,
        kept_apart=d.kept_apart,
    )


def _superseded(d: Decided) -> Conflict:
    return Conflict(f"review task {d.task_id} is superseded: {d.superseded_why}")


class ReviewController(Controller):
    path = "/v1/reviews"
    tags = ["stewardship"]

    @get(
        "", operation_id="list_reviews", opt=requires(Permission.STEWARD), responses=UNKNOWN_ENTITY
    )
    async def list_reviews(
        self,
        hub: NamedDependency[Hub],
        entity: Annotated[str | None, QueryParameter(max_length=32)] = None,
        status: Annotated[
            Literal["open", "merged", "not_a_match", "deferred", "superseded", "undecided", "any"],
            QueryParameter(description="`undecided` = open or deferred"),
        ] = "open",
        min_probability: Annotated[float | None, QueryParameter(ge=0, le=1)] = None,
        max_probability: Annotated[float | None, QueryParameter(ge=0, le=1)] = None,
        min_age_hours: Annotated[float | None, QueryParameter(ge=0, le=MAX_AGE_HOURS)] = None,
        max_age_hours: Annotated[float | None, QueryParameter(ge=0, le=MAX_AGE_HOURS)] = None,
        assignee: Annotated[
            str | None, QueryParameter(max_length=200, description="`-` = unassigned")
        ] = None,
        golden_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
        sort: Annotated[ReviewSort, QueryParameter()] = "created_at",
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> ReviewTaskList:
        """Review tasks, filtered, sorted and paged (oldest first by default)."""
        if entity is not None:
            check_entity(entity)
        statuses = {
            "undecided": ("open", "deferred"),
            "any": (),
        }.get(status, (status,))
        now = dt.datetime.now(dt.UTC)
        f = ReviewFilter(
            entity=entity,
            statuses=statuses,
            min_probability=min_probability,
            max_probability=max_probability,
            created_before=now - dt.timedelta(hours=min_age_hours) if min_age_hours else None,
            created_after=now - dt.timedelta(hours=max_age_hours)
            if max_age_hours is not None
            else None,
            assignee="" if assignee == "-" else assignee,
            golden_id=golden_id,
        )
        async with hub.reader() as uow:
            rows, total = await uow.reviews.tasks(f, sort, limit, offset)
        return ReviewTaskList(
            tasks=[task_view(r) for r in rows], total=total, limit=limit, offset=offset
        )

    @get("/{task_id:int}", operation_id="get_review", opt=requires(Permission.STEWARD))
    async def get_review(self, hub: NamedDependency[Hub], task_id: TaskId) -> ReviewTaskDetail:
        """One task: both golden records side by side, what differs, and the waterfall."""
        async with hub.reader() as uow:
            found = await task_detail(uow, task_id)
        left, right = (
            ReviewSide(
                **{k: v for k, v in side.items() if k != "records"},
                records=[ReviewRecord(**r) for r in side["records"]],
            )
            for side in found.sides
        )
        return ReviewTaskDetail(
            task=task_view(found.task),
            left=left,
            right=right,
            different=found.different,
            decidable=found.decidable,
            decisions=[decision_view(d) for d in found.decisions],
        )

    @post(
        "/{task_id:int}/assign",
        operation_id="assign_review",
        opt=requires(Permission.STEWARD),
        responses={409: problem("The task is already decided")},
        status_code=200,
    )
    async def assign_review(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        task_id: TaskId,
        data: JSONBody[AssignRequest],
    ) -> ReviewTaskView:
        """Assign the task to a steward, or release it (`assignee`: null)."""
        actor_of(request, data.actor or data.assignee)
        row = await hub.unit_of_work(
            lambda uow: assign(uow, task_id, data.assignee, request_context(request))
        )
        return task_view(row)

    @post(
        "/{task_id:int}/decision",
        operation_id="decide_review",
        opt=requires(Permission.STEWARD),
        status_code=200,
        responses={409: problem("The task is already decided, or superseded by a change")},
    )
    async def decide_review(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        task_id: TaskId,
        data: JSONBody[DecisionRequest],
    ) -> DecisionResult:
        """Decide: `merge` the two golden records, `not_a_match` (never proposed again), or
        `defer`. A task whose golden records changed meanwhile answers 409 (superseded)."""
        actor = actor_of(request, data.actor)
        decided = await hub.unit_of_work(
            lambda uow: decide(
                uow,
                hub.rules,
                task_id,
                data.decision,
                actor,
                data.comment,
                request_context(request),
            )
        )
        if decided.status == "superseded":
            raise _superseded(decided)  # after the commit: the task stays superseded
        return _result(decided)

    @post(
        "/decisions",
        operation_id="decide_reviews",
        opt=requires(Permission.STEWARD),
        status_code=200,
    )
    async def decide_reviews(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        data: JSONBody[BulkDecisionRequest],
    ) -> BulkDecisionResponse:
        """Decide many tasks at once; each succeeds or fails on its own, with its own problem."""
        actor = actor_of(request, data.actor)
        ctx = request_context(request)

        async def work(uow: SqlUnitOfWork) -> list[BulkDecisionItemResult]:
            results: list[BulkDecisionItemResult] = []
            for index, item in enumerate(data.decisions):
                comment = item.comment if item.comment is not None else data.comment
                try:
                    # A savepoint per task: a failing one leaves the others decided.
                    async with uow.conn.begin_nested():
                        decided = await decide(
                            uow, hub.rules, item.task_id, item.decision, actor, comment, ctx
                        )
                    if decided.status == "superseded":
                        raise _superseded(decided)
                    results.append(
                        BulkDecisionItemResult(
                            index=index, task_id=item.task_id, ok=True, result=_result(decided)
                        )
                    )
                except MdmError as exc:
                    errors = field_errors(exc.errors) if isinstance(exc, ValidationFailed) else None
                    problem = Problem(
                        title=exc.title,
                        status=status_of(exc),
                        detail=exc.detail,
                        instance=f"$.decisions[{index}]",
                        errors=errors,
                    )
                    results.append(
                        BulkDecisionItemResult(
                            index=index, task_id=item.task_id, ok=False, error=problem
                        )
                    )
            return results

        results = await hub.unit_of_work(work)
        decided_count = sum(1 for r in results if r.ok)
        return BulkDecisionResponse(
            results=results, decided=decided_count, failed=len(results) - decided_count
        )
