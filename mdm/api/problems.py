"""Every error leaves the hub as RFC 9457 problem details, mapped here once."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mdm.api.json_body import MalformedJson
from mdm.domain.errors import (
    Conflict,
    FieldProblem,
    IdempotencyConflict,
    MdmError,
    NotFound,
    SensitiveSearchForbidden,
    ValidationFailed,
    WriteForbidden,
)
from schemas.api import FieldError, Problem
from schemas.text import explain

log = logging.getLogger("mdm.api")

PROBLEM_JSON = "application/problem+json"
_encoder = msgspec.json.Encoder()


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = Problem(title=title, status=status, detail=detail, instance=instance, errors=errors)
    return Response(
        _encoder.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


# The HTTP status of each domain error, the most specific class first: the first
# class of an error's MRO found here decides (an unlisted MdmError is a 400).
STATUS: dict[type[MdmError], int] = {
    MalformedJson: 400,  # a ValidationFailed, so that its body names the place
    SensitiveSearchForbidden: 403,  # a ValidationFailed, so that its body names the fields
    ValidationFailed: 422,
    NotFound: 404,
    WriteForbidden: 403,
    IdempotencyConflict: 422,
    Conflict: 409,
    MdmError: 400,
}


def status_of(exc: MdmError) -> int:
    """The HTTP status of a domain error (STATUS)."""
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 400


def field_errors(problems: list[FieldProblem]) -> list[FieldError]:
    return [FieldError(path=p.path, message=p.message) for p in problems]


def _mdm_error(request: Request[Any, Any, Any], exc: MdmError) -> Response[bytes]:
    errors = field_errors(exc.errors) if isinstance(exc, ValidationFailed) else None
    return problem_response(status_of(exc), exc.title, exc.detail, request.url.path, errors)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            key = item.get("key")
            source = item.get("source")
            source = getattr(source, "value", source)  # litestar's ParamType enum -> "query"
            message = str(item.get("message", ""))
            path = f"$.{key}" if key and source == "body" else (key or "$")
            if source and source != "body":
                path = f"{source}:{key}"
            elif key == "data":  # the JSON body: msgspec's message names the field
                path, message = _body_path(message)
            errors.append(FieldError(path=path, message=explain(message)))
    detail = "the request does not match the schema" if errors else exc.detail
    return problem_response(422, "Validation failed", detail, request.url.path, errors or None)


_AT = re.compile(r"^(?P<message>.*) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_FIELD = re.compile(r"(?:missing required|unknown) field `(?P<field>[^`]+)`")


def _body_path(message: str) -> tuple[str, str]:
    """msgspec's "Expected `str`, got `int` - at `$.value`" -> ("$.value", "Expected ...")."""
    path = "$"
    if m := _AT.match(message):
        path, message = m["path"], m["message"]
    if f := _FIELD.search(message):
        path = f"{path}.{f['field']}"
    return path, message


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    title = {
        400: "Bad request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        413: "Request body too large",
        415: "Unsupported media type",
        429: "Too many requests",
    }.get(exc.status_code, "HTTP error")
    return problem_response(
        exc.status_code, title, exc.detail, request.url.path, headers=exc.headers
    )


def _database_down(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("database unavailable: %s", exc)
    return problem_response(
        503,
        "Service unavailable",
        "the database is not reachable; nothing was changed, retry later",
        request.url.path,
        headers={"Retry-After": "2"},
    )


#: SQLSTATEs that say the server is unavailable, not that the request was wrong: a
#: restart answers new connections 57P03 "the database system is shutting down" /
#: "... is starting up" (asyncpg's CannotConnectNowError), which SQLAlchemy wraps in
#: a plain DBAPIError on a connection it does not invalidate: that was a 500. Class
#: 08 is a connection exception; 57P01/57P02 an administrator's or a crash's shutdown
#: of the session; 53300 too many connections.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means PostgreSQL is out of reach (503 and retry), not a bug (500)."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout, OSError)):
        return True
    # asyncpg's own errors, unwrapped: the lookup path (mdm/adapters/lookup_cache.py)
    # talks to asyncpg directly, without SQLAlchemy.
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.PostgresConnectionError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith("08") or state in _UNAVAILABLE_STATES
    if not isinstance(exc, DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or ""
    return exc.connection_invalidated or state.startswith("08") or state in _UNAVAILABLE_STATES


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if database_unavailable(exc):
        return _database_down(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, "Internal server error", None, request.url.path)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    MdmError: _mdm_error,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
