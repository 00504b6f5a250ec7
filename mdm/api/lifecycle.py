"""Steward decisions on golden records: merge and unmerge.

The actor recorded with every decision is the authenticated caller (an
`actor` in the body is kept as the person they act for: mdm/api/auth.py actor_of).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter

from mdm.api.actor import actor_of
from mdm.api.auth import Permission, requires
from mdm.api.context import request_context
from mdm.api.openapi import problem
from mdm.bootstrap import Hub
from mdm.services.lifecycle import merge_goldens, unmerge_records
from schemas.api import MergeRequest, MergeResponse, UnmergeRequest, UnmergeResponse


class LifecycleController(Controller):
    path = "/v1/golden"
    tags = ["golden"]

    @post(
        "/{entity:str}/merge",
        operation_id="merge_goldens",
        status_code=200,
        opt=requires(Permission.STEWARD),
        responses={
            409: problem(
                "A golden record is merged or retired, or the survivor is among the losers"
            )
        },
    )
    async def merge(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        data: JSONBody[MergeRequest],
    ) -> MergeResponse:
        """Merge golden records into a survivor; the others redirect to it for good."""
        result = await hub.unit_of_work(
            lambda uow: merge_goldens(
                uow,
                hub.rules,
                entity,
                data.survivor_id,
                data.loser_ids,
                actor_of(request, data.actor),
                data.reason,
                request_context(request),
            )
        )
        return MergeResponse(
            survivor_id=result.survivor_id,
            version=result.version,
            merged=result.merged,
            merge_id=result.merge_id,
            moved_source_records=result.moved,
        )

    @post(
        "/{entity:str}/{golden_id:str}/unmerge",
        operation_id="unmerge",
        status_code=200,
        opt=requires(Permission.STEWARD),
        responses={
            409: problem(
                "The golden record is merged or retired, or no live source record would stay"
            )
        },
    )
    async def unmerge(
        self,
        request: Request[Any, Any, Any],
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: Annotated[str, PathParameter(max_length=64)],
        data: JSONBody[UnmergeRequest],
    ) -> UnmergeResponse:
        """Take source records out of a golden record; they are never matched back."""
        result = await hub.unit_of_work(
            lambda uow: unmerge_records(
                uow,
                hub.rules,
                entity,
                golden_id,
                [(r.source, r.source_id) for r in data.records],
                actor_of(request, data.actor),
                data.reason,
                request_context(request),
            )
        )
        return UnmergeResponse(
            golden_id=result.golden_id,
            version=result.version,
            split_golden_id=result.split_golden_id,
            split_version=result.split_version,
            restored=result.restored,
        )
