"""Operations endpoints: health."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.di import NamedDependency
from sqlalchemy import text

from mdm.api.auth import Permission, requires
from mdm.bootstrap import Hub
from schemas.api import Health


async def _database_ok(hub: Hub) -> bool:
    try:
        async with asyncio.timeout(2):
            async with hub.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@get("/health", tags=["ops"], operation_id="health", opt=requires(Permission.PUBLIC))
async def health(hub: NamedDependency[Hub]) -> Response[Health]:
    """200 when PostgreSQL and NATS both answer, 503 (with which one failed) otherwise."""
    db_ok, nats_ok = await asyncio.gather(_database_ok(hub), hub.nats.healthy())
    body = Health(
        status="ok" if db_ok and nats_ok else "degraded",
        database="ok" if db_ok else "unreachable",
        nats="ok" if nats_ok else "unreachable",
    )
    return Response(body, status_code=200 if db_ok and nats_ok else 503)
