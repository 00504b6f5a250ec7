"""Matching: search before create, and why records are linked (the queue: mdm/api/reviews.py)."""

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from mdm.api.auth import Permission, identity_of, requires
from mdm.api.rematch import REMATCH_ROUTES
from mdm.api.sensitive import refuse_sensitive_search
from mdm.bootstrap import Hub
from mdm.domain.errors import NotFound
from mdm.domain.sources import ENTITIES, check_entity
from mdm.services.matcher import SearchResult, search
from schemas.api import (
    UPSERT_BODY,
    DataQualityWarning,
    LinksView,
    LinkView,
    MatchCandidateView,
    MatchResponse,
)


def _band(probability: float, found: SearchResult) -> Literal["auto_link", "review", "below"]:
    if probability >= found.auto_link:
        return "auto_link"
    return "review" if probability >= found.review else "below"


def _match_response(found: SearchResult) -> MatchResponse:
    return MatchResponse(
        decision=found.decision.outcome,
        golden_id=found.decision.golden_id,
        reason=found.decision.reason,
        model_version=found.model_version,
        candidates=[
            MatchCandidateView(
                golden_id=golden_id,
                weight=score.weight,
                probability=score.probability,
                band=_band(score.probability, found),
                explanation=score.to_dict(),
            )
            for golden_id, score in found.scores
        ],
        warnings=[DataQualityWarning(**w) for w in found.warnings],
    )


def _match_route(entity: str) -> HTTPRouteHandler:
    body_type = UPSERT_BODY[entity]

    async def match(
        hub: NamedDependency[Hub],
        request: Request[Any, Any, Any],
        data: JSONBody[body_type],  # type: ignore[valid-type]
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 10,
    ) -> MatchResponse:
        """Without the sensitive grant, a request sending a sensitive attribute is
        refused (403): its candidates would confirm the value."""
        attributes = msgspec.to_builtins(data.attributes)  # type: ignore[attr-defined]
        refuse_sensitive_search(attributes, hub.rules.sensitive, identity_of(request).sensitive)
        async with hub.reader() as uow:
            found = await search(uow, hub.rules, entity, attributes, limit)
        return _match_response(found)

    return post(
        f"/v1/match/{entity}",
        name=f"match_{entity}",
        tags=["matching"],
        status_code=200,
        summary=f"Rank the golden records a {entity} record matches; stores nothing",
        operation_id=f"match_{entity}",
        opt=requires(Permission.READ),
    )(match)


@post(
    "/v1/match/{entity:str}",
    include_in_schema=False,
    status_code=200,
    opt=requires(Permission.READ),
)
async def match_unknown_entity(entity: FromPath[str]) -> None:
    check_entity(entity)  # raises UnknownEntity with the list of known types


MATCH_ROUTES: list[HTTPRouteHandler] = [
    *(_match_route(e) for e in ENTITIES),
    match_unknown_entity,
    *REMATCH_ROUTES,
]


class MatchingController(Controller):
    path = "/v1"
    tags = ["matching"]

    @get(
        "/golden/{entity:str}/{golden_id:str}/links",
        operation_id="get_links",
        opt=requires(Permission.READ),
    )
    async def links(
        self,
        hub: NamedDependency[Hub],
        entity: FromPath[str],
        golden_id: Annotated[str, PathParameter(max_length=64)],
    ) -> LinksView:
        """Why each live source record is in this golden record: rule, score, waterfall."""
        check_entity(entity)
        async with hub.reader() as uow:
            golden = await uow.records.golden(golden_id)
            if golden is None or golden.entity != entity:
                raise NotFound(f"no {entity} golden record {golden_id!r}")
            rows = await uow.matches.links(golden_id)
        return LinksView(
            golden_id=golden_id,
            links=[
                LinkView(
                    source=r["source"],
                    source_id=r["source_id"],
                    rule=r["link_rule"],
                    weight=r["link_weight"],
                    probability=r["link_probability"],
                    model_version=r["link_model_version"],
                    explanation=r["link_explanation"],
                    received_at=r["received_at"],
                )
                for r in rows
            ],
        )
