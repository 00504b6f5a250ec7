"""JSON Schema of the inbound bodies, for connector authors to validate before sending."""

from __future__ import annotations

from pathlib import Path

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
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        docs[filename] = msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n"
    return docs


def write_json_schemas(folder: Path | None = None) -> list[Path]:
    folder = folder or JSON_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, body in schema_documents().items():
        path = folder / filename
        path.write_bytes(body)
        written.append(path)
    return written
