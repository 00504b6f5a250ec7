"""Recompute touched golden records and write their versions, history and outbox events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from mdm.adapters.repository import Repository
from mdm.domain.golden import GoldenRecord, XrefDelta
from mdm.services.context import RequestContext
from schemas.events import Causation, Event, EventXref, GoldenPayload

Cause = Causation


@dataclass(frozen=True, slots=True)
class GoldenChangeSet:
    versions: dict[str, int]  # golden id -> its version after the change
    events: list[Event]


async def record_changes(
    repo: Repository,
    system_of_record: str | None,
    deltas: Mapping[str, XrefDelta],
    causes: Mapping[str, Causation],
    ctx: RequestContext,
    new_goldens: Mapping[str, GoldenRecord] | None = None,
) -> GoldenChangeSet:
    """Rerun survivorship for every golden record in `deltas` and persist what changed.

    Each changed golden record gets exactly one new version, one history row and
    one outbox event, all in the caller's transaction (ARCHITECTURE.md invariant 2).
    """
    golden_ids = sorted(deltas)
    fresh = new_goldens or {}
    goldens = await repo.lock_goldens([g for g in golden_ids if g not in fresh])
    goldens.update(fresh)
    contributions = await repo.contributions(golden_ids)
    changed, history, outbox_rows, events = [], [], [], []
    for golden_id in golden_ids:
        golden = goldens[golden_id]
        live = contributions[golden_id]
        change = golden.recompute(live, system_of_record, deltas[golden_id])
        if change is None:
            continue
        xrefs = [EventXref(source=c.source, source_id=c.source_id) for c in live]
        cause = causes.get(golden_id, Causation(kind="system"))
        event = Event(
            event_id=str(uuid.uuid4()),
            type=change.event_type,  # type: ignore[arg-type]
            entity=golden.entity,
            golden_id=golden_id,
            version=change.version,
            occurred_at=ctx.received_at,
            correlation_id=ctx.correlation_id,
            causation=cause,
            payload=GoldenPayload(
                status=golden.status,
                attributes=golden.attributes,
                changed=change.changed,
                xrefs=xrefs,
            ),
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
                "xrefs": msgspec.to_builtins(xrefs),
                "changed": change.changed,
                "event_type": change.event_type,
                "cause": msgspec.to_builtins(cause),
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
    versions = {g.golden_id: g.version for g in goldens.values()}
    return GoldenChangeSet(versions=versions, events=events)
