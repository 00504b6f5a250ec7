"""Who is acting: the one place a request's actor is decided.

Always the authenticated caller (mdm.api.auth.identity_of); the `actor` a body or
query names is kept as "on behalf of" (a shared tool key acting for a named
steward: docs/security.md).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from mdm.api import auth


def actor_of(
    connection: ASGIConnection[Any, Any, Any, Any], given: str | None, path: str = "$.actor"
) -> str:
    """The actor of this request; `path` names where `given` came from (for callers'
    symmetry with validation; the authenticated identity is never missing here)."""
    return auth.actor_of(connection, given.strip() if given else None)
