"""Masking sensitive attributes in API answers for callers without the grant.

One function over the JSON an answer is made of, so every route (and every new
one) is covered without each handler remembering to call it: a key named like
a sensitive attribute has its value replaced, wherever it is; so do the values
compared in a waterfall row (`{"field": "national_id", "left", "right"}`) and a
pin's value (`{"attribute": "national_id", "value"}`). Provenance (which source
gave the value, by which rule) stays readable.
"""

from __future__ import annotations

from typing import Any

MASK = "***"

_ROW_NAME_KEYS = ("field", "attribute")  # a row about one attribute ...
_ROW_VALUE_KEYS = frozenset({"left", "right", "value", "values"})  # ... and its values
_NOT_VALUES = frozenset({"provenance"})  # attribute name -> where the value came from


def mask(data: Any, sensitive: frozenset[str]) -> Any:
    """A copy of JSON-like `data` with the values of sensitive attributes replaced by MASK."""
    if isinstance(data, list):
        return [mask(item, sensitive) for item in data]
    if not isinstance(data, dict):
        return data
    row_is_sensitive = any(
        isinstance(name := data.get(k), str) and name in sensitive for k in _ROW_NAME_KEYS
    )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            out[key] = None
        elif key in sensitive or (row_is_sensitive and key in _ROW_VALUE_KEYS):
            out[key] = MASK
        elif key in _NOT_VALUES and isinstance(value, dict):
            out[key] = value
        else:
            out[key] = mask(value, sensitive)
    return out
