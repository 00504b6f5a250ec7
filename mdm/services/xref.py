"""Registering a source system's id for a golden record it did not send us.

A subscriber that creates the thing in its own system (the ERP creates the
customer the CRM mastered) tells the hub its new id, which closes the
cross-system id loop: the id becomes a source record without attributes, linked
to that golden record, so every xref lookup answers it and survivorship is
unchanged. The golden record gets a new version with an xref.linked event.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdm.domain.errors import Conflict, NotFound
from mdm.domain.golden import XrefDelta
from mdm.domain.mastering import MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.stored import SourceRecordWrite, StoredSourceRecord
from mdm.services.context import RequestContext
from mdm.services.events import Touch, record_changes
from mdm.services.ingest.prepare import IncomingRecord, content_hash
from schemas.events import Causation

#: How the source record was linked (source_record.link_rule).
REGISTERED = "registered"


@dataclass(frozen=True, slots=True)
class Registered:
    golden_id: str
    outcome: str  # "linked", or "unchanged" when that id was already linked there
    version: int


async def register_xref(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    golden_id: str,
    source: str,
    source_id: str,
    ctx: RequestContext,
) -> Registered:
    """Link `source`'s `source_id` to an active golden record, in the caller's transaction.

    Registering the same link again changes nothing. An id already linked to
    another golden record, or a merged or retired target, is a Conflict:
    moving a link between golden records is a steward's decision.
    """
    rules.authorize_write(source, entity)  # checks the entity type too
    # Same lock name as ingestion, so a concurrent PUT of this source record waits.
    await uow.lock([f"sr:{entity}:{source}:{source_id}"])
    goldens = await uow.records.lock_goldens([golden_id])
    golden = goldens.get(golden_id)
    if golden is None or golden.entity != entity:
        raise NotFound(f"no {entity} golden record {golden_id!r}")
    current = (await uow.records.source_records(entity, source, [source_id])).get(source_id)
    if current is not None and current.deleted_at is None:
        if current.golden_id == golden_id:
            return Registered(golden_id, "unchanged", golden.version)
        raise Conflict(
            f"{source} {entity} {source_id!r} is linked to {current.golden_id}, not {golden_id}; "
            "a steward moves links (unmerge)"
        )
    if golden.status == "merged":
        raise Conflict(f"{golden_id} was merged into {golden.merged_into}; register there")
    if golden.status != "active":
        raise Conflict(f"{golden_id} is {golden.status}")
    await uow.records.write_source_records(
        [_write(entity, source, source_id, golden_id, current, ctx)]
    )
    touch = Touch(
        xrefs=XrefDelta(linked=frozenset({(source, source_id)})),
        cause=Causation(kind="source_record", source=source, source_id=source_id),
    )
    changes = await record_changes(uow, rules, entity, {golden_id: touch}, ctx, goldens)
    return Registered(golden_id, "linked", changes.versions[golden_id])


def _write(
    entity: str,
    source: str,
    source_id: str,
    golden_id: str,
    current: StoredSourceRecord | None,
    ctx: RequestContext,
) -> SourceRecordWrite:
    """The attribute-less source record; a deleted one with this id comes back as it."""
    empty = IncomingRecord(source_id=source_id, attributes={})
    return SourceRecordWrite(
        id=current.id if current else None,
        entity=entity,
        source=source,
        source_id=source_id,
        golden_id=golden_id,
        raw={},
        standardized={},
        warnings=[],
        # The hash of "no attributes": a later full PUT of this record is a change.
        content_hash=content_hash(empty),
        version=(current.version if current else 0) + 1,
        source_updated_at=None,
        received_at=ctx.received_at,
        link_rule=REGISTERED,
    )
