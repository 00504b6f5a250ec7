"""The files a bulk load reads: NDJSON batch items, CSV and Parquet rows (nested
attributes as dotted columns), each row with its line or row number for reports.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from schemas import strict_json

FORMATS = ("ndjson", "csv", "parquet")
#: Parquet rows read at a time
READ_BATCH = 1000


def detect_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".ndjson", "ndjson"), (".jsonl", "ndjson"), (".csv", "csv")):
        if name.endswith(suffix):
            return fmt
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the format of {path.name}: give --format {'|'.join(FORMATS)}")


def count_rows(path: Path, fmt: str) -> int:
    """Records in the file (for the progress bar): lines, or Parquet's row count."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(0, lines - 1) if fmt == "csv" else lines


class _Identified(msgspec.Struct):
    source_id: Any = None


def incoming_ids(path: Path, fmt: str, id_column: str = "source_id") -> set[str]:
    """The distinct source ids of the file's rows (rows without one left out): with the
    records held, the size of the store the load leaves (`bulk_load`'s `incoming`)."""
    ids: set[str] = set()
    if fmt == "ndjson":
        with path.open("rb") as f:
            for line in f:
                try:
                    found = msgspec.json.decode(line, type=_Identified).source_id
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                if isinstance(found, str):
                    ids.add(found)
        return ids
    for row in read_rows(path, fmt, id_column):
        found = row.item.get("source_id") if isinstance(row.item, dict) else None
        if isinstance(found, str):
            ids.add(found)
    return ids


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """address.city=... -> {"address": {"city": ...}}; empty cells and nulls dropped."""
    out: dict[str, Any] = {}
    for column, value in flat.items():
        if value is None or value == "":
            continue
        *parents, leaf = column.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _item(row: dict[str, Any], id_column: str) -> dict[str, Any]:
    attributes = _nest(row)
    item: dict[str, Any] = {"source_id": attributes.pop(id_column, None)}
    updated = attributes.pop("source_updated_at", None)
    if updated is not None:
        item["source_updated_at"] = (
            updated.isoformat() if isinstance(updated, dt.datetime) else updated
        )
    item["attributes"] = attributes
    return item


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # 1-based line (NDJSON, CSV after its header) or row number (Parquet)
    item: Any  # a batch item, or None when the line is not readable
    error: str | None = None
    typed: bool = True  # False: values are text (CSV) and are converted leniently


def read_rows(path: Path, fmt: str, id_column: str = "source_id") -> Iterator[Row]:
    if fmt == "ndjson":
        with path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield Row(n, strict_json.decode(line))
                except msgspec.DecodeError as exc:
                    yield Row(n, None, f"not JSON: {exc}")
                except strict_json.JsonRefused as exc:
                    yield Row(n, None, f"{exc.message} (at {exc.path})")
    elif fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            for n, row in enumerate(csv.DictReader(f), 2):
                yield Row(n, _item(row, id_column), typed=False)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH):
            for row in batch.to_pylist():
                n += 1
                yield Row(n, _item(_flatten(row), id_column))
    else:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
