"""Readers: golden records and the cross-reference (ID lookup)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter
from litestar.status_codes import HTTP_301_MOVED_PERMANENTLY

from mdm.adapters.repository import Repository, StoredXref
from mdm.bootstrap import Hub
from mdm.domain.errors import NotFound
from mdm.domain.sources import check_entity
from schemas.api import (
    GoldenRecordView,
    Provenance,
    XrefEntry,
    XrefLookupRequest,
    XrefLookupResponse,
    XrefLookupResult,
    XrefView,
)

_MAX_REDIRECTS = 32  # merges re-point chains, so real chains are length one


def _xref_entries(
    hub: NamedDependency[Hub], entity: str, xrefs: list[StoredXref]
) -> list[XrefEntry]:
    return [
        XrefEntry(
            source=x.source,
            source_id=x.source_id,
            role=str(hub.catalog.systems[x.source].role_for(entity))
            if x.source in hub.catalog.systems
            else "unknown",
            updated_at=x.updated_at,
        )
        for x in xrefs
    ]


async def _xref_view(
    hub: NamedDependency[Hub], repo: Repository, entity: str, golden_id: str
) -> XrefView:
    golden = await repo.golden(golden_id)
    if golden is None:
        raise NotFound(f"no golden record {golden_id!r}")
    xrefs = (await repo.xrefs([golden_id]))[golden_id]
    return XrefView(
        entity=entity,  # type: ignore[arg-type]
        golden_id=golden_id,
        status=golden.status,
        xrefs=_xref_entries(hub, entity, xrefs),
    )


class GoldenController(Controller):
    path = "/v1/golden"
    tags = ["golden"]

    @get("/{entity:str}/{golden_id:str}", operation_id="get_golden")
    async def get_golden(
        self,
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: Annotated[str, PathParameter(max_length=64)],
    ) -> Response[GoldenRecordView]:
        """A golden record: attributes with provenance, and its cross-references.

        A merged-away id answers 301 with the survivor's location.
        """
        check_entity(entity)
        async with hub.reader() as repo:
            golden = await repo.golden(golden_id)
            if golden is None or golden.entity != entity:
                raise NotFound(f"no {entity} golden record {golden_id!r}")
            if golden.status == "merged":
                survivor = golden
                for _ in range(_MAX_REDIRECTS):
                    if survivor is None or survivor.merged_into is None:
                        break
                    survivor = await repo.golden(survivor.merged_into)
                if survivor is None or survivor.status == "merged":
                    raise NotFound(f"golden record {golden_id!r} redirects nowhere")
                return Response(
                    content=b"",
                    status_code=HTTP_301_MOVED_PERMANENTLY,
                    headers={"Location": f"/v1/golden/{entity}/{survivor.golden_id}"},
                )
            xrefs = (await repo.xrefs([golden_id]))[golden_id]
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


class XrefController(Controller):
    path = "/v1/xref"
    tags = ["xref"]

    @get("/{entity:str}/{source:str}/{source_id:str}", operation_id="get_xref")
    async def get_xref(
        self,
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        source: Annotated[str, PathParameter(max_length=64)],
        source_id: Annotated[str, PathParameter(max_length=200)],
    ) -> XrefView:
        """The golden id of a source record and every system's id for the same thing."""
        check_entity(entity)
        async with hub.reader() as repo:
            found = await repo.golden_ids_for([(entity, source, source_id)])
            golden_id = found.get((entity, source, source_id))
            if golden_id is None:
                raise NotFound(f"{source} {entity} {source_id!r} is not known to the hub")
            return await _xref_view(hub, repo, entity, golden_id)

    @post("/lookup", operation_id="lookup_xrefs", status_code=200)
    async def lookup(
        self, hub: NamedDependency[Hub], data: JSONBody[XrefLookupRequest]
    ) -> XrefLookupResponse:
        """Many source ids at once; each answered in order, found or not."""
        keys = [(k.entity, k.source, k.source_id) for k in data.keys]
        async with hub.reader() as repo:
            found = await repo.golden_ids_for(keys)
            golden_ids = sorted(set(found.values()))
            xrefs = await repo.xrefs(golden_ids) if golden_ids else {}
            statuses = await repo.goldens_status(golden_ids) if golden_ids else {}
        results: list[XrefLookupResult] = []
        for entity, source, source_id in keys:
            golden_id = found.get((entity, source, source_id))
            if golden_id is None:
                results.append(
                    XrefLookupResult(
                        entity=entity,
                        source=source,
                        source_id=source_id,
                        found=False,  # type: ignore[arg-type]
                    )
                )
                continue
            results.append(
                XrefLookupResult(
                    entity=entity,  # type: ignore[arg-type]
                    source=source,
                    source_id=source_id,
                    found=True,
                    golden_id=golden_id,
                    status=statuses.get(golden_id),  # type: ignore[arg-type]
                    xrefs=_xref_entries(hub, entity, xrefs[golden_id]),
                )
            )
        return XrefLookupResponse(results=results)
