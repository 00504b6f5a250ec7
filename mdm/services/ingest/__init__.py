"""Ingesting source records: prepare, plan, apply, in one unit of work.

- `prepare` (mdm/services/ingest/prepare.py): schema check, standardization,
  strong keys, match features; no database;
- `plan` (plan.py): under the locks, who links to what: golden records, merges,
  review tasks; reads only;
- `apply` (apply.py): the writes, ending in `record_changes`
  (mdm/services/events.py): survivorship, versions, history, events.

One call is one unit of work: the caller owns the transaction, so a batch's
records, its golden versions, their history rows and their outbox events commit
together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from mdm.domain.errors import NotFound
from mdm.domain.golden import XrefDelta
from mdm.domain.mastering import MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.services.context import RequestContext
from mdm.services.events import Cause, GoldenChangeSet, Touch, record_changes
from mdm.services.ingest.apply import apply_plan
from mdm.services.ingest.plan import Accepted, plan_records
from mdm.services.ingest.prepare import IncomingRecord, PreparedRecord, Rejected
from mdm.services.matcher import PoolSource


async def ingest_records(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    source: str,
    records: Sequence[IncomingRecord],
    ctx: RequestContext,
    candidates: PoolSource | None = None,
    prepared_records: Sequence[PreparedRecord | Rejected] | None = None,
    refused: int = 0,
) -> list[Accepted | Rejected]:
    """Upsert `records` of `source` for `entity`; one result per record, in order.

    `candidates` replaces the database's blocking index as the source of candidate
    golden records (a bulk load keeps the index in memory: mdm.adapters.bulk_index).
    `prepared_records` is `prepare_records(entity, records, ...)` done already
    (elsewhere); features prepared for another model version than the one in
    force are prepared again. `refused`: records of the same request that never
    reached here (invalid batch items), counted as rejected with the others.

    It is `plan_records` (locks, reads, matching: who links to what) followed by
    `apply_plan` (the writes), in the caller's transaction.
    """
    plan = await plan_records(
        uow, rules, entity, source, records, ctx, candidates, prepared_records
    )
    plan.refused = refused
    return await apply_plan(uow, rules, plan, ctx)


async def delete_record(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    source: str,
    source_id: str,
    ctx: RequestContext,
) -> Accepted:
    """Mark a source record deleted and recompute (or retire) its golden record."""
    rules.authorize_write(source, entity)
    await uow.lock([f"sr:{entity}:{source}:{source_id}"])
    current = (await uow.records.source_records(entity, source, [source_id])).get(source_id)
    if current is None:
        raise NotFound(f"{source} has no {entity} record {source_id!r}")
    if current.deleted_at is not None:
        version = (await uow.records.golden_versions([current.golden_id]))[current.golden_id]
        return Accepted(current.golden_id, "unchanged", version)
    await uow.records.mark_deleted(current.id, ctx.received_at)
    cause = Cause(kind="source_record", source=source, source_id=source_id)
    touch = Touch(xrefs=XrefDelta(unlinked=frozenset({(source, source_id)})), cause=cause)
    changes: GoldenChangeSet = await record_changes(
        uow, rules, entity, {current.golden_id: touch}, ctx
    )
    return Accepted(current.golden_id, "deleted", changes.versions[current.golden_id])


__all__ = [
    "Accepted",
    "IncomingRecord",
    "PreparedRecord",
    "Rejected",
    "delete_record",
    "ingest_records",
]
