"""Recording golden-record changes: survivorship, the new versions, their history and
outbox events, and the golden records whose references the change moved."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from mdm.domain.golden import GoldenChange, GoldenRecord, XrefDelta
from mdm.domain.ids import new_event_id
from mdm.domain.mastering import MasteringRules, Survivorship
from mdm.domain.ports import UnitOfWork
from mdm.domain.survivorship import NO_OVERRIDES, Contribution, Overrides, Survived
from mdm.services.context import RequestContext
from mdm.services.references import ReferenceResolution
from schemas.events import Causation, Event, EventReference, EventXref, GoldenPayload

Cause = Causation
SYSTEM_CAUSE = Causation(kind="system")


@dataclass(frozen=True, slots=True)
class Touch:
    """What happened to one golden record in this unit of work."""

    xrefs: XrefDelta = field(default_factory=XrefDelta)
    cause: Causation = SYSTEM_CAUSE
    event_type: str | None = None  # forced type (golden.merged, golden.unmerged)
    merged_into: str | None = None  # set: this record lost a merge to that one
    merged_from: tuple[str, ...] = ()
    split_into: str | None = None
    split_from: str | None = None


@dataclass(frozen=True, slots=True)
class GoldenChangeSet:
    versions: dict[str, int]  # golden id -> its version after the change
    events: list[Event]
    # golden id -> new version of each golden record of another record's references
    # that the change moved (it names a record that was merged, split, deleted, ...)
    referrers: dict[str, int] = field(default_factory=dict)


async def record_changes(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    touches: Mapping[str, Touch],
    ctx: RequestContext,
    preloaded: Mapping[str, GoldenRecord] | None = None,
    fresh: Mapping[str, list[Contribution]] | None = None,
    follow: bool = True,
) -> GoldenChangeSet:
    """Rerun survivorship for every touched golden record (all of `entity`) and
    persist what changed.

    Each changed golden record gets exactly one new version, one history row and
    one outbox event, all in the caller's transaction (ARCHITECTURE.md invariant 2).
    `preloaded` holds golden records the caller created or already locked.
    The rules give the survivorship and the sensitive attributes (built in and
    configured): those stay out of the events, the history keeps them. Taking
    the rules rather than the two parts means no path can event with the
    sensitive set forgotten (docs/security.md). `fresh` holds the live source
    records of golden records created in this unit of work (all of them written in
    it, so there is nothing to read back, and no pins or ignores yet).

    Then, with `follow` (every use case's call), the golden records whose
    references name what the change moved get their new versions and events in
    the same way (`_follow_references`, answered in `referrers`): the one step
    by which any golden-record change is recorded, so none can skip a part.
    """
    survivorship, withhold = rules.survivorship_for(entity), rules.sensitive
    golden_ids = sorted(touches)
    known = dict(preloaded or {})
    goldens = await uow.records.lock_goldens([g for g in golden_ids if g not in known])
    goldens.update(known)
    fresh = fresh or {}
    stored = [g for g in golden_ids if g not in fresh]
    contributions = await uow.records.contributions(stored)
    overrides = await uow.overrides.overrides(stored)
    for golden_id in golden_ids:
        if golden_id in fresh:
            contributions[golden_id] = fresh[golden_id]
            overrides[golden_id] = NO_OVERRIDES
    references = await ReferenceResolution.prepare(uow, goldens, contributions, overrides)
    changed, history, events = [], [], []
    for golden_id in golden_ids:
        golden, touch = goldens[golden_id], touches[golden_id]
        live = contributions[golden_id]
        change: GoldenChange | None
        if touch.merged_into is not None:
            change = golden.mark_merged(touch.merged_into)
        else:
            survive = references.survivorship(
                golden_id, golden.entity, _bound(survivorship, overrides[golden_id])
            )
            change = golden.recompute(live, survive, touch.xrefs, touch.event_type)
        if change is None:
            continue
        event = _event(
            golden, change, live, touch, ctx, withhold, references.event_references(golden_id)
        )
        changed.append(golden)
        events.append(event)
        history.append(
            {
                "golden_id": golden_id,
                "version": change.version,
                "status": golden.status,
                "attributes": golden.attributes,
                "provenance": golden.provenance,
                "xrefs": msgspec.to_builtins(event.payload.xrefs),
                "changed": change.changed,
                "event_type": change.event_type,
                "cause": msgspec.to_builtins(touch.cause),
                "changed_at": ctx.received_at,
            }
        )
    await uow.records.save_goldens(changed, history, ctx.received_at)
    await uow.outbox.append(events)
    await references.save(uow, {g: goldens[g] for g in golden_ids}, ctx, created=fresh.keys())
    versions = {g.golden_id: g.version for g in goldens.values()}
    referrers = await _follow_references(uow, rules, entity, touches, ctx) if follow else {}
    return GoldenChangeSet(versions=versions, events=events, referrers=referrers)


def _bound(
    survivorship: Survivorship, overrides: Overrides
) -> Callable[[Sequence[Contribution]], Survived]:
    return lambda contributions: survivorship(contributions, overrides)


def _event(
    golden: GoldenRecord,
    change: GoldenChange,
    live: Sequence[Contribution],
    touch: Touch,
    ctx: RequestContext,
    withhold: frozenset[str],
    references: dict[str, EventReference],
) -> Event:
    attributes = {k: v for k, v in golden.attributes.items() if k not in withhold}
    return Event(
        event_id=new_event_id(),
        type=change.event_type,  # type: ignore[arg-type]
        entity=golden.entity,
        golden_id=golden.golden_id,
        version=change.version,
        occurred_at=ctx.received_at,
        correlation_id=ctx.correlation_of(touch.cause),
        causation=touch.cause,
        payload=GoldenPayload(
            status=golden.status,
            attributes=attributes,
            changed=change.changed,
            withheld=sorted(k for k in golden.attributes if k in withhold),
            xrefs=[EventXref(source=c.source, source_id=c.source_id) for c in live],
            merged_from=list(touch.merged_from),
            merged_into=touch.merged_into,
            split_into=touch.split_into,
            split_from=touch.split_from,
            references=references,
        ),
    )


async def _follow_references(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    touches: Mapping[str, Touch],
    ctx: RequestContext,
) -> dict[str, int]:
    """Recompute the golden records whose references the `touches` may have changed.

    `touches` are the changes a unit of work just recorded for golden records of
    `entity` (a record arrived, moved in a merge or unmerge, was deleted or
    registered). A pending reference to such a record resolves, one to a
    merged-away record now names the survivor, an unmerge re-points by the
    source's id; each referrer that changed gets a new version and an event with
    the cause of the change that moved what it names (a merge's names its
    merge_id). Resolution itself happens in every recomputation
    (mdm/services/references.py). Answers the new version of each referrer.
    """
    keys = {
        (entity, source, source_id)
        for touch in touches.values()
        for source, source_id in touch.xrefs.linked | touch.xrefs.unlinked
    }
    gone = [g for g, t in touches.items() if t.merged_into is not None]
    if not keys and not gone:
        return {}
    found = await uow.relationships.referrers(keys, gone)
    # Each referrer's change has the cause of the change that moved what it names.
    by_key = {
        (entity, source, source_id): touch.cause
        for _, touch in sorted(touches.items())
        for source, source_id in sorted(touch.xrefs.linked | touch.xrefs.unlinked)
    }
    referrers: dict[str, tuple[str, Causation]] = {}
    for r in found:
        if r.golden_id in touches or r.golden_id in referrers:
            continue
        cause = by_key.get(r.target) or touches.get(r.target_golden_id or "", Touch()).cause
        referrers[r.golden_id] = (r.entity, cause)
    if not referrers:
        return {}
    versions: dict[str, int] = {}
    by_entity: dict[str, dict[str, Touch]] = {}
    for golden_id, (referring_entity, cause) in referrers.items():
        by_entity.setdefault(referring_entity, {})[golden_id] = Touch(cause=cause)
    for referring_entity, group in sorted(by_entity.items()):
        changes = await record_changes(uow, rules, referring_entity, group, ctx, follow=False)
        versions.update({e.golden_id: e.version for e in changes.events})
    return versions
