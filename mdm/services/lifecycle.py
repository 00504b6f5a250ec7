"""Merging golden records and unmerging source records out of them.

Both are steward decisions: audited (who, when, why) in the merge_event table,
in each golden record's history and in the events they publish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mdm.domain.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from mdm.domain.golden import GoldenRecord, XrefDelta
from mdm.domain.ids import new_golden_id
from mdm.domain.mastering import MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.sources import check_entity
from mdm.services.context import RequestContext
from mdm.services.events import Touch, record_changes
from mdm.services.review_events import withdraw_answered
from schemas.events import Causation


@dataclass(frozen=True, slots=True)
class MergeResult:
    survivor_id: str
    version: int
    merged: list[str]
    merge_id: int
    moved: int


@dataclass(frozen=True, slots=True)
class UnmergeResult:
    golden_id: str
    version: int
    split_golden_id: str
    split_version: int
    restored: bool  # the split-off records went back to the id they had before a merge


async def lock_active(
    uow: UnitOfWork, entity: str, golden_ids: Sequence[str]
) -> dict[str, GoldenRecord]:
    goldens = await uow.records.lock_goldens(sorted(set(golden_ids)))
    for golden_id in golden_ids:
        golden = goldens.get(golden_id)
        if golden is None or golden.entity != entity:
            raise NotFound(f"no {entity} golden record {golden_id!r}")
        if golden.status == "merged":
            raise Conflict(f"{golden_id} was merged into {golden.merged_into}; act on that one")
        if golden.status != "active":
            raise Conflict(f"{golden_id} is {golden.status}")
    return goldens


async def merge_goldens(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    survivor_id: str,
    loser_ids: Sequence[str],
    actor: str,
    reason: str | None,
    ctx: RequestContext,
    *,
    review_id: int | None = None,
    cause_kind: Literal["steward", "system"] = "steward",
) -> MergeResult:
    """Merge `loser_ids` into `survivor_id`: the survivor keeps its id, losers redirect.

    `review_id` names the review task whose decision this merge is (in the events);
    `cause_kind` "system" is a merge the hub decided (re-matching, actor "matcher").
    Undecided review tasks between the merged golden records are withdrawn (they ask
    about records that now share a golden record), except when the merge is a review
    decision: `reviews.decide` closes the tasks it answers, with audit rows of its own.
    """
    check_entity(entity)
    losers = sorted(set(loser_ids))
    if not losers:
        raise ValidationFailed("nothing to merge", [FieldProblem("$.loser_ids", "empty")])
    if survivor_id in losers:
        raise Conflict(f"{survivor_id} cannot be merged into itself")
    # The review tasks this merge answers are locked before the golden records: the
    # order review decisions and re-matching runs lock them in (no deadlock).
    answered = (
        await uow.reviews.undecided_within([survivor_id, *losers])
        if review_id is None  # a review decision closes the tasks it answers itself
        else []
    )
    goldens = await lock_active(uow, entity, [survivor_id, *losers])
    store = uow.merges
    before = [m.record_id for m in await store.members(survivor_id)]
    moved = await store.move_all(losers, survivor_id)
    await store.repoint_redirects(losers, survivor_id)
    await uow.overrides.inherit_pins(losers, survivor_id)
    # The steward says these are one: earlier not-a-match decisions between them no longer hold.
    await store.clear_not_a_match(before, [m.record_id for m in moved])
    merge_id = await store.record_merge(
        entity, survivor_id, losers, moved, actor, reason, ctx.received_at
    )
    cause = Causation(
        kind=cause_kind, actor=actor, reason=reason, review_id=review_id, merge_id=merge_id
    )
    linked = frozenset((m.source, m.source_id) for m in moved if not m.deleted)
    touches = {
        survivor_id: Touch(
            xrefs=XrefDelta(linked=linked),
            cause=cause,
            event_type="golden.merged",
            merged_from=tuple(losers),
        ),
        **{loser: Touch(cause=cause, merged_into=survivor_id) for loser in losers},
    }
    changes = await record_changes(uow, rules, entity, touches, ctx, goldens)
    await withdraw_answered(uow, survivor_id, answered, actor, ctx)
    return MergeResult(
        survivor_id=survivor_id,
        version=changes.versions[survivor_id],
        merged=losers,
        merge_id=merge_id,
        moved=len(moved),
    )


async def unmerge_records(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    golden_id: str,
    records: Sequence[tuple[str, str]],
    actor: str,
    reason: str | None,
    ctx: RequestContext,
) -> UnmergeResult:
    """Take source records out of a golden record and keep them apart from it.

    If all of them came in by one merge whose loser still redirects here, they
    go back to that id (undoing the merge exactly); otherwise they get a new id.
    """
    check_entity(entity)
    goldens = await lock_active(uow, entity, [golden_id])
    store = uow.merges
    members = await store.members(golden_id)
    by_key = {(m.source, m.source_id): m for m in members}
    wanted = sorted(set(records))
    missing = [k for k in wanted if k not in by_key]
    if missing:
        raise NotFound(f"not in {golden_id}: " + ", ".join(f"{s}:{i}" for s, i in missing))
    selected = [by_key[k] for k in wanted]
    remaining = [m for m in members if (m.source, m.source_id) not in set(wanted)]
    if not any(not m.deleted for m in remaining):
        raise Conflict("an unmerge must leave at least one live source record behind")

    origins = await store.origins(golden_id, [m.record_id for m in selected])
    sources = {origins.get(m.record_id) for m in selected}
    target: GoldenRecord | None = None
    restored = False
    if len(sources) == 1 and (origin := sources.pop()) is not None:
        previous = (await uow.records.lock_goldens([origin])).get(origin)
        if previous is not None and previous.merged_into == golden_id:
            target, restored = previous, True
    if target is None:
        target = GoldenRecord.new(new_golden_id(entity), entity)

    await store.move([m.record_id for m in selected], target.golden_id)
    if restored:
        await uow.overrides.drop_inherited(golden_id, target.golden_id)
    await store.add_not_a_match(
        ((s.record_id, r.record_id) for s in selected for r in remaining),
        actor,
        reason,
        ctx.received_at,
    )
    cause = Causation(kind="steward", actor=actor, reason=reason)
    split = frozenset((m.source, m.source_id) for m in selected if not m.deleted)
    touches = {
        golden_id: Touch(
            xrefs=XrefDelta(unlinked=split),
            cause=cause,
            event_type="golden.unmerged",
            split_into=target.golden_id,
        ),
        target.golden_id: Touch(
            xrefs=XrefDelta(linked=split),
            cause=cause,
            event_type="golden.unmerged" if restored else None,
            split_from=golden_id,
        ),
    }
    changes = await record_changes(
        uow,
        rules,
        entity,
        touches,
        ctx,
        {golden_id: goldens[golden_id], target.golden_id: target},
    )
    return UnmergeResult(
        golden_id=golden_id,
        version=changes.versions[golden_id],
        split_golden_id=target.golden_id,
        split_version=changes.versions[target.golden_id],
        restored=restored,
    )
