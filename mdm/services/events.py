"""Recompute touched golden records and write their versions, history and outbox events."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from mdm.adapters.overrides import OverrideStore
from mdm.adapters.repository import Repository
from mdm.domain.golden import GoldenChange, GoldenRecord, XrefDelta
from mdm.domain.ids import new_event_id
from mdm.domain.mastering import MasteringRules, Survivorship
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


async def record_changes(
    repo: Repository,
    rules: MasteringRules,
    entity: str,
    touches: Mapping[str, Touch],
    ctx: RequestContext,
    preloaded: Mapping[str, GoldenRecord] | None = None,
    fresh: Mapping[str, list[Contribution]] | None = None,
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
    """
    survivorship, withhold = rules.survivorship_for(entity), rules.sensitive
    golden_ids = sorted(touches)
    known = dict(preloaded or {})
    goldens = await repo.lock_goldens([g for g in golden_ids if g not in known])
    goldens.update(known)
    fresh = fresh or {}
    stored = [g for g in golden_ids if g not in fresh]
    contributions = await repo.contributions(stored)
    overrides = await OverrideStore(repo.conn).overrides(stored)
    for golden_id in golden_ids:
        if golden_id in fresh:
            contributions[golden_id] = fresh[golden_id]
            overrides[golden_id] = NO_OVERRIDES
    references = await ReferenceResolution.prepare(repo, goldens, contributions, overrides)
    changed, history, outbox_rows, events = [], [], [], []
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
        outbox_rows.append(
            {
                "event_id": event.event_id,
                "entity": event.entity,
                "golden_id": golden_id,
                "version": change.version,
                "type": event.type,
                "subject": event.subject,
                "envelope": msgspec.to_builtins(event),
                "occurred_at": ctx.received_at,
            }
        )
    await repo.save_goldens(changed, history, outbox_rows, ctx.received_at)
    await references.save(repo, {g: goldens[g] for g in golden_ids}, ctx, created=fresh.keys())
    versions = {g.golden_id: g.version for g in goldens.values()}
    return GoldenChangeSet(versions=versions, events=events)


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
        correlation_id=ctx.correlation_id,
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
