"""The ceilings bench/load_test.py measures the hub against, served like `mdm serve` serves.

`GET /plain`: a bare litestar endpoint answering a small constant JSON.
`GET /pk/{golden_id}`: a bare litestar endpoint and one raw asyncpg primary-key
lookup (golden_record's status and version) on the same database as the hub,
on an asyncpg pool of the hub's lookup pool size, answered as JSON by litestar.

    MDM_BENCH_BARE_DSN=postgresql://... uvicorn --app-dir bench --factory bare_app:create
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

_PK = "SELECT golden_id, status, version FROM golden_record WHERE golden_id = $1"


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


@get("/plain")
async def plain() -> dict[str, Any]:
    return {"status": "ok", "service": "bare"}


@get("/pk/{golden_id:str}")
async def by_pk(state: State, golden_id: str) -> dict[str, Any]:
    row = await state.pool.fetchrow(_PK, golden_id)
    if row is None:
        raise NotFoundException(f"no golden record {golden_id!r}")
    return {"golden_id": row["golden_id"], "status": row["status"], "version": row["version"]}


def create() -> Litestar:
    dsn = os.environ.get("MDM_BENCH_BARE_DSN")

    async def start(app: Litestar) -> None:
        if dsn:
            # No reset query on release, as the hub's lookup pool: one round trip a lookup.
            app.state.pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, reset=_no_reset)

    async def stop(app: Litestar) -> None:
        if dsn:
            await app.state.pool.close()

    return Litestar([plain, by_pk], on_startup=[start], on_shutdown=[stop], logging_config=None)
