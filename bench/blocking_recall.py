"""Blocking recall: how many true duplicates share a blocking key, with the packaged models.

    python bench/blocking_recall.py [--datasets ps_companies,ps_workers,febrl3] [--seed 0]
                                    [--cap 50] [--stress]

For each dataset (bench/datasets.py) every record is standardized and prepared
with the entity's packaged model (matching/defaults), its blocking keys made
(matching.blocking), and keys held by more than `--cap` records skipped, as the
hub skips keys above GENERIC_KEY_CAP. Printed per dataset: the true pairs, the
share of them sharing a key (pair recall), the records that have a true
duplicate but share a key with none of theirs (found by no key: the matcher
never compares them), the candidate pairs and the keys per record.

`--stress` (companies) adds rows for harder variants of the company set: every
record but the first of its company keeps only its name and address (no tax
id, D-U-N-S, web site, e-mail or phone), and then, in turn, nothing more
("name+address"), a typo in the first word of its name ("name typo", one
letter replaced, dropped, doubled or swapped with its neighbour), its street
line without the house number ("no number"), both of these ("typo+no number"), or "N/A" for its name
("placeholder").

Pure library, no database: it measures what blocking can find, not what the
hub decides. To compare two versions of the library, run the same script with
each on PYTHONPATH (PYTHONPATH=/path/to/other/checkout python bench/blocking_recall.py).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # appended: a checkout on PYTHONPATH comes first

import matching  # noqa: E402
from bench.datasets import Dataset, load, record_key, true_pairs  # noqa: E402
from bench.psdata import typo  # noqa: E402
from matching import standardize_record  # noqa: E402
from matching.blocking import blocking_keys, candidate_pairs  # noqa: E402
from matching.model import default_model  # noqa: E402
from matching.prepare import prepare  # noqa: E402

IDENTIFIERS = ("tax_id", "tax_country", "duns", "website", "email", "phone", "legal_name")


def _name_typo(rng: random.Random, attrs: dict[str, Any]) -> None:
    first, _, rest = attrs["name"].partition(" ")
    attrs["name"] = f"{typo(rng, first)} {rest}".strip()


def _no_number(rng: random.Random, attrs: dict[str, Any]) -> None:
    address = attrs.get("address")
    if address and address.get("line1"):
        line = re.sub(r"\b\w*\d\w*\b,?", " ", address["line1"])
        attrs["address"] = {**address, "line1": " ".join(line.split())}


def _placeholder(rng: random.Random, attrs: dict[str, Any]) -> None:
    attrs["name"] = "N/A"


def _typo_no_number(rng: random.Random, attrs: dict[str, Any]) -> None:
    _name_typo(rng, attrs)
    _no_number(rng, attrs)


STRESS: dict[str, Callable[[random.Random, dict[str, Any]], None] | None] = {
    "name+address": None,
    "name typo": _name_typo,
    "no number": _no_number,
    "typo+no number": _typo_no_number,
    "placeholder": _placeholder,
}


def stressed(
    data: Dataset, change: Callable[[random.Random, dict[str, Any]], None] | None
) -> Dataset:
    """`data` with every record but the first of its entity stripped to name and address
    and then `change`d."""
    rng = random.Random(0)
    seen: set[str] = set()
    records = []
    for record in data.records:
        entity = data.truth[record_key(record)]
        if entity in seen:
            attrs = {k: v for k, v in record["attributes"].items() if k not in IDENTIFIERS}
            if change is not None:
                change(rng, attrs)
            record = {**record, "attributes": attrs}
        seen.add(entity)
        records.append(record)
    return Dataset(data.name, data.entity, records, data.truth, data.link_only)


def measure(data: Dataset, cap: int) -> dict[str, float]:
    model = default_model(data.entity)
    keys = []
    for record in data.records:
        values = standardize_record(data.entity, record["attributes"]).values
        keys.append(blocking_keys(model, prepare(model, data.entity, values)))
    index = {record_key(r): i for i, r in enumerate(data.records)}
    truth = {
        tuple(sorted(index[k] for k in pair)) for pair in true_pairs(data.truth) if len(pair) == 2
    }
    found = {(int(i), int(j)) for i, j in candidate_pairs(keys, max_block_size=cap)}
    hit = truth & found
    with_duplicate = {i for pair in truth for i in pair}
    reached = {i for pair in hit for i in pair}
    return {
        "records": len(data.records),
        "true_pairs": len(truth),
        "pair_recall": len(hit) / len(truth) if truth else 1.0,
        "unreached": len(with_duplicate - reached),
        "candidate_pairs": len(found),
        "keys_per_record": sum(len(k) for k in keys) / len(keys),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="ps_companies,ps_workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--stress", action="store_true", help="harder variants of companies")
    args = parser.parse_args()
    print(f"matching from {Path(matching.__file__).resolve().parent}")
    print(
        f"{'dataset':<16}{'records':>9}{'true pairs':>12}{'pair recall':>13}"
        f"{'unreached':>11}{'candidate pairs':>17}{'keys/record':>13}"
    )
    rows: list[tuple[str, Dataset]] = []
    for name in args.datasets.split(","):
        data = load(name, seed=args.seed)
        rows.append((name, data))
        if args.stress and data.entity == "customer":
            rows.extend((f"  {label}", stressed(data, change)) for label, change in STRESS.items())
    for name, data in rows:
        r = measure(data, args.cap)
        print(
            f"{name:<16}{r['records']:>9}{r['true_pairs']:>12}{r['pair_recall']:>13.4f}"
            f"{r['unreached']:>11}{r['candidate_pairs']:>17}{r['keys_per_record']:>13.1f}"
        )


if __name__ == "__main__":
    main()
