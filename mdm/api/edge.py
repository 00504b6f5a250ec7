"""The request's edge: what every request must be before any route sees it.

An ASGI wrapper in front of the whole app (the xref fast path included,
mdm/api/fast_lookup.py), so the rules hold for every route without a check in
each handler. A request breaking one is answered here with a 400 problem:

- the path and the query string are UTF-8 once percent-decoded. The server's
  own decoding replaces an invalid sequence with U+FFFD, so `a%FFb`, `a%FEb`
  and `a%C0b` would all name the one source id `a\ufffdb`; the path is decoded
  again here, strictly, from the raw bytes, and routed on that;
- no NUL character in the path, the query string or a header value
  (PostgreSQL's text cannot hold it: every id, search term and header the hub
  stores or looks up would reach it).

A source id may hold a slash (ERP ids such as `INV/2024/001`): a client sends
it percent-encoded (`INV%2F2024%2F001`) as one path segment. The server's
decoded path would split it into three, so the edge routes on its own: when a
segment holds a slash once decoded, every segment goes to the router with `/`
and `%` escaped (`INV%2F2024%2F001`), and the route's `SlashedSegments`
middleware (first of the app's) turns the path parameters back into what the
client meant before any handler sees them.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote, unquote_to_bytes

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from mdm.api.problems import PROBLEM_JSON
from schemas.api import Problem

_encoder = msgspec.json.Encoder()
#: In the scope when a segment holds a slash: the path as the client meant it.
SLASHED = "mdm_slashed_path"


class Edge:
    """Wraps the app's ASGI handler (`app.asgi_handler`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                _check(scope)
            except _Refused as refused:
                await _refuse(send, str(refused))
                return
        await self.app(scope, receive, send)


class _Refused(Exception):
    pass


def _check(scope: Scope) -> None:
    """Raise _Refused when the request breaks a rule; route on the strictly decoded path."""
    path, routed = _path(scope)
    if "\x00" in path:
        raise _Refused("the path holds a NUL character (%00)")
    scope["path"] = routed
    if routed != path:
        cast(dict[str, Any], scope)[SLASHED] = path
    if query := scope["query_string"]:
        if "\x00" in _decoded(query, "the query string"):
            raise _Refused("the query string holds a NUL character (%00)")
    for _, value in scope["headers"]:
        if b"\x00" in value:
            raise _Refused("a header holds a NUL character")


def _path(scope: Scope) -> tuple[str, str]:
    """The path as the client meant it, and as the router is to see it."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:  # a server that does not give the raw path: its decoding stands
        return scope["path"], scope["path"]
    # The raw path includes the root path (as scope["path"] does); some servers' (and
    # the test client's) raw path also carries the query string.
    if b"?" in raw:
        raw = raw.partition(b"?")[0]
    path = _decoded(raw, "the path")
    if b"%" not in raw or path.count("/") == raw.count(b"/"):
        return path, path
    segments = [_decoded(segment, "the path") for segment in raw.split(b"/")]
    return path, "/".join(s.replace("%", "%25").replace("/", "%2F") for s in segments)


def _decoded(raw: bytes, what: str) -> str:
    try:
        return (unquote_to_bytes(raw) if b"%" in raw else raw).decode()
    except UnicodeDecodeError:
        raise _Refused(f"{what} is not UTF-8 once percent-decoded") from None


async def _refuse(send: Send, detail: str) -> None:
    body = _encoder.encode(Problem(title="Bad request", status=400, detail=detail))
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class SlashedSegments(ASGIMiddleware):
    """After routing: a path whose segments were escaped for the router (a source id
    holding `/`) gets its parameters, and its path, as the client meant them."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path = cast(dict[str, Any], scope).get(SLASHED)
        if path is not None:
            scope["path_params"] = {
                name: unquote(value) if isinstance(value, str) else value
                for name, value in scope["path_params"].items()
            }
            scope["path"] = path
        await next_app(scope, receive, send)
