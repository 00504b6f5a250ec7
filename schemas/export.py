"""JSON Schema of the inbound bodies, for connector authors to validate before sending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from schemas.api import BATCH_ITEM, UPSERT_BODY
from schemas.entities import ENTITY_TYPES
from schemas.events import Event, ReviewEvent

JSON_DIR = Path(__file__).parent / "json"


def schema_documents() -> dict[str, bytes]:
    """File name -> JSON Schema document (draft 2020-12), one per entity, body and event."""
    docs: dict[str, bytes] = {}
    named = {
        **{f"{name}.schema.json": cls for name, cls in ENTITY_TYPES.items()},
        **{f"{name}.upsert.schema.json": cls for name, cls in UPSERT_BODY.items()},
        **{f"{name}.batch-item.schema.json": cls for name, cls in BATCH_ITEM.items()},
        "event.schema.json": Event,
        "review-event.schema.json": ReviewEvent,
    }
    for filename, cls in named.items():
        schema = msgspec.json.schema(cls)
        _add_struct_rules(schema, cls)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        docs[filename] = msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n"
    return docs


def _add_struct_rules(schema: dict[str, Any], cls: Any) -> None:
    """Add each Struct's `__json_schema_extra__` (a rule across its fields) to its definition."""
    structs = {struct.__name__: struct for struct in _structs(msgspec.inspect.type_info(cls))}
    for name, definition in schema.get("$defs", {}).items():
        definition.update(getattr(structs.get(name), "__json_schema_extra__", {}))


def _structs(t: Any, seen: set[type] | None = None) -> set[type]:
    """Every Struct class in a msgspec type description (its fields' types included)."""
    seen = set() if seen is None else seen
    if isinstance(t, msgspec.inspect.StructType):
        if t.cls in seen:
            return seen
        seen.add(t.cls)
    if isinstance(t, msgspec.Struct):  # msgspec.inspect's types and fields are Structs
        for value in msgspec.structs.astuple(t):
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, msgspec.Struct):
                    _structs(item, seen)
    return seen


def write_json_schemas(folder: Path | None = None) -> list[Path]:
    folder = folder or JSON_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, body in schema_documents().items():
        path = folder / filename
        path.write_bytes(body)
        written.append(path)
    return written
