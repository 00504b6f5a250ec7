"""Every JSON body is read here: one strict decoding for all routes (schemas/strict_json.py).

litestar's Request decodes a body for any route taking `data`; this subclass
(the app's `request_class`) decodes it with the hub's rules instead, so that
no handler checks on its own. A body must say it is JSON: `application/json`
or `application/<x>+json`, with any parameters (RFC 8259 defines no charset:
JSON is UTF-8); text/plain, a form or no Content-Type at all is a 415, not
taken for JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, HTTPException
from litestar.types import Empty

from mdm.domain.errors import FieldProblem, ValidationFailed
from schemas import strict_json


class MalformedJson(ValidationFailed):
    """The body is JSON the hub does not take (nested too deeply, a key twice): a 400."""

    title = "Malformed JSON body"


class JsonRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        """The body, decoded once per request (the strict type check, mdm/api/bodies.py,
        and litestar's conversion to the route's type both read it)."""
        if self._json is not Empty:
            return self._json
        media_type, _ = self.content_type
        if not _is_json(media_type):
            raise HTTPException(
                status_code=415,
                detail=f"the body must be JSON, sent as application/json, not as "
                f"{media_type or 'no Content-Type'}",
            )
        body = await self.body()
        try:
            self._json = strict_json.decode(body or b"null")
        except msgspec.DecodeError as exc:
            raise ClientException(str(exc)) from None
        except strict_json.JsonRefused as exc:
            raise MalformedJson(exc.message, [FieldProblem(exc.path, exc.message)]) from None
        return self._json


def _is_json(media_type: str) -> bool:
    # litestar gives the media type lowercased, without its parameters.
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
