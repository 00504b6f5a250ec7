"""Source systems write their records: PUT, DELETE and batch POST, one set of routes per entity.

One route per entity type (not one route with an {entity} parameter) so the
OpenAPI document carries each entity's exact body schema. This module must not
use `from __future__ import annotations`: the handlers' annotations are built
at run time from the entity's types.
"""

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, post, put
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Schema
from litestar.params import BodyKwarg, FromPath, HeaderParameter, JSONBody, PathParameter

from mdm import heap
from mdm.api.auth import Permission, requires
from mdm.api.context import request_context
from mdm.api.metrics import RECORDS_INGESTED
from mdm.api.params import SourceIdPath
from mdm.api.problems import field_errors
from mdm.bootstrap import Hub
from mdm.domain.errors import FieldProblem, ValidationFailed
from mdm.domain.ports import UnitOfWork
from mdm.domain.sources import ENTITIES, check_entity
from mdm.services.ingest import Accepted, IncomingRecord, Rejected, delete_record, ingest_records
from mdm.services.ingest.group import (
    Answered,
    GroupCommit,
    IdempotencyClaim,
    SingleWrite,
    replay,
)
from mdm.services.ingest.prepare import decode_item, incoming
from schemas.api import (
    BATCH_ITEM,
    MAX_BATCH,
    UPSERT_BODY,
    BatchItemResult,
    BatchResponse,
    DataQualityWarning,
    IngestResult,
    Problem,
)

_encoder = msgspec.json.Encoder()
# The HTTP contract of a batch: an array of anything. Each item is checked on its own
# against the entity's batch item (schemas/json/{entity}.batch-item.schema.json), and
# one that does not fit, even one that is not an object, is that item's 422 in a 200.
BATCH_ITEM_SCHEMA = Schema(
    description="A batch item of the entity (its JSON Schema: schemas/json/); "
    "an item that does not fit gets its own error in the answer"
)
SourceName = Annotated[str, PathParameter(min_length=1, max_length=64, description="Source system")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        max_length=200,
        required=False,
        description="Replays with the same key answer the first response; "
        "the same key with a different body is a 422.",
    ),
]


async def _claim(request: Request[Any, Any, Any], key: str | None) -> IdempotencyClaim | None:
    """The request's Idempotency-Key claim: its scope (method and path), the key and
    the body's hash, which a replay must match."""
    if key is None:
        return None
    body = await request.body()
    return IdempotencyClaim(
        f"{request.method} {request.url.path}", key, hashlib.blake2b(body, digest_size=16).digest()
    )


def _respond(answer: Answered) -> Response[Any]:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return Response(
        answer.body, status_code=answer.status, media_type="application/json", headers=headers
    )


async def _grouped(
    request: Request[Any, Any, Any],
    writes: GroupCommit,
    entity: str,
    write: SingleWrite,
    key: str | None,
) -> Response[Any]:
    """A single PUT or DELETE through group commit: its response once its group has
    committed, its outcome counted."""
    write.idempotency = await _claim(request, key)
    answer = await writes.submit(entity, write)
    if answer.outcome is not None:
        RECORDS_INGESTED.labels(entity=entity, source=write.source, outcome=answer.outcome).inc()
    return _respond(answer)


async def _idempotent(
    request: Request[Any, Any, Any],
    hub: Hub,
    key: str | None,
    entity: str,
    source: str,
    work: Callable[[UnitOfWork], Awaitable[tuple[int, msgspec.Struct | bytes, Sequence[str]]]],
) -> Response[Any]:
    """Run `work` in a unit of work of its own (run again if PostgreSQL aborted it to
    break a deadlock: `work` repeats nothing outside it), then count the ingestion
    outcomes it returns, once committed; with an Idempotency-Key, answer replays from
    storage. A batch goes this way, and single writes when group commit is off."""
    claim = await _claim(request, key)

    async def unit(uow: UnitOfWork) -> tuple[Answered, Sequence[str]]:
        if claim is not None:
            stored = await uow.records.claim_idempotency_key(
                claim.scope, claim.key, claim.request_hash
            )
            if stored is not None:
                replayed = replay(claim, stored)
                if isinstance(replayed, Exception):
                    raise replayed
                return replayed, ()
        status, result, outcomes = await work(uow)
        body = result if isinstance(result, bytes) else _encoder.encode(result)
        if claim is not None:
            await uow.records.store_idempotent_response(claim.scope, claim.key, status, body)
        return Answered(status, body), outcomes

    answer, outcomes = await hub.unit_of_work(unit)
    for outcome in outcomes:
        RECORDS_INGESTED.labels(entity=entity, source=source, outcome=outcome).inc()
    return _respond(answer)


def _warnings(items: list[dict[str, str]]) -> list[DataQualityWarning]:
    return [DataQualityWarning(**w) for w in items]


def _entity_routes(entity: str) -> list[HTTPRouteHandler]:
    upsert_type = UPSERT_BODY[entity]
    item_type = BATCH_ITEM[entity]
    path = f"/v1/sources/{{source:str}}/{entity}/{{source_id:str}}"
    batch_path = f"/v1/sources/{{source:str}}/{entity}/batch"
    tag = [entity]

    async def upsert(
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        source: SourceName,
        source_id: SourceIdPath,
        data: JSONBody[upsert_type],  # type: ignore[valid-type]
        idempotency_key: IdempotencyKey = None,
    ) -> Response[IngestResult]:
        hub.catalog.authorize_write(source, entity)
        record = incoming(source_id, data, "$")
        if isinstance(record, Rejected):
            raise ValidationFailed("the request does not match the schema", record.errors)

        def respond(result: Accepted) -> tuple[int, bytes]:
            return 200, _encoder.encode(
                IngestResult(
                    golden_id=result.golden_id,
                    outcome=result.outcome,  # type: ignore[arg-type]
                    version=result.version,
                    warnings=_warnings(result.warnings),
                    match_probability=result.match_probability,
                    review=result.review,
                )
            )

        if hub.writes is not None:
            write = SingleWrite(source, source_id, record, request_context(request), respond)
            return await _grouped(request, hub.writes, entity, write, idempotency_key)

        async def work(uow: UnitOfWork) -> tuple[int, msgspec.Struct | bytes, Sequence[str]]:
            (result,) = await ingest_records(
                uow, hub.rules, entity, source, [record], request_context(request)
            )
            if isinstance(result, Rejected):
                raise ValidationFailed("the record is invalid", result.errors)
            return (*respond(result), [result.outcome])

        return await _idempotent(request, hub, idempotency_key, entity, source, work)

    async def remove(
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        source: SourceName,
        source_id: SourceIdPath,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[IngestResult]:
        hub.catalog.authorize_write(source, entity)

        def respond(result: Accepted) -> tuple[int, bytes]:
            return 200, _encoder.encode(
                IngestResult(
                    golden_id=result.golden_id,
                    outcome=result.outcome,  # type: ignore[arg-type]
                    version=result.version,
                )
            )

        if hub.writes is not None:
            write = SingleWrite(source, source_id, None, request_context(request), respond)
            return await _grouped(request, hub.writes, entity, write, idempotency_key)

        async def work(uow: UnitOfWork) -> tuple[int, msgspec.Struct | bytes, Sequence[str]]:
            result = await delete_record(
                uow, hub.rules, entity, source, source_id, request_context(request)
            )
            return (*respond(result), [result.outcome])

        return await _idempotent(request, hub, idempotency_key, entity, source, work)

    async def batch(
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        source: SourceName,
        # Items are Any, checked one by one (decode_item): one that is not even an
        # object gets its own error too.
        data: Annotated[
            list[Any],
            BodyKwarg(
                description=f"Up to {MAX_BATCH} items, each a {item_type.__name__}: "
                "{source_id, attributes, source_updated_at?}. A bad item gets its own "
                "error and does not fail the others.",
                schema_extra={"items": BATCH_ITEM_SCHEMA},
            ),
        ],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[BatchResponse]:
        hub.catalog.authorize_write(source, entity)
        if len(data) > MAX_BATCH:
            raise ValidationFailed(
                "batch too large",
                [FieldProblem("$", f"at most {MAX_BATCH} records per batch, got {len(data)}")],
            )
        decoded: list[tuple[int, IncomingRecord]] = []
        results: list[BatchItemResult | None] = [None] * len(data)
        for i, item in enumerate(data):
            record = decode_item(entity, i, item)
            if isinstance(record, Rejected):
                results[i] = _rejected(i, item, record.errors)
            else:
                decoded.append((i, record))

        async def work(uow: UnitOfWork) -> tuple[int, msgspec.Struct | bytes, Sequence[str]]:
            with heap.paused():  # the batch's many live objects, walked once (mdm/heap.py)
                outcomes = await ingest_records(
                    uow,
                    hub.rules,
                    entity,
                    source,
                    [r for _, r in decoded],
                    request_context(request),
                    refused=len(data) - len(decoded),
                )
            for (i, record), outcome in zip(decoded, outcomes, strict=True):
                if isinstance(outcome, Rejected):
                    problems = [
                        FieldProblem(f"$[{i}]{p.path[1:]}", p.message) for p in outcome.errors
                    ]
                    results[i] = _rejected(i, data[i], problems)
                else:
                    results[i] = _accepted(i, record.source_id, outcome)
            final = [r for r in results if r is not None]
            accepted = [r for r in final if r.status == 200]
            return (
                200,
                BatchResponse(
                    results=final, accepted=len(accepted), rejected=len(final) - len(accepted)
                ),
                [r.outcome for r in accepted if r.outcome],
            )

        return await _idempotent(request, hub, idempotency_key, entity, source, work)

    return [
        put(
            path,
            name=f"upsert_{entity}",
            tags=tag,
            summary=f"Upsert a source's {entity} record",
            operation_id=f"upsert_{entity}",
            opt=requires(Permission.SOURCE_WRITE),
        )(upsert),
        delete(
            path,
            name=f"delete_{entity}",
            tags=tag,
            status_code=200,
            summary=f"Mark a source's {entity} record deleted",
            operation_id=f"delete_{entity}",
            opt=requires(Permission.SOURCE_WRITE),
        )(remove),
        post(
            batch_path,
            name=f"batch_{entity}",
            tags=tag,
            status_code=200,
            summary=f"Upsert up to {MAX_BATCH} {entity} records",
            operation_id=f"batch_{entity}",
            opt=requires(Permission.SOURCE_WRITE),
        )(batch),
    ]


def _rejected(index: int, item: Any, problems: list[FieldProblem]) -> BatchItemResult:
    source_id = item.get("source_id") if isinstance(item, dict) else None
    return BatchItemResult(
        index=index,
        source_id=source_id if isinstance(source_id, str) else None,
        status=422,
        error=Problem(
            title="Validation failed",
            status=422,
            detail="the record is invalid",
            errors=field_errors(problems),
        ),
    )


def _accepted(index: int, source_id: str, outcome: Accepted) -> BatchItemResult:
    return BatchItemResult(
        index=index,
        source_id=source_id,
        status=200,
        golden_id=outcome.golden_id,
        outcome=outcome.outcome,  # type: ignore[arg-type]
        version=outcome.version,
        warnings=_warnings(outcome.warnings) or None,
        match_probability=outcome.match_probability,
        review=outcome.review or None,
    )


async def _unknown_entity(entity: str) -> None:
    check_entity(entity)  # raises UnknownEntity with the list of known types


@put(
    "/v1/sources/{source:str}/{entity:str}/{source_id:str}",
    include_in_schema=False,
    opt=requires(Permission.SOURCE_WRITE),
)
async def put_unknown_entity(entity: FromPath[str]) -> None:
    await _unknown_entity(entity)


@delete(
    "/v1/sources/{source:str}/{entity:str}/{source_id:str}",
    include_in_schema=False,
    status_code=200,
    opt=requires(Permission.SOURCE_WRITE),
)
async def delete_unknown_entity(entity: FromPath[str]) -> None:
    await _unknown_entity(entity)


@post(
    "/v1/sources/{source:str}/{entity:str}/batch",
    include_in_schema=False,
    opt=requires(Permission.SOURCE_WRITE),
)
async def batch_unknown_entity(entity: FromPath[str]) -> None:
    await _unknown_entity(entity)


ROUTES: list[HTTPRouteHandler] = [
    *(route for entity in ENTITIES for route in _entity_routes(entity)),
    put_unknown_entity,
    delete_unknown_entity,
    batch_unknown_entity,
]
