"""Who is acting: the one place a request's actor is decided.

Until authentication lands the actor is the `actor` the body (or query) names,
as the merge and override APIs take it. With authentication this function
returns the authenticated identity instead, and every caller follows.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from mdm.domain.errors import FieldProblem, ValidationFailed


def actor_of(request: Request[Any, Any, Any], given: str | None, path: str = "$.actor") -> str:
    """The actor of this request: the named one (required until keys identify callers)."""
    if given is None or not given.strip():
        raise ValidationFailed(
            "who decides must be named", [FieldProblem(path, "required: the steward's name")]
        )
    return given.strip()
