"""Stewards' survivorship overrides on a golden record: pins and ignores.

The actor recorded with the decision, in the golden record's history and in its
event, is the authenticated caller; an `actor` in the body (or, for a DELETE,
the query) is kept as the person they act for (mdm/api/auth.py actor_of).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from mdm.api.actor import actor_of
from mdm.api.auth import Permission, requires
from mdm.api.context import request_context
from mdm.api.openapi import problem
from mdm.api.params import SourceIdPath
from mdm.bootstrap import Hub
from mdm.services.overrides import (
    OverrideResult,
    ignore_value,
    list_overrides,
    pin_value,
    unpin_value,
)
from schemas.api import (
    IgnoreRequest,
    IgnoreView,
    OverrideResponse,
    OverridesView,
    PinRequest,
    PinView,
)
from schemas.text import NAME_PATTERN, TEXT_PATTERN

GoldenId = Annotated[str, PathParameter(max_length=64)]
Attribute = Annotated[str, PathParameter(max_length=64)]
ActorQuery = Annotated[
    str | None, QueryParameter(min_length=1, max_length=200, pattern=NAME_PATTERN)
]
ReasonQuery = Annotated[str | None, QueryParameter(max_length=2000, pattern=TEXT_PATTERN)]
NOT_ACTIVE = {409: problem("The golden record is merged or retired: act on the survivor")}


def _response(result: OverrideResult) -> OverrideResponse:
    return OverrideResponse(
        golden_id=result.golden_id, version=result.version, changed=result.changed
    )


class OverridesController(Controller):
    path = "/v1/golden"
    tags = ["golden"]

    @get(
        "/{entity:str}/{golden_id:str}/overrides",
        operation_id="list_overrides",
        opt=requires(Permission.READ),
    )
    async def overrides(
        self, hub: NamedDependency[Hub], entity: FromPath[str], golden_id: GoldenId
    ) -> OverridesView:
        """The pins on a golden record and the ignored values of its source records."""
        async with hub.reader() as uow:
            found = await list_overrides(uow, entity, golden_id)
        return OverridesView(
            golden_id=golden_id,
            pins=[PinView(**p) for p in found["pins"]],
            ignores=[IgnoreView(**i) for i in found["ignores"]],
        )

    @put(
        "/{entity:str}/{golden_id:str}/pins/{attribute:str}",
        operation_id="pin_value",
        opt=requires(Permission.STEWARD),
        responses=NOT_ACTIVE,
    )
    async def pin(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: GoldenId,
        attribute: Attribute,
        data: JSONBody[PinRequest],
    ) -> OverrideResponse:
        """Pin a value: it wins for this attribute whatever the survivorship rules say."""
        result = await hub.unit_of_work(
            lambda uow: pin_value(
                uow,
                hub.rules,
                entity,
                golden_id,
                attribute,
                data.value,
                actor_of(request, data.actor),
                data.reason,
                request_context(request),
            )
        )
        return _response(result)

    @delete(
        "/{entity:str}/{golden_id:str}/pins/{attribute:str}",
        operation_id="unpin_value",
        status_code=200,
        opt=requires(Permission.STEWARD),
        responses=NOT_ACTIVE,
    )
    async def unpin(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: GoldenId,
        attribute: Attribute,
        actor: ActorQuery = None,
        reason: ReasonQuery = None,
    ) -> OverrideResponse:
        """Remove a pin; the rules decide the attribute again."""
        result = await hub.unit_of_work(
            lambda uow: unpin_value(
                uow,
                hub.rules,
                entity,
                golden_id,
                attribute,
                actor_of(request, actor, "query:actor"),
                reason,
                request_context(request),
            )
        )
        return _response(result)

    @put(
        "/{entity:str}/{golden_id:str}/ignores",
        operation_id="ignore_value",
        opt=requires(Permission.STEWARD),
        responses=NOT_ACTIVE,
    )
    async def ignore(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: GoldenId,
        data: JSONBody[IgnoreRequest],
    ) -> OverrideResponse:
        """Never use one source record's value of one attribute."""
        result = await hub.unit_of_work(
            lambda uow: ignore_value(
                uow,
                hub.rules,
                entity,
                golden_id,
                data.attribute,
                data.source,
                data.source_id,
                actor_of(request, data.actor),
                data.reason,
                request_context(request),
            )
        )
        return _response(result)

    @delete(
        "/{entity:str}/{golden_id:str}/ignores/{source:str}/{source_id:str}/{attribute:str}",
        operation_id="unignore_value",
        status_code=200,
        opt=requires(Permission.STEWARD),
        responses=NOT_ACTIVE,
    )
    async def unignore(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: GoldenId,
        source: Annotated[str, PathParameter(max_length=64)],
        source_id: SourceIdPath,
        attribute: Attribute,
        actor: ActorQuery = None,
        reason: ReasonQuery = None,
    ) -> OverrideResponse:
        """Use an ignored source value again."""
        result = await hub.unit_of_work(
            lambda uow: ignore_value(
                uow,
                hub.rules,
                entity,
                golden_id,
                attribute,
                source,
                source_id,
                actor_of(request, actor, "query:actor"),
                reason,
                request_context(request),
                ignore=False,
            )
        )
        return _response(result)
