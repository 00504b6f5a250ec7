"""Relationships: id translation, pending references, related records, data-quality exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from mdm.adapters.data_quality import find_exceptions
from mdm.adapters.relationships import RelationshipStore
from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.api.auth import Permission, requires
from mdm.api.openapi import UNKNOWN_ENTITY, problem
from mdm.api.params import SourceIdPath
from mdm.bootstrap import Hub
from mdm.domain.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from mdm.domain.relationships import RELATIONS
from mdm.domain.sources import check_entity
from mdm.domain.stored import Related
from schemas.api import MAX_OFFSET
from schemas.relationships import (
    DataQualityException,
    ExceptionRule,
    ExceptionsResponse,
    PendingReferences,
    PendingReferenceView,
    RelatedRecord,
    RelatedResponse,
    TranslateRequest,
    TranslateResponse,
    TranslateResult,
    Translation,
)

SystemPath = Annotated[str, PathParameter(min_length=1, max_length=64)]
MAX_DEPTH = 50
_RELATIONS_DESCRIPTION = "The entity's relation (another is a 422): " + "; ".join(
    f"{entity}: {', '.join(names)}" for entity, names in RELATIONS.items()
)


async def _target_ids(
    uow: SqlUnitOfWork, keys: Sequence[tuple[str, str, str, str]]
) -> tuple[dict[tuple[str, str, str], str], dict[str, dict[str, list[str]]]]:
    """(entity, source, source_id) -> golden id, and golden id -> system -> its ids."""
    found = await uow.records.golden_ids_for([(e, s, i) for e, s, i, _ in keys])
    golden_ids = sorted(set(found.values()))
    xrefs = await uow.records.xrefs(golden_ids) if golden_ids else {}
    by_system: dict[str, dict[str, list[str]]] = {}
    for golden_id, entries in xrefs.items():
        for x in entries:
            by_system.setdefault(golden_id, {}).setdefault(x.source, []).append(x.source_id)
    return found, by_system


@get(
    "/v1/xref/{entity:str}/{source:str}/{source_id:str}/in/{target:str}",
    tags=["xref"],
    operation_id="translate_xref",
    opt=requires(Permission.XREF_READ),
    summary="Translate a source system's id into another system's id",
)
async def translate_one(
    hub: NamedDependency[Hub],
    entity: FromPath[str],
    source: SystemPath,
    source_id: SourceIdPath,
    target: SystemPath,
) -> Translation:
    """The target system's id of the record `source` knows as `source_id`.

    404 when the hub does not know the source's record, or when the target
    system does not know it yet (the problem's detail says which, and names
    the golden id in the second case).
    """
    check_entity(entity)
    hub.catalog.get(target)  # an unknown system is a 404 of its own
    async with hub.reader() as uow:
        found, ids = await _target_ids(uow, [(entity, source, source_id, target)])
    golden_id = found.get((entity, source, source_id))
    if golden_id is None:
        raise NotFound(f"{source} {entity} {source_id!r} is not known to the hub")
    target_ids = ids.get(golden_id, {}).get(target, [])
    if not target_ids:
        raise NotFound(
            f"{target} does not know {source} {entity} {source_id!r} (golden record "
            f"{golden_id}) yet"
        )
    return Translation(
        entity=entity,  # type: ignore[arg-type]
        source=source,
        source_id=source_id,
        target=target,
        golden_id=golden_id,
        target_id=target_ids[0],
        target_ids=target_ids,
    )


@post(
    "/v1/xref/translate",
    tags=["xref"],
    operation_id="translate_xrefs",
    opt=requires(Permission.XREF_READ),
    status_code=200,
)
async def translate_many(
    hub: NamedDependency[Hub], data: JSONBody[TranslateRequest]
) -> TranslateResponse:
    """Many translations at once, answered in order; `found` says whether the target knows it."""
    keys = [(i.entity, i.source, i.source_id, i.target) for i in data.items]
    async with hub.reader() as uow:
        found, ids = await _target_ids(uow, keys)
    results = []
    for entity, source, source_id, target in keys:
        golden_id = found.get((entity, source, source_id))
        target_ids = ids.get(golden_id or "", {}).get(target, [])
        results.append(
            TranslateResult(
                entity=entity,
                source=source,
                source_id=source_id,
                target=target,
                found=bool(target_ids),
                golden_id=golden_id,
                target_id=target_ids[0] if target_ids else None,
                target_ids=target_ids or None,
            )
        )
    return TranslateResponse(results=results)


@get(
    "/v1/references/pending",
    tags=["relationships"],
    operation_id="pending_references",
    opt=requires(Permission.READ),
    responses=UNKNOWN_ENTITY,
)
async def pending_references(
    hub: NamedDependency[Hub],
    entity: Annotated[
        str | None, QueryParameter(description="Only references to this entity")
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)] = 0,
) -> PendingReferences:
    """References naming a record the hub does not know yet, oldest first."""
    if entity is not None:
        check_entity(entity)
    async with hub.reader() as uow:
        found, total = await uow.relationships.pending(entity, limit, offset)
    return PendingReferences(
        items=[
            PendingReferenceView(
                golden_id=p.golden_id,
                referring_entity=p.referring_entity,  # type: ignore[arg-type]
                field=p.field,
                entity=p.entity,  # type: ignore[arg-type]
                source=p.source,
                source_id=p.source_id,
                since=p.since,
            )
            for p in found
        ],
        total=total,
        limit=limit,
        offset=offset,
    )


@get(
    "/v1/golden/{entity:str}/{golden_id:str}/related",
    tags=["golden"],
    operation_id="related_goldens",
    opt=requires(Permission.READ),
    responses={409: problem("The golden record was merged into another: ask that one")},
)
async def related(
    hub: NamedDependency[Hub],
    entity: FromPath[str],
    golden_id: Annotated[str, PathParameter(max_length=64)],
    relation: Annotated[str, QueryParameter(description=_RELATIONS_DESCRIPTION)],
    depth: Annotated[int, QueryParameter(ge=1, le=MAX_DEPTH)] = 10,
    limit: Annotated[int, QueryParameter(ge=1, le=5000)] = 1000,
) -> RelatedResponse:
    """Golden records related to this one: hierarchies (parents, children, group,
    managers, reports) to `depth` levels, and the records it names or is named by."""
    check_entity(entity)
    relations = RELATIONS[entity]
    if relation not in relations:
        raise ValidationFailed(
            f"unknown relation {relation!r} for {entity}",
            [FieldProblem("query:relation", "one of " + ", ".join(relations))],
        )
    field, direction = relations[relation]
    async with hub.reader() as uow:
        golden = await uow.records.golden(golden_id)
        if golden is None or golden.entity != entity:
            raise NotFound(f"no {entity} golden record {golden_id!r}")
        if golden.status == "merged":
            raise Conflict(f"{golden_id} was merged into {golden.merged_into}; ask that one")
        store = uow.relationships
        if direction == "group":
            items = (await _group(uow, store, golden_id, field))[:limit]
        else:
            items = await store.related(golden_id, field, direction, depth, limit)
    return RelatedResponse(
        golden_id=golden_id,
        entity=entity,  # type: ignore[arg-type]
        relation=relation,
        depth=depth,
        items=[
            RelatedRecord(
                golden_id=r.golden_id,
                entity=r.entity,  # type: ignore[arg-type]
                depth=r.depth,
                via=r.via,
                attributes=r.attributes,
            )
            for r in items
        ],
    )


async def _group(
    uow: SqlUnitOfWork, store: RelationshipStore, golden_id: str, field: str
) -> list[Related]:
    """The topmost ancestor (depth 0) and everything under it, this record included."""
    ancestors = await store.related(golden_id, field, "up", MAX_DEPTH * 10)
    root = max(ancestors, key=lambda r: r.depth).golden_id if ancestors else golden_id
    top = await uow.records.golden(root)
    assert top is not None
    below = await store.related(root, field, "down", MAX_DEPTH * 10)
    return [Related(root, top.entity, top.status, 0, root, top.attributes), *below]


@get(
    "/v1/exceptions",
    tags=["relationships"],
    operation_id="data_quality_exceptions",
    opt=requires(Permission.READ),
    responses=UNKNOWN_ENTITY,
)
async def exceptions(
    hub: NamedDependency[Hub],
    entity: Annotated[str | None, QueryParameter(description="Only this entity")] = None,
    rule: Annotated[
        ExceptionRule | None, QueryParameter(description="Only this rule's findings")
    ] = None,
    golden_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)] = 0,
) -> ExceptionsResponse:
    """Data-quality findings across entities over the current golden records.

    They flag; nothing is changed or dropped. `counts` gives each rule's number
    of findings under the entity and golden id filters.
    """
    if entity is not None:
        check_entity(entity)
    async with hub.reader() as uow:
        found, total, counts = await find_exceptions(
            uow.conn, entity, rule, golden_id, limit, offset
        )
    return ExceptionsResponse(
        items=[
            DataQualityException(
                rule=f.rule,  # type: ignore[arg-type]
                entity=f.entity,  # type: ignore[arg-type]
                golden_id=f.golden_id,
                field=f.field,
                message=f.message,
                related_golden_id=f.related_golden_id,
            )
            for f in found
        ],
        total=total,
        counts=counts,
        limit=limit,
        offset=offset,
    )


ROUTES = [translate_one, translate_many, pending_references, related, exceptions]
