"""Leaving out candidates that cannot reach review (matching.scoring.below).

`below` must be a true bound: whenever it answers True, the cluster score is
under the floor. Checked on generated workers that collide on names, birth
dates, e-mails and places (so that every level of every field occurs), against
single records and clusters of several, with and without term frequencies,
at floors from far below to far above the review threshold.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from matching import standardize_record
from matching.model import default_model
from matching.prepare import Prepared, prepare
from matching.scoring import (
    CountedFrequencies,
    below,
    ceiling,
    compile_model,
    score_cluster,
    term_values,
    weight_of,
)

MODEL = default_model("worker")
GIVEN = ["Anna", "Ana", "Hannah", "Johann", "John", "Jon", "Katharina", "Kathy", "Li", "Zoe"]
FAMILY = ["Meyer", "Meier", "Maier", "Schmidt", "Schmitt", "Smith", "Nguyen", "Oduya", "Berg"]
DOMAINS = ["example.com", "acme.de", "gmail.com"]
PLACES = [("10115", "Berlin", "DE"), ("10117", "Berlin", "DE"), ("80331", "München", "DE")]


def _worker(rng: random.Random) -> Prepared:
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    attrs: dict[str, Any] = {"given_name": given, "family_name": family}
    if rng.random() < 0.8:
        attrs["date_of_birth"] = (
            f"19{rng.choice([70, 71, 80])}-0{rng.randrange(1, 4)}-1{rng.randrange(1, 4)}"
        )
    if rng.random() < 0.6:
        attrs["email"] = (
            f"{given[0].lower()}.{family.lower()}{rng.randrange(3)}@{rng.choice(DOMAINS)}"
        )
    if rng.random() < 0.5:
        postal, city, country = rng.choice(PLACES)
        attrs["address"] = {
            "line1": f"Hauptstr. {rng.randrange(1, 4)}",
            "postal_code": postal,
            "city": city,
            "country": country,
        }
    if rng.random() < 0.3:
        attrs["phone"] = f"+49 30 {rng.randrange(1000000, 1000003)}"
    if rng.random() < 0.2:
        attrs["employee_number"] = f"E{rng.randrange(3)}"
    std = standardize_record("worker", attrs)
    assert not std.errors, std.errors
    return prepare(MODEL, "worker", std.values)


def _frequencies(records: list[Prepared], others: int = 0) -> CountedFrequencies:
    """Value counts of `records`, among `others` values of other people (the larger,
    the rarer these names, and the larger their term-frequency bonus)."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        for name, value in term_values(MODEL, record).items():
            counts.setdefault(name, {})[value] = counts.setdefault(name, {}).get(value, 0) + 1
    for found in counts.values():
        found["~others"] = found.get("~others", 0) + others
    return CountedFrequencies(counts)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    others=st.sampled_from([None, 0, 1_000, 100_000]),
    shift=st.floats(-30, 30),
)
def test_below_is_a_true_bound(seed: int, others: int | None, shift: float) -> None:
    rng = random.Random(seed)
    records = [_worker(rng) for _ in range(40)]
    # Some values the counts don't know; with many others, the known ones are rare.
    tf = _frequencies(records[:30], others) if others is not None else None
    compiled = compile_model(MODEL)
    floor = weight_of(MODEL.thresholds.review) + shift
    for incoming in records[:10]:
        top = ceiling(compiled, incoming, tf)
        for start in range(10, 40, 3):
            members = records[start : start + rng.choice([1, 1, 2, 3])]
            weight = score_cluster(MODEL, incoming, members, tf).weight
            assert weight <= top.total + 1e-9
            if below(compiled, incoming, members, tf, top, floor):
                assert weight < floor


def test_below_leaves_out_strangers_and_keeps_near_duplicates() -> None:
    rng = random.Random(7)
    records = [_worker(rng) for _ in range(300)]
    tf = _frequencies(records)
    compiled = compile_model(MODEL)
    floor = weight_of(MODEL.thresholds.review)
    left_out = kept_above = 0
    for incoming in records[:30]:
        top = ceiling(compiled, incoming, tf)
        for member in records[30:]:
            weight = score_cluster(MODEL, incoming, [member], tf).weight
            if below(compiled, incoming, [member], tf, top, floor):
                left_out += 1
            elif weight >= floor:
                kept_above += 1
        # A record that reaches review against itself is never left out of it.
        if score_cluster(MODEL, incoming, [incoming], tf).weight >= floor:
            assert not below(compiled, incoming, [incoming], tf, top, floor)
    # Most pairs of these generated strangers are left out without a full score,
    # and the pairs that reach review were all kept.
    assert left_out > 0.5 * 30 * 270
    assert kept_above > 0
