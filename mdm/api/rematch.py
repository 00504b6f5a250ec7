"""Re-matching what the hub holds: start a run (admin), and the matching status (read)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from litestar import get, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, QueryParameter
from sqlalchemy.ext.asyncio import AsyncEngine

from mdm.api.auth import Permission, requires
from mdm.api.openapi import problem
from mdm.bootstrap import Hub
from mdm.domain.ports import UnitOfWork
from mdm.domain.stored import Run
from mdm.services.adoption import retrain_due
from mdm.services.rematch import CHUNK, Rematch, status
from schemas.rematch import MatchStatus, RematchRunView, RematchStarted

log = logging.getLogger("mdm.rematch")

#: Runs this process is working on, each with the engine of the hub that started it
#: (a reference keeps each task alive; `stop_runs` ends a hub's own at its shutdown).
_RUNNING: dict[asyncio.Task[Run], AsyncEngine] = {}


async def stop_runs(engine: AsyncEngine) -> None:
    """Cancel the runs a hub started (at its shutdown): each one's chunk in hand rolls
    back, and the run continues from its last committed chunk when started again."""
    mine = [task for task, owner in _RUNNING.items() if owner is engine]
    for task in mine:
        task.cancel()
    await asyncio.gather(*mine, return_exceptions=True)


def run_view(run: Run) -> RematchRunView:
    return RematchRunView(
        run_id=run.id,
        model_version=run.model_version,
        status=run.status,  # type: ignore[arg-type]
        done=run.done,
        total=run.total,
        merged=run.merged,
        reviews=run.reviews,
        withdrawn=run.withdrawn,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


async def _work(run: Rematch, chunk: int) -> Run:
    try:
        return await run.run(chunk)
    except Exception:
        log.exception("re-matching run %s of %s stopped", run.state.id, run.entity)
        raise


@post(
    "/v1/match/{entity:str}/rematch",
    tags=["matching"],
    status_code=202,
    operation_id="start_rematch",
    summary="Re-match the golden records held under the current model, in the background",
    opt=requires(Permission.ADMIN),
    responses={409: problem("A re-matching run of this entity is under way")},
)
async def start_rematch(
    hub: NamedDependency[Hub],
    entity: FromPath[str],
    chunk: Annotated[int, QueryParameter(ge=1, le=10_000)] = CHUNK,
) -> RematchStarted:
    """Starts (or continues an interrupted) run; 409 while one runs. Poll
    `GET /v1/match/{entity}/status` for its progress."""
    run = await Rematch.claim(hub.units, hub.rules, entity)
    task = asyncio.create_task(_work(run, chunk))
    _RUNNING[task] = hub.engine
    task.add_done_callback(lambda done: _RUNNING.pop(done, None))
    return RematchStarted(entity=entity, resumed=run.resumed, run=run_view(run.state))


@get(
    "/v1/match/{entity:str}/status",
    tags=["matching"],
    operation_id="match_status",
    summary="The model in force, the records held since it was fitted, and re-matching",
    opt=requires(Permission.READ),
)
async def match_status(hub: NamedDependency[Hub], entity: FromPath[str]) -> MatchStatus:
    """`state` is `running` while a run works, `training` while the hub's automatic
    training of the entity runs, `pending` when the model in force was fitted after
    records were held and no run under it finished (or one was interrupted),
    `training_due` when the hub's retraining check (`mdm serve`) is to train the
    entity at its next check, `idle` otherwise."""
    policy = hub.settings.retrain

    async def due(uow: UnitOfWork, name: str) -> bool:
        return await retrain_due(uow, name, policy.growth, policy.minimum)

    async with hub.transaction() as uow:
        found = await status(uow, hub.rules, entity, due if policy.interval > 0 else None)
    return MatchStatus(
        entity=found.entity,
        model_version=found.model_version,
        fitted_at=found.fitted_at,
        trained_on=found.trained_on,
        records=found.records,
        records_since_fit=found.records_since_fit,
        state=found.state,  # type: ignore[arg-type]
        rematch=run_view(found.run) if found.run is not None else None,
    )


REMATCH_ROUTES: list[HTTPRouteHandler] = [start_rematch, match_status]
