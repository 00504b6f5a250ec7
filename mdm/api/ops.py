"""Operations endpoints: health, and who the caller is."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from sqlalchemy import text

from mdm.api.auth import Permission, identity_of, requires
from mdm.bootstrap import Hub
from schemas.api import Health, WhoAmI


async def _database_ok(hub: Hub) -> bool:
    try:
        async with asyncio.timeout(2):
            async with hub.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@get(
    "/health",
    tags=["ops"],
    operation_id="health",
    opt=requires(Permission.PUBLIC),
    responses={503: ResponseSpec(Health, description="PostgreSQL or NATS does not answer")},
)
async def health(hub: NamedDependency[Hub]) -> Response[Health]:
    """200 when PostgreSQL and NATS both answer, 503 (with which one failed) otherwise."""
    db_ok, nats_ok = await asyncio.gather(_database_ok(hub), hub.nats.healthy())
    body = Health(
        status="ok" if db_ok and nats_ok else "degraded",
        database="ok" if db_ok else "unreachable",
        nats="ok" if nats_ok else "unreachable",
    )
    return Response(body, status_code=200 if db_ok and nats_ok else 503)


@get("/v1/me", tags=["ops"], operation_id="whoami", opt=requires(Permission.AUTHENTICATED))
async def whoami(request: Request[Any, Any, Any]) -> WhoAmI:
    """The caller as the hub sees it: role, source, key or token, the sensitive grant.

    For a page or a script to check its key before it works (401 for a bad one).
    """
    who = identity_of(request)
    return WhoAmI(
        role=who.role,  # type: ignore[arg-type]
        name=who.name,
        actor=who.actor,
        source=who.source,
        key_id=who.key_id,
        subject=who.subject,
        sensitive=who.sensitive,
    )
