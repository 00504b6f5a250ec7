"""The business dashboard and the stewards' golden-record search."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from mdm.adapters.dashboard import DashboardStore
from mdm.adapters.data_quality import find_exceptions
from mdm.api.auth import Permission, identity_of, requires
from mdm.api.openapi import UNKNOWN_ENTITY
from mdm.bootstrap import Hub
from mdm.domain.sources import check_entity
from publishers.outbox import lag
from schemas.api import (
    CountBy,
    DashboardView,
    GoldenSearchHit,
    GoldenSearchResponse,
    OutboxLag,
    ReviewAge,
)


@get(
    "/v1/dashboard",
    tags=["stewardship"],
    operation_id="get_dashboard",
    opt=requires(Permission.READ),
)
async def dashboard(hub: NamedDependency[Hub]) -> DashboardView:
    """Records per source and entity, match and review outcomes, open reviews by age,
    data-quality warnings by kind, and the outbox's lag."""
    async with hub.reader() as repo:
        counts = await DashboardStore(repo.conn).counts()
        pending, lag_seconds = await lag(repo.conn)
        _, _, exceptions = await find_exceptions(repo.conn, None, None, None, 1, 0)

    def by(name: str) -> list[CountBy]:
        return [CountBy(entity=e, key=k, count=n) for e, k, n in counts[name]]

    return DashboardView(
        records=by("records"),
        golden=by("golden"),
        match_outcomes=by("match_outcomes"),
        review_outcomes=by("review_outcomes"),
        open_reviews_by_age=[
            ReviewAge(entity=e, bucket=b, count=n)  # type: ignore[arg-type]
            for e, b, n in counts["open_reviews_by_age"]
        ],
        quality_warnings=by("quality_warnings"),
        exceptions=exceptions,
        outbox=OutboxLag(pending=pending, lag_seconds=lag_seconds),
        generated_at=dt.datetime.now(dt.UTC),
    )


@get(
    "/v1/search/golden",
    tags=["stewardship"],
    operation_id="search_golden",
    opt=requires(Permission.READ),
    responses=UNKNOWN_ENTITY,
)
async def search_golden(
    hub: NamedDependency[Hub],
    request: Request[Any, Any, Any],
    q: Annotated[str, QueryParameter(min_length=1, max_length=200)],
    entity: Annotated[str | None, QueryParameter(max_length=32)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
) -> GoldenSearchResponse:
    """Golden records by any source id (`C-77` or `erp:C-77`), golden id, or part of the name.

    A name attribute declared sensitive is searched only for callers with the grant.
    """
    if entity is not None:
        check_entity(entity)
    hidden = frozenset() if identity_of(request).sensitive else hub.rules.sensitive
    async with hub.reader() as repo:
        hits = await DashboardStore(repo.conn).search(q.strip(), entity, limit, hidden)
    return GoldenSearchResponse(hits=[GoldenSearchHit(**h) for h in hits])
