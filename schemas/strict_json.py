"""The JSON text the hub takes: RFC 8259, nested at most MAX_DEPTH levels.

msgspec decodes (as litestar does, so the values are exactly what they were);
then the nesting is measured on the decoded value, level by level.

A text nested deeper than the decoder's recursion allows (thousands of levels)
is refused the same way as one over the limit, not left to raise
RecursionError; a bounded depth also keeps every later step (conversion to
the schema's types, PostgreSQL's jsonb) far from their own limits.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: The deepest nesting taken. The hub's own bodies are five levels at most (a
#: batch, an item, its attributes, an address, a value); a pinned value may be
#: any JSON.
MAX_DEPTH = 64

_decoder = msgspec.json.Decoder()


class JsonRefused(ValueError):
    """Well-formed JSON the hub does not take; `path` names where (`$` for the whole)."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def decode(text: bytes) -> Any:
    """`text` as Python builtins; msgspec.DecodeError when it is not JSON, JsonRefused
    when it is nested too deeply."""
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise _too_deep() from None
    if _deeper_than(value, MAX_DEPTH):
        raise _too_deep()
    return value


def _too_deep() -> JsonRefused:
    return JsonRefused(f"the JSON is nested too deeply: at most {MAX_DEPTH} levels")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` arrays or objects; one level at a time,
    without recursion."""
    level = [value]
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            if type(item) is dict:
                below.extend(item.values())
            elif type(item) is list:
                below.extend(item)
        if not below:
            return False
        level = below
    return any(type(item) is dict or type(item) is list for item in level)
