"""Request bodies are checked strictly against their type, as the OpenAPI document says.

litestar converts a body to the route's `data` type in msgspec's lax mode: a
numeric string passes for a number, a number for a time ("source_updated_at":
0 was 1970), "null" for null. The document, the exported JSON Schema and the
batch routes (mdm/services/ingest/prepare.py decode_item) allow none of that, so one
rule holds for every body: `strict_body`, the app's before-request hook,
converts it strictly first and answers a 422 as litestar's own does. A whole
number written 2.0 is still an integer, as in JSON Schema.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException, ValidationException


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """Refuse a body that only msgspec's lax mode would take (before litestar converts it)."""
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    if field is None or not await request.body():
        return
    try:
        raw = await request.json()
    except SerializationException:
        return  # not JSON: litestar answers the 400
    try:
        msgspec.convert(raw, field.annotation, strict=True)
    except msgspec.ValidationError:
        try:
            msgspec.convert(_whole_numbers(raw), field.annotation, strict=True)
        except msgspec.ValidationError as exc:
            raise _invalid(str(exc)) from exc


# msgspec's "Expected `int`, got `str` - at `$.decisions[0].task_id`"
_AT = re.compile(r" - at `\$\.(.+)`$")


def _invalid(message: str) -> ValidationException:
    """The exception litestar raises for a body that does not convert, with the same
    error (mdm/api/problems.py answers it: a 422 naming the field's path)."""
    where = _AT.search(message)
    return ValidationException(
        "the request does not match the schema",
        extra=[
            {
                "key": where.group(1) if where else "data",
                "source": "body",
                "message": message.split(" - ", 1)[0],
            }
        ],
    )


def _whole_numbers(value: Any) -> Any:
    """`value` with every whole float an int: JSON (and JSON Schema's integer) makes 2.0 2."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    return value
