"""Reads and writes of the review queue: tasks, their decisions, and review events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.tables import review_decision, review_task, source_record
from mdm.domain.stored import UNDECIDED, ReviewFilter, ReviewSort


def _columns() -> list[Any]:
    rt, sr = review_task.c, source_record.c
    return [
        rt.id,
        rt.entity,
        sr.source,
        sr.source_id,
        rt.record_id,
        rt.golden_id,
        rt.candidate_id,
        rt.reason,
        rt.weight,
        rt.probability,
        rt.model_version,
        rt.explanation,
        rt.status,
        rt.created_at,
        rt.assigned_to,
        rt.assigned_at,
        rt.decided_at,
        rt.decided_by,
        rt.comment,
    ]


def _filtered(query: Select[Any], f: ReviewFilter) -> Select[Any]:
    rt = review_task.c
    if f.entity is not None:
        query = query.where(rt.entity == f.entity)
    if f.statuses:
        query = query.where(rt.status.in_(f.statuses))
    if f.min_probability is not None:
        query = query.where(rt.probability >= f.min_probability)
    if f.max_probability is not None:
        query = query.where(rt.probability <= f.max_probability)
    if f.created_before is not None:
        query = query.where(rt.created_at <= f.created_before)
    if f.created_after is not None:
        query = query.where(rt.created_at >= f.created_after)
    if f.assignee == "":
        query = query.where(rt.assigned_to.is_(None))
    elif f.assignee is not None:
        query = query.where(rt.assigned_to == f.assignee)
    if f.golden_id is not None:
        query = query.where(or_(rt.golden_id == f.golden_id, rt.candidate_id == f.golden_id))
    return query


_ORDER = {
    "created_at": (review_task.c.created_at, review_task.c.id),
    "-created_at": (review_task.c.created_at.desc(), review_task.c.id.desc()),
    "probability": (review_task.c.probability, review_task.c.id),
    "-probability": (review_task.c.probability.desc(), review_task.c.id),
    "id": (review_task.c.id,),
    "-id": (review_task.c.id.desc(),),
}


class ReviewStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def tasks(
        self, f: ReviewFilter, sort: ReviewSort, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of tasks and the number of tasks matching `f` on all pages."""
        rt, sr = review_task.c, source_record.c
        joined = review_task.join(source_record, sr.id == rt.record_id)
        page = _filtered(select(*_columns()).select_from(joined), f)
        rows = await self.conn.execute(page.order_by(*_ORDER[sort]).limit(limit).offset(offset))
        total = await self.conn.execute(_filtered(select(func.count()).select_from(review_task), f))
        return [dict(r._mapping) for r in rows], int(total.scalar_one())

    async def task(self, task_id: int, *, lock: bool = False) -> dict[str, Any] | None:
        rt, sr = review_task.c, source_record.c
        query = (
            select(*_columns())
            .select_from(review_task.join(source_record, sr.id == rt.record_id))
            .where(rt.id == task_id)
        )
        if lock:
            query = query.with_for_update(of=review_task)
        row = (await self.conn.execute(query)).first()
        return dict(row._mapping) if row else None

    async def assign(self, task_id: int, assignee: str | None, at: dt.datetime) -> None:
        await self.conn.execute(
            update(review_task)
            .where(review_task.c.id == task_id)
            .values(assigned_to=assignee, assigned_at=at if assignee else None)
        )

    async def set_status(
        self, task_ids: Sequence[int], status: str, actor: str, comment: str | None, at: dt.datetime
    ) -> None:
        await self.conn.execute(
            update(review_task)
            .where(review_task.c.id.in_(list(task_ids)))
            .values(status=status, decided_at=at, decided_by=actor, comment=comment)
        )

    async def undecided_between(self, a: str, b: str, exclude: int) -> list[dict[str, Any]]:
        """Other open or deferred tasks asking about the same two golden records, locked."""
        rt, sr = review_task.c, source_record.c
        rows = await self.conn.execute(
            select(*_columns())
            .select_from(review_task.join(source_record, sr.id == rt.record_id))
            .where(
                rt.id != exclude,
                rt.status.in_(UNDECIDED),
                or_(
                    and_(rt.golden_id == a, rt.candidate_id == b),
                    and_(rt.golden_id == b, rt.candidate_id == a),
                ),
            )
            .order_by(rt.id)
            .with_for_update(of=review_task)
        )
        return [dict(r._mapping) for r in rows]

    async def undecided_within(self, golden_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The open or deferred tasks both of whose golden records are among `golden_ids`,
        locked as `undecided_between` locks them."""
        ids = sorted(set(golden_ids))
        if len(ids) < 2:
            return []
        rt, sr = review_task.c, source_record.c
        rows = await self.conn.execute(
            select(*_columns())
            .select_from(review_task.join(source_record, sr.id == rt.record_id))
            .where(rt.status.in_(UNDECIDED), rt.golden_id.in_(ids), rt.candidate_id.in_(ids))
            .order_by(rt.id)
            .with_for_update(of=review_task)
        )
        return [dict(r._mapping) for r in rows]

    async def undecided_pairs(self, golden_ids: Sequence[str]) -> set[frozenset[str]]:
        """The pairs (golden id, candidate id) of the open or deferred tasks with a side
        among `golden_ids`, locked as `undecided_between` locks them, in one read."""
        if not golden_ids:
            return set()
        rt, sr = review_task.c, source_record.c
        ids = sorted(set(golden_ids))
        rows = await self.conn.execute(
            select(rt.golden_id, rt.candidate_id)
            .select_from(review_task.join(source_record, sr.id == rt.record_id))
            .where(
                rt.status.in_(UNDECIDED),
                or_(rt.golden_id.in_(ids), rt.candidate_id.in_(ids)),
            )
            .order_by(rt.id)
            .with_for_update(of=review_task)
        )
        return {frozenset((a, b)) for a, b in rows}

    async def add_decision(self, row: dict[str, Any]) -> int:
        result = await self.conn.execute(
            insert(review_decision).returning(review_decision.c.id), row
        )
        return int(result.scalar_one())

    async def decision_count(self, task_id: int) -> int:
        rd = review_decision.c
        result = await self.conn.execute(
            select(func.count()).select_from(review_decision).where(rd.task_id == task_id)
        )
        return int(result.scalar_one())

    async def decisions(
        self, *, task_id: int | None = None, golden_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Decisions on one task, or on every task naming one golden record; newest first."""
        rd = review_decision.c
        query = select(review_decision)
        if task_id is not None:
            query = query.where(rd.task_id == task_id)
        if golden_id is not None:
            query = query.where(or_(rd.golden_id == golden_id, rd.candidate_id == golden_id))
        rows = await self.conn.execute(query.order_by(rd.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]

    async def records(self, golden_id: str) -> list[dict[str, Any]]:
        """The live source records of a golden record with their standardized values."""
        sr = source_record.c
        rows = await self.conn.execute(
            select(sr.id, sr.source, sr.source_id, sr.standardized)
            .where(sr.golden_id == golden_id, sr.deleted_at.is_(None))
            .order_by(sr.id)
        )
        return [dict(r._mapping) for r in rows]
