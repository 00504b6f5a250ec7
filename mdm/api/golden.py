"""Readers: golden records and the cross-reference (ID lookup)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_301_MOVED_PERMANENTLY

from mdm.api.auth import RESPONSE_KEYS, Permission, requires
from mdm.api.openapi import moved
from mdm.api.params import SourceIdPath
from mdm.bootstrap import Hub
from mdm.domain.errors import FieldProblem, NotFound, ValidationFailed
from mdm.domain.golden import GoldenRecord
from mdm.domain.ports import UnitOfWork
from mdm.domain.sources import check_entity
from mdm.domain.stored import StoredXref
from schemas.api import (
    MAX_VERSION,
    OUT_OF_RANGE,
    GoldenRecordView,
    HistoryEntry,
    HistoryResponse,
    Provenance,
    ReviewDecisionView,
    XrefEntry,
    XrefLookupRequest,
    XrefLookupResponse,
    XrefLookupResult,
    XrefView,
    in_utc_range,
)

_MAX_REDIRECTS = 32  # merges re-point chains, so real chains are length one


def _xref_entries(
    hub: NamedDependency[Hub], entity: str, xrefs: list[StoredXref]
) -> list[XrefEntry]:
    return [
        XrefEntry(
            source=x.source,
            source_id=x.source_id,
            role=_role(hub, entity, x.source),
            updated_at=x.updated_at,
        )
        for x in xrefs
    ]


async def _xref_view(
    hub: NamedDependency[Hub], uow: UnitOfWork, entity: str, golden_id: str
) -> XrefView:
    golden = await uow.records.golden(golden_id)
    if golden is None:
        raise NotFound(f"no golden record {golden_id!r}")
    xrefs = (await uow.records.xrefs([golden_id]))[golden_id]
    return XrefView(
        entity=entity,  # type: ignore[arg-type]
        golden_id=golden_id,
        status=golden.status,
        xrefs=_xref_entries(hub, entity, xrefs),
    )


class GoldenController(Controller):
    path = "/v1/golden"
    tags = ["golden"]

    @get(
        "/{entity:str}/{golden_id:str}",
        operation_id="get_golden",
        opt=requires(Permission.READ),
        responses={301: moved("A merged-away id: Location is the surviving golden record's")},
    )
    async def get_golden(
        self,
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: Annotated[str, PathParameter(max_length=64)],
        as_of: Annotated[
            dt.datetime | None,
            QueryParameter(description="RFC 3339 time: the record as it was then"),
        ] = None,
    ) -> Response[GoldenRecordView]:
        """A golden record: attributes with provenance, and its cross-references.

        A merged-away id answers 301 with the survivor's location (unless `as_of`
        asks for the record as it was).
        """
        check_entity(entity)
        async with hub.reader() as uow:
            golden = await uow.records.golden(golden_id)
            if golden is None or golden.entity != entity:
                raise NotFound(f"no {entity} golden record {golden_id!r}")
            if as_of is not None:
                return Response(await _as_of(hub, uow, golden, as_of))
            if golden.status == "merged":
                survivor: GoldenRecord | None = golden
                for _ in range(_MAX_REDIRECTS):
                    if survivor is None or survivor.merged_into is None:
                        break
                    survivor = await uow.records.golden(survivor.merged_into)
                if survivor is None or survivor.status == "merged":
                    raise NotFound(f"golden record {golden_id!r} redirects nowhere")
                # The annotation names the 200's body (for OpenAPI); a 301 has none.
                return Response(
                    content=b"",  # type: ignore[arg-type]
                    status_code=HTTP_301_MOVED_PERMANENTLY,
                    headers={"Location": f"/v1/golden/{entity}/{survivor.golden_id}"},
                )
            xrefs = (await uow.records.xrefs([golden_id]))[golden_id]
        assert golden.created_at is not None and golden.updated_at is not None
        return Response(
            GoldenRecordView(
                golden_id=golden.golden_id,
                entity=entity,  # type: ignore[arg-type]
                status=golden.status,
                version=golden.version,
                attributes=golden.attributes,
                provenance={k: Provenance(**v) for k, v in golden.provenance.items()},
                xrefs=_xref_entries(hub, entity, xrefs),
                created_at=golden.created_at,
                updated_at=golden.updated_at,
                merged_into=golden.merged_into,
            )
        )

    @get(
        "/{entity:str}/{golden_id:str}/history",
        operation_id="get_golden_history",
        opt=requires(Permission.READ),
    )
    async def history(
        self,
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: Annotated[str, PathParameter(max_length=64)],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        before_version: Annotated[int | None, QueryParameter(ge=1, le=MAX_VERSION)] = None,
    ) -> HistoryResponse:
        """Every version, newest first: what changed, why (source record or steward), when;
        and the review decisions naming this golden record."""
        check_entity(entity)
        async with hub.reader() as uow:
            golden = await uow.records.golden(golden_id)
            if golden is None or golden.entity != entity:
                raise NotFound(f"no {entity} golden record {golden_id!r}")
            rows = await uow.records.history(golden_id, limit, before_version)
            decisions = await uow.reviews.decisions(golden_id=golden_id, limit=limit)
        return HistoryResponse(
            reviews=[ReviewDecisionView(**d) for d in decisions],
            golden_id=golden_id,
            entity=entity,  # type: ignore[arg-type]
            versions=[
                HistoryEntry(
                    version=r.version,
                    status=r.status,
                    event_type=r.event_type,
                    changed=r.changed,
                    cause=r.cause,
                    changed_at=r.changed_at,
                    attributes=r.attributes,
                    xrefs=r.xrefs,
                )
                for r in rows
            ],
        )


async def _as_of(
    hub: Hub, uow: UnitOfWork, golden: GoldenRecord, as_of: dt.datetime
) -> GoldenRecordView:
    if as_of.tzinfo is None:
        raise ValidationFailed(
            "as_of needs a time zone", [FieldProblem("query:as_of", "RFC 3339 with an offset")]
        )
    if not in_utc_range(as_of):
        raise ValidationFailed("as_of is out of range", [FieldProblem("query:as_of", OUT_OF_RANGE)])
    rows = await uow.records.history(golden.golden_id, 1, as_of=as_of)
    if not rows:
        raise NotFound(f"{golden.golden_id} did not exist at {as_of.isoformat()}")
    row = rows[0]
    assert golden.created_at is not None
    return GoldenRecordView(
        golden_id=golden.golden_id,
        entity=golden.entity,  # type: ignore[arg-type]
        status=row.status,
        version=row.version,
        attributes=row.attributes,
        provenance={k: Provenance(**v) for k, v in row.provenance.items()},
        xrefs=[
            XrefEntry(
                source=x["source"],
                source_id=x["source_id"],
                role=_role(hub, golden.entity, x["source"]),
            )
            for x in row.xrefs
        ],
        created_at=golden.created_at,
        updated_at=row.changed_at,
        merged_into=golden.merged_into if row.status == "merged" else None,
    )


_encoder = msgspec.json.Encoder()

#: Every key an xref answer holds: none is an attribute, so the sensitive-value
#: masking (mdm/api/access.py) skips it unless one of them was declared sensitive.
XREF_KEYS = frozenset(XrefView.__struct_fields__) | frozenset(XrefEntry.__struct_fields__)


def render_xref(hub: Hub, entity: str, rows: Sequence[Any]) -> bytes:
    """XREF_QUERY's rows as the encoded XrefView, exactly as litestar would encode it."""
    first = rows[0]
    return _encoder.encode(
        XrefView(
            entity=entity,  # type: ignore[arg-type]
            golden_id=first["golden_id"],
            status=first["status"],
            xrefs=[
                XrefEntry(
                    source=r["source"],
                    source_id=r["source_id"],
                    role=_role(hub, entity, r["source"]),
                    updated_at=r["received_at"],
                )
                for r in rows
            ],
        )
    )


def _role(hub: Hub, entity: str, source: str) -> str:
    system = hub.catalog.systems.get(source)
    return str(system.role_for(entity)) if system else "unknown"


class XrefController(Controller):
    path = "/v1/xref"
    tags = ["xref"]

    @get(
        "/{entity:str}/{source:str}/{source_id:str}",
        operation_id="get_xref",
        opt={**requires(Permission.XREF_READ), RESPONSE_KEYS: XREF_KEYS},
    )
    async def get_xref(
        self,
        request: Request[Any, Any, Any],
        entity: FromPath[str],
        source: Annotated[str, PathParameter(max_length=64)],
        source_id: SourceIdPath,
    ) -> Response[XrefView]:
        """The golden id of a source record and every system's id for the same thing."""
        check_entity(entity)
        # The hot path (issue 8): no DI, no ORM; the encoded answer comes from the
        # lookup cache or one prepared statement (mdm/adapters/lookup_cache.py).
        hub: Hub = request.app.state.hub
        body = await hub.lookups.xref(entity, source, source_id, partial(render_xref, hub, entity))
        if body is None:
            raise NotFound(f"{source} {entity} {source_id!r} is not known to the hub")
        return Response(body, media_type=MediaType.JSON)  # type: ignore[arg-type]

    @post(
        "/lookup",
        operation_id="lookup_xrefs",
        status_code=200,
        opt=requires(Permission.XREF_READ),
    )
    async def lookup(
        self, hub: NamedDependency[Hub], data: JSONBody[XrefLookupRequest]
    ) -> XrefLookupResponse:
        """Many source ids at once; each answered in order, found or not."""
        keys = [(k.entity, k.source, k.source_id) for k in data.keys]
        async with hub.reader() as uow:
            found = await uow.records.golden_ids_for(keys)
            golden_ids = sorted(set(found.values()))
            xrefs = await uow.records.xrefs(golden_ids) if golden_ids else {}
            statuses = await uow.records.goldens_status(golden_ids) if golden_ids else {}
        results: list[XrefLookupResult] = []
        for entity, source, source_id in keys:
            golden_id = found.get((entity, source, source_id))
            if golden_id is None:
                results.append(
                    XrefLookupResult(
                        entity=entity,
                        source=source,
                        source_id=source_id,
                        found=False,
                    )
                )
                continue
            results.append(
                XrefLookupResult(
                    entity=entity,
                    source=source,
                    source_id=source_id,
                    found=True,
                    golden_id=golden_id,
                    status=statuses.get(golden_id),  # type: ignore[arg-type]
                    xrefs=_xref_entries(hub, entity, xrefs[golden_id]),
                )
            )
        return XrefLookupResponse(results=results)
