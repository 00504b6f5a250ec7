"""PUT /v1/xref/{entity}/{golden_id}/{source}: a source system registers its id for a golden record.

Connectors call it after creating the mastered thing in their own system
(publishers/examples/erp_connector.py), so that an xref lookup of any system's
id answers theirs too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter

from mdm.api.auth import Permission, requires
from mdm.api.context import request_context
from mdm.api.openapi import problem
from mdm.api.sources import IdempotencyKey, _idempotent
from mdm.bootstrap import Hub
from mdm.domain.ports import UnitOfWork
from mdm.services.xref import register_xref
from schemas.api import SourceId


class XrefRegistration(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source_id: SourceId


class XrefRegistered(msgspec.Struct, kw_only=True):
    entity: str
    golden_id: str
    source: str
    source_id: str
    outcome: Literal["linked", "unchanged"]
    version: int  # the golden record's version after the registration


@put(
    "/v1/xref/{entity:str}/{golden_id:str}/{source:str}",
    tags=["xref"],
    operation_id="register_xref",
    summary="Register a source system's id for a golden record",
    opt=requires(Permission.SOURCE_WRITE),
    responses={
        409: problem(
            "That id is linked to another golden record, or the target is merged or retired"
        )
    },
)
async def register(
    request: Request[Any, Any, Any],
    hub: NamedDependency[Hub],
    entity: FromPath[str],
    golden_id: Annotated[str, PathParameter(max_length=64)],
    source: Annotated[str, PathParameter(min_length=1, max_length=64)],
    data: JSONBody[XrefRegistration],
    idempotency_key: IdempotencyKey = None,
) -> Response[XrefRegistered]:
    """Link `source`'s id to the golden record without attributes (an xref.linked event).

    The same link again is `unchanged`. 409 when that id is linked to another
    golden record or the target is merged or retired; 403 when `source` may
    not write `entity` (sources file).
    """
    hub.catalog.authorize_write(source, entity)

    async def work(uow: UnitOfWork) -> tuple[int, msgspec.Struct, Sequence[str]]:
        result = await register_xref(
            uow, hub.rules, entity, golden_id, source, data.source_id, request_context(request)
        )
        return (
            200,
            XrefRegistered(
                entity=entity,
                golden_id=result.golden_id,
                source=source,
                source_id=data.source_id,
                outcome=result.outcome,  # type: ignore[arg-type]
                version=result.version,
            ),
            (),
        )  # a registration is no ingested record: nothing to count

    return await _idempotent(request, hub, idempotency_key, entity, source, work)
