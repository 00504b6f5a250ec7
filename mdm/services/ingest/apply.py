"""Ingestion, step 3 of 3: apply (the writes).

A `Plan` (mdm.services.ingest.plan) written in the caller's unit of work: source
records and their keys, review tasks, the matcher's merges, then the golden
records' new versions with history and events (mdm.services.events.record_changes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from matching.scoring import ClusterScore
from mdm.domain.golden import GoldenRecord, XrefDelta
from mdm.domain.mastering import MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.survivorship import Contribution
from mdm.services.context import RequestContext
from mdm.services.events import SYSTEM_CAUSE, Cause, Touch, record_changes
from mdm.services.ingest.plan import Accepted, Plan, follow_redirects, take_locks
from mdm.services.ingest.prepare import Rejected
from mdm.services.matcher import (
    explanation,
)
from mdm.services.review_events import announce_opened


async def apply_plan(
    uow: UnitOfWork, rules: MasteringRules, plan: Plan, ctx: RequestContext
) -> list[Accepted | Rejected]:
    """Write what `plan_records` decided: source records, keys, review tasks, merges,
    golden versions with history and events (taking the plan's locks first if the
    plan did not)."""
    results = plan.results
    if plan.active is None:  # nothing to write: every record was rejected
        done = [r for r in results if r is not None]
        await uow.tallies.ingested(
            plan.entity, plan.source, ctx.received_at, outcome_counts(done, plan.refused)
        )
        return done
    entity, source, active = plan.entity, plan.source, plan.active
    if not plan.locked:
        await take_locks(uow, plan)
    writes, deltas, new_goldens = plan.writes, plan.deltas, plan.new_goldens
    reviews, db_merges, unchanged = plan.reviews, plan.db_merges, plan.unchanged
    keys_by_source_id = plan.keys_by_source_id
    # Lock the existing golden records this batch links to before writing. A
    # merge that committed after our candidate lookup has moved their records:
    # follow its redirect so nothing is linked to a merged-away record.
    db_losers = {loser for found in db_merges.values() for loser, _, _ in found}
    locked = await uow.records.lock_goldens(sorted((set(deltas) | db_losers) - new_goldens.keys()))
    redirect = {g: r.merged_into for g, r in locked.items() if r.merged_into is not None}
    if redirect:
        locked.update(
            await uow.records.lock_goldens(sorted(set(redirect.values()) - locked.keys()))
        )
        writes, deltas = follow_redirects(redirect, writes, deltas)
        for r in results:
            if isinstance(r, Accepted) and r.golden_id in redirect:
                r.golden_id = redirect[r.golden_id]

    if writes:
        ids = await uow.records.write_source_records(list(writes.values()))
        await uow.records.replace_match_keys(
            entity,
            {ids[sid]: keys for sid, keys in keys_by_source_id.items()},
            new={ids[w.source_id] for w in writes.values() if w.id is None},
        )
        tasks: list[dict[str, Any]] = [
            {
                "entity": entity,
                "record_id": ids[sid],
                "golden_id": redirect.get(golden_id, golden_id),
                "candidate_id": redirect.get(candidate, candidate),
                "reason": reason,
                "weight": score.weight,
                "probability": score.probability,
                "model_version": active.model.version,
                "explanation": explanation(score),
                "created_at": ctx.received_at,
            }
            for sid, golden_id, candidate, reason, score in reviews
            if redirect.get(golden_id, golden_id) != redirect.get(candidate, candidate)
        ]
        task_ids = await uow.matches.add_review_tasks(tasks)
        source_ids = {ids[sid]: sid for sid in writes}
        await announce_opened(
            uow,
            [
                {**t, "id": i, "source": source, "source_id": source_ids[t["record_id"]]}
                for t, i in zip(tasks, task_ids, strict=True)
            ],
            ctx,
        )
        causes = {
            w.golden_id: Cause(kind="source_record", source=source, source_id=w.source_id)
            for w in writes.values()
        }
        touches = {g: Touch(xrefs=d, cause=causes.get(g, SYSTEM_CAUSE)) for g, d in deltas.items()}
        for survivor, found in db_merges.items():
            touches.update(
                await _auto_merge(
                    uow, entity, source, survivor, found, locked, redirect, deltas, ctx
                )
            )
        fresh: dict[str, list[Contribution]] = {g: [] for g in new_goldens}
        for w in writes.values():  # in id order, as the database would answer
            if w.golden_id in fresh:
                fresh[w.golden_id].append(
                    Contribution(
                        ids[w.source_id],
                        source,
                        w.source_id,
                        w.standardized,
                        # as PostgreSQL answers a timestamptz: in UTC
                        w.source_updated_at.astimezone(dt.UTC) if w.source_updated_at else None,
                        w.received_at.astimezone(dt.UTC),
                    )
                )
        changes = await record_changes(
            uow, rules, entity, touches, ctx, {**locked, **new_goldens}, fresh=fresh
        )
        versions = changes.versions
    else:
        versions = {}
    missing = sorted({g for _, g in unchanged} - versions.keys())
    versions.update(await uow.records.golden_versions(missing))
    for r in results:
        if isinstance(r, Accepted):
            r.version = versions[r.golden_id]
    done = [r for r in results if r is not None]
    # Last, for the dashboard's history: one INSERT, no row another unit updates.
    await uow.tallies.ingested(entity, source, ctx.received_at, outcome_counts(done, plan.refused))
    return done


def outcome_counts(results: Sequence[Accepted | Rejected], refused: int = 0) -> dict[str, int]:
    """Records per outcome as the dashboard counts them: `review` for a record a steward
    will compare (whether it made a golden record or joined one), `rejected` for an
    invalid one (with `refused`, those of the request refused before the plan), else
    the ingest outcome (created, linked, unchanged)."""
    counts = {"rejected": refused} if refused else {}
    for r in results:
        key = "rejected" if isinstance(r, Rejected) else "review" if r.review else r.outcome
        counts[key] = counts.get(key, 0) + 1
    return counts


async def _auto_merge(
    uow: UnitOfWork,
    entity: str,
    source: str,
    survivor: str,
    found: Sequence[tuple[str, ClusterScore, str]],
    locked: Mapping[str, GoldenRecord],
    redirect: Mapping[str, str],
    deltas: Mapping[str, XrefDelta],
    ctx: RequestContext,
) -> dict[str, Touch]:
    """Merge existing golden records that match `survivor` on their own evidence.

    Like a steward's merge (mdm/services/lifecycle.py): records move, redirects,
    inherited pins, a merge_event (actor "matcher") that an unmerge can undo,
    golden.merged and golden.lost_merge events.
    """
    if survivor in redirect or survivor not in locked:
        return {}  # merged away meanwhile by someone else: leave it to a steward
    losers = sorted(
        {loser for loser, _, _ in found if loser in locked and locked[loser].status == "active"}
    )
    if not losers:
        return {}
    best, bridge = max(((own, b) for _, own, b in found), key=lambda x: x[0].probability)
    reason = (
        f"the golden records match on their own evidence (probability {best.probability:.6f}) "
        f"when {source}:{bridge} matched both"
    )
    store = uow.merges
    moved = await store.move_all(losers, survivor)
    await store.repoint_redirects(losers, survivor)
    await uow.overrides.inherit_pins(losers, survivor)
    merge_id = await store.record_merge(
        entity, survivor, losers, moved, "matcher", reason, ctx.received_at
    )
    cause = Cause(
        kind="source_record", source=source, source_id=bridge, reason=reason, merge_id=merge_id
    )
    delta = deltas.get(survivor, XrefDelta())
    linked = frozenset((m.source, m.source_id) for m in moved if not m.deleted)
    touches = {
        survivor: Touch(
            xrefs=XrefDelta(linked=delta.linked | linked, unlinked=delta.unlinked),
            cause=cause,
            event_type="golden.merged",
            merged_from=tuple(losers),
        )
    }
    touches.update({loser: Touch(cause=cause, merged_into=survivor) for loser in losers})
    return touches
