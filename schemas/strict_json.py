"""The JSON text the hub takes: RFC 8259, nested at most MAX_DEPTH levels, no key twice.

msgspec decodes (as litestar does, so the values are exactly what they were);
then the nesting is measured on the decoded value, level by level, and the
text is scanned once more by the standard library's parser, whose
`object_pairs_hook` sees every key of an object, duplicates included
(msgspec, like most decoders, keeps the last one silently).

A text nested deeper than the decoders' recursion allows (thousands of
levels) is refused the same way as one over the limit, not left to raise
RecursionError; a bounded depth also keeps every later step (conversion to
the schema's types, PostgreSQL's jsonb) far from their own limits.
"""

from __future__ import annotations

import json
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
    when it is nested too deeply or holds a key twice in one object."""
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise _too_deep() from None
    if _deeper_than(value, MAX_DEPTH):
        raise _too_deep()
    try:
        _unique_keys.decode(text.decode())
    except _Duplicate:
        raise JsonRefused(
            "the key appears more than once in this object", _duplicate_path(text)
        ) from None
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


class _Duplicate(Exception):
    pass


def _no_duplicate(pairs: list[tuple[str, Any]]) -> None:
    if len(dict(pairs)) != len(pairs):
        raise _Duplicate
    # The values are not kept: the decoded value is msgspec's.


def _skip(_: str) -> None:
    return None


def _keys_decoder(hook: Any) -> json.JSONDecoder:
    # Only the keys matter: numbers are not converted (nor limited in digits).
    return json.JSONDecoder(
        object_pairs_hook=hook, parse_float=_skip, parse_int=_skip, parse_constant=_skip
    )


class _Pairs(list[tuple[str, Any]]):
    """An object as its key/value pairs in order, duplicates kept."""


_unique_keys = _keys_decoder(_no_duplicate)
_pairs = _keys_decoder(_Pairs)


def _duplicate_path(text: bytes) -> str:
    """The path of the first key found twice (the text is valid JSON within MAX_DEPTH)."""
    return _find_duplicate(_pairs.decode(text.decode()), "$") or "$"


def _find_duplicate(value: Any, path: str) -> str | None:
    if isinstance(value, _Pairs):
        seen: set[str] = set()
        for key, item in value:
            where = _path_of(path, key)
            if key in seen:
                return where
            seen.add(key)
            if found := _find_duplicate(item, where):
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if found := _find_duplicate(item, f"{path}[{i}]"):
                return found
    return None


def _path_of(parent: str, key: str) -> str:
    """`$.name`, or `$["odd key"]` when the key is not a plain name."""
    return f"{parent}.{key}" if key.isidentifier() else f"{parent}[{json.dumps(key)}]"
