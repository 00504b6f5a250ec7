"""Every JSON body is read here: one strict decoding for all routes (schemas/strict_json.py).

litestar's Request decodes a body for any route taking `data`; this subclass
(the app's `request_class`) decodes it with the hub's rules instead, so that
no handler checks on its own.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException

from mdm.domain.errors import FieldProblem, ValidationFailed
from schemas import strict_json


class MalformedJson(ValidationFailed):
    """The body is JSON the hub does not take (nested too deeply ...): a 400."""

    status = 400
    title = "Malformed JSON body"


class JsonRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        body = await self.body()
        try:
            return strict_json.decode(body or b"null")
        except msgspec.DecodeError as exc:
            raise ClientException(str(exc)) from None
        except strict_json.JsonRefused as exc:
            raise MalformedJson(exc.message, [FieldProblem(exc.path, exc.message)]) from None
