"""The business dashboard and the stewards' golden-record search."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from matching.model import MatchModel, default_model
from mdm.adapters.dashboard import DashboardStore
from mdm.adapters.data_quality import find_exceptions
from mdm.adapters.history import WEIGHT_HIGH, WEIGHT_LOW, Bin, HistoryStore, Point, probability_of
from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.api.auth import Permission, identity_of, requires
from mdm.api.openapi import UNKNOWN_ENTITY
from mdm.bootstrap import Hub
from mdm.domain.sources import ENTITIES, check_entity
from publishers.outbox import lag
from schemas.api import (
    CountBy,
    DashboardHistory,
    DashboardView,
    GoldenSearchHit,
    GoldenSearchResponse,
    HistoryPoint,
    OutboxLag,
    ProbabilityBin,
    ProbabilityHistogram,
    ReviewAge,
)

#: The longest window the dashboard shows, in hours (the history's default retention).
MAX_HOURS = 30 * 24


@get(
    "/v1/dashboard",
    tags=["stewardship"],
    operation_id="get_dashboard",
    opt=requires(Permission.READ),
)
async def dashboard(
    hub: NamedDependency[Hub],
    hours: Annotated[
        int,
        QueryParameter(
            ge=1,
            le=MAX_HOURS,
            description="The hours of history the series cover, this one included.",
        ),
    ] = 24,
) -> DashboardView:
    """Records per source and entity, match and review outcomes, open reviews by age,
    data-quality warnings by kind, and the outbox's lag; for the charts, the kept match
    probabilities per entity with the thresholds in force, and the hourly history of
    the last `hours` (decisions per day over at least a week)."""
    days = max(7, -(-hours // 24))
    async with hub.reader() as repo:
        counts = await DashboardStore(repo.conn).counts()
        pending, lag_seconds = await lag(repo.conn)
        _, _, exceptions = await find_exceptions(repo.conn, None, None, None, 1, 0)
        history = HistoryStore(repo.conn)
        points = await history.series(hours)
        per_day = await history.decisions_per_day(days)
        histograms = _histograms(await history.probability_bins(), await _models(repo))
        since = await history.first_hour(hours)

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
        probabilities=histograms,
        history=DashboardHistory(
            hours=hours,
            since=since,
            ingested=_points(points, "ingested"),
            open_reviews=_points(points, "open_reviews"),
            decisions_per_day=[_point(p) for p in per_day],
            days=days,
            outbox_lag_seconds=_points(points, "outbox_lag_seconds"),
            outbox_pending=_points(points, "outbox_pending"),
            exceptions=_points(points, "exceptions"),
        ),
    )


def _point(p: Point) -> HistoryPoint:
    return HistoryPoint(at=p.at, value=p.value, entity=p.entity, source=p.source, key=p.label)


def _points(points: list[Point], series: str) -> list[HistoryPoint]:
    return [_point(p) for p in points if p.series == series]


async def _models(repo: SqlUnitOfWork) -> dict[str, tuple[int, MatchModel]]:
    """Each entity's model in force (the packaged default while none is stored)."""
    out = {}
    for entity in ENTITIES:
        stored = await repo.matches.model(entity)
        model = default_model(entity) if stored is None else MatchModel.validated(stored.model)
        out[entity] = (model.version if stored is None else stored.version, model)
    return out


def _histograms(
    bins: list[Bin], models: dict[str, tuple[int, MatchModel]]
) -> list[ProbabilityHistogram]:
    out = []
    for entity, (version, model) in models.items():
        counts: dict[int, dict[str, int]] = {}
        for b in bins:
            if b.entity == entity:
                counts.setdefault(b.weight, {})[b.kind] = b.count
        out.append(
            ProbabilityHistogram(
                entity=entity,
                model_version=version,
                review=model.thresholds.review,
                auto_link=model.thresholds.auto_link,
                bins=[
                    ProbabilityBin(
                        weight=w,
                        low=0.0 if w <= WEIGHT_LOW else probability_of(w),
                        high=1.0 if w >= WEIGHT_HIGH - 1 else probability_of(w + 1),
                        linked=c.get("linked", 0),
                        merged=c.get("merged", 0),
                        not_a_match=c.get("not_a_match", 0),
                        undecided=c.get("undecided", 0),
                    )
                    for w, c in sorted(counts.items())
                ],
            )
        )
    return out


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
