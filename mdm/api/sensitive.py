"""Sensitive attributes for callers without the grant: masked in answers, refused in searches.

Masking is one function over the JSON an answer is made of, so every route (and
every new one) is covered without each handler remembering to call it: a key
named like a sensitive attribute has its value replaced, wherever it is; so does
everything a waterfall row says about a field that compares one (`{"field":
"national_id", "level", "left", "right", "weight", ...}`: its values, and its
level and weight, which would tell whether the values agree), a pin's value
(`{"attribute": "national_id", "value"}`), and a sensitive name in the list of
attributes that differ between two golden records. Provenance (which source gave
the value, by which rule) stays readable.

Searching is refused rather than masked: a match request that sends a sensitive
value would confirm it by the candidates it finds (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matching.model import default_model
from mdm.domain.errors import FieldProblem, SensitiveSearchForbidden
from mdm.domain.sources import ENTITIES

MASK = "***"

_ROW_VALUE_KEYS = frozenset(  # what a row about one attribute or compared field says of it
    {"left", "right", "value", "values", "level", "level_index", "weight", "tf_adjustment"}
)
_NOT_VALUES = frozenset({"provenance"})  # attribute name -> where the value came from
_COMPARED_NAMES = frozenset({"different"})  # attribute names whose values differ


def compared_fields(sensitive: frozenset[str]) -> frozenset[str]:
    """The match models' fields that compare a sensitive attribute (wholly or in part).

    A field is named in waterfalls by its own name, which may compare several
    attributes (a worker's given_name field also reads family_name, for swapped
    names); trained models keep the fields of the packaged ones.
    """
    fields = set(sensitive)
    for entity in ENTITIES:
        for f in default_model(entity).fields:
            if any(path.split(".")[0] in sensitive for path in f.source):
                fields.add(f.name)
    return frozenset(fields)


def mask(data: Any, sensitive: frozenset[str], compared: frozenset[str] | None = None) -> Any:
    """A copy of JSON-like `data` with the values of sensitive attributes replaced by MASK.

    `compared`: the match fields whose waterfall rows are masked (compared_fields;
    by default the sensitive attribute names themselves).
    """
    compared = sensitive if compared is None else compared
    if isinstance(data, list):
        return [mask(item, sensitive, compared) for item in data]
    if not isinstance(data, dict):
        return data
    row_is_sensitive = _names(data.get("attribute"), sensitive) or _names(
        data.get("field"), compared
    )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            out[key] = None
        elif key in sensitive or (row_is_sensitive and key in _ROW_VALUE_KEYS):
            out[key] = MASK
        elif key in _NOT_VALUES and isinstance(value, dict):
            out[key] = value
        elif key in _COMPARED_NAMES and isinstance(value, list):
            out[key] = [name for name in value if name not in sensitive]
        else:
            out[key] = mask(value, sensitive, compared)
    return out


def _names(name: Any, names: frozenset[str]) -> bool:
    return isinstance(name, str) and name in names


def refuse_sensitive_search(
    attributes: Mapping[str, Any], sensitive: frozenset[str], granted: bool
) -> None:
    """Raise SensitiveSearchForbidden (403) when a caller without the grant searches by
    a sensitive value; name each such attribute by its path in the request body."""
    if granted:
        return
    sent = sorted(k for k, v in attributes.items() if k in sensitive and v is not None)
    if sent:
        raise SensitiveSearchForbidden(
            "searching by sensitive attributes needs the sensitive grant; "
            "send the request without them",
            [FieldProblem(f"$.attributes.{name}", "sensitive: needs the grant") for name in sent],
        )
