"""Unsupervised EM training of m, u and the prior, and the bulk level matrix (no I/O)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching import standardize_record
from matching.blocking import blocking_keys, candidate_pairs
from matching.comparators import NULL
from matching.model import MatchModel, default_model
from matching.prepare import Prepared, prepare
from matching.scoring import compare, comparison_levels
from matching.training import level_matrix, random_pairs, train, train_with_report

GIVEN = "anna ben carla david emma felix greta hans ida jonas karl lena max nora otto paul".split()
FAMILY = (
    "mueller schmidt schneider fischer weber meyer wagner becker schulz hoffmann koch "
    "richter klein wolf schroeder neumann schwarz zimmermann braun krueger hartmann lange"
).split()


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _people(seed: int, entities: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Seeded workers, each with one to three noisy records; returns records and entity ids."""
    rng = random.Random(seed)
    records, owners = [], []
    for e in range(entities):
        person = {
            "given_name": rng.choice(GIVEN),
            "family_name": rng.choice(FAMILY),
            "date_of_birth": f"{rng.randint(1950, 2000)}-{rng.randint(1, 12):02d}-"
            f"{rng.randint(1, 28):02d}",
            "national_id": f"{rng.randrange(10**8):08d}",
            "address": {"postal_code": f"{rng.randint(10000, 10400)}", "city": "Berlin"},
        }
        for _ in range(rng.choice((1, 1, 2, 3))):
            record = {**person, "address": dict(person["address"])}
            if rng.random() < 0.3:
                record["family_name"] = _typo(rng, record["family_name"])
            if rng.random() < 0.2:
                del record["date_of_birth"]
            if rng.random() < 0.5:
                del record["national_id"]
            records.append(record)
            owners.append(e)
    return records, owners


def _prepare(model: MatchModel, records: list[dict[str, Any]]) -> list[Prepared]:
    return [prepare(model, "worker", standardize_record("worker", r).values) for r in records]


@pytest.fixture(scope="module")
def data() -> tuple[MatchModel, list[Prepared], list[int]]:
    model = default_model("worker")
    records, owners = _people(seed=7, entities=400)
    return model, _prepare(model, records), owners


def _fit(model: MatchModel, prepared: list[Prepared], seed: int = 0) -> MatchModel:
    return train(model, prepared, seed=seed, random_pair_count=20_000)


def test_train_returns_next_version_with_valid_parameters(data: Any) -> None:
    model, prepared, _ = data
    trained, report = train_with_report(model, prepared, seed=0, random_pair_count=20_000)
    assert trained.version == model.version + 1
    assert trained.entity == model.entity and trained.blocking == model.blocking
    assert [f.name for f in trained.fields] == [f.name for f in model.fields]
    trained.validate()
    assert report.converged and report.pairs_used == report.candidate_pairs > 0
    assert 0 < trained.prior < 0.01
    for f in trained.fields:
        assert sum(level.m for level in f.levels) == pytest.approx(1)
        assert sum(level.u for level in f.levels) == pytest.approx(1)
        assert all(0 < level.m < 1 and 0 < level.u < 1 for level in f.levels)


def test_training_is_deterministic_for_a_seed(data: Any) -> None:
    model, prepared, _ = data
    assert _fit(model, prepared, seed=3) == _fit(model, prepared, seed=3)


def test_trained_model_learns_the_data(data: Any) -> None:
    model, prepared, owners = data
    trained = _fit(model, prepared)
    family = trained.field("family_name")
    # Half the pairs keep both family names intact (30% of records got a typo).
    assert 0.4 < family.levels[0].m < 0.6 and family.levels[0].u < 0.1
    # Typos were transpositions in 30% of records: the fuzzy level gains m.
    assert family.levels[1].m > model.field("family_name").levels[1].m
    # The prior is near the real share of matching pairs.
    n = len(prepared)
    true_pairs = sum(1 for i in range(n) for j in range(i + 1, n) if owners[i] == owners[j])
    assert trained.prior == pytest.approx(true_pairs / (n * (n - 1) / 2), rel=0.5)
    # Scored on the candidate pairs, matches and non-matches separate.
    pairs = candidate_pairs([blocking_keys(trained, p) for p in prepared])
    right = wrong = 0
    for i, j in pairs.tolist():
        linked = compare(trained, prepared[i], prepared[j]).probability >= 0.99
        right += linked == (owners[i] == owners[j])
        wrong += linked != (owners[i] == owners[j])
    assert wrong / (right + wrong) < 0.02


def test_unpopulated_fields_keep_their_priors(data: Any) -> None:
    model, prepared, _ = data
    trained = _fit(model, prepared)
    for name in ("email", "phone", "employee_number"):  # no record has them
        for before, after in zip(model.field(name).levels, trained.field(name).levels, strict=True):
            assert after.m == pytest.approx(before.m, rel=1e-3)
            assert after.u == pytest.approx(before.u, rel=1e-3, abs=1e-7)


def test_a_rarely_populated_identifier_stays_strong_evidence() -> None:
    model = default_model("worker")
    records, _ = _people(seed=1, entities=300)
    for k, record in enumerate(records):
        if k > 4:
            record.pop("national_id", None)
    trained = _fit(model, _prepare(model, records))
    exact, other = trained.field("national_id").levels[0], trained.field("national_id").levels[-1]
    assert exact.m / exact.u > 2**15
    assert other.m / other.u < 2**-3


def test_level_matrix_matches_pairwise_levels(data: Any) -> None:
    model, prepared, _ = data
    pairs = random_pairs(len(prepared), 200, np.random.default_rng(0))
    matrix = level_matrix(model, prepared, pairs)
    assert matrix.dtype == np.int8 and matrix.shape == (200, len(model.fields))
    for (i, j), row in zip(pairs.tolist(), matrix.tolist(), strict=True):
        assert row == comparison_levels(model, prepared[i], prepared[j])
    email = [f.name for f in model.fields].index("email")
    assert (matrix[:, email] == NULL).all()
    assert level_matrix(model, prepared, np.empty((0, 2))).shape == (0, len(model.fields))


def test_random_pairs() -> None:
    pairs = random_pairs(5, 1000, np.random.default_rng(1))
    assert pairs.shape == (1000, 2)
    assert (pairs[:, 0] != pairs[:, 1]).all() and pairs.min() >= 0 and pairs.max() < 5
    again = random_pairs(5, 1000, np.random.default_rng(1))
    assert (pairs == again).all()
    assert random_pairs(1, 10, np.random.default_rng(1)).shape == (0, 2)


def test_training_needs_two_records() -> None:
    model = default_model("worker")
    with pytest.raises(ValueError, match="two records"):
        train(model, _prepare(model, [{"family_name": "x"}]))


_small = st.lists(
    st.fixed_dictionaries(
        {
            "family_name": st.sampled_from(["ab", "abc", "abd", "xy", "xyz"]),
            "given_name": st.sampled_from(["", "jo", "jon", "al"]),
            "national_id": st.sampled_from(["", "11", "12", "21"]),
        }
    ),
    min_size=2,
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(_small, st.integers(0, 3))
def test_any_small_data_set_trains_to_a_valid_model(
    records: list[dict[str, Any]], seed: int
) -> None:
    model = default_model("worker")
    trained = train(model, _prepare(model, records), seed=seed, random_pair_count=500)
    trained.validate()
    assert trained.version == 2
