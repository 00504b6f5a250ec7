"""The request's edge: what every request must be before any route sees it.

An ASGI wrapper in front of the whole app (the xref fast path included,
mdm/api/fast_lookup.py), so the rules hold for every route without a check in
each handler. A request breaking one is answered here with a 400 problem:

- no NUL character in the path, the query string or a header value
  (PostgreSQL's text cannot hold it: every id, search term and header the hub
  stores or looks up would reach it).
"""

from __future__ import annotations

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from mdm.api.problems import PROBLEM_JSON
from schemas.api import Problem

_encoder = msgspec.json.Encoder()


class Edge:
    """Wraps the app's ASGI handler (`app.asgi_handler`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (problem := _refusal(scope)):
            await _refuse(send, problem)
            return
        await self.app(scope, receive, send)


def _refusal(scope: Scope) -> str | None:
    """Why the request is refused, or None."""
    if "\x00" in scope["path"]:
        return "the path holds a NUL character (%00)"
    query = scope["query_string"]
    if b"\x00" in query or b"%00" in query:
        return "the query string holds a NUL character (%00)"
    if any(b"\x00" in value for _, value in scope["headers"]):
        return "a header holds a NUL character"
    return None


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
