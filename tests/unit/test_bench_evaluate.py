"""The benchmark's pairwise scoring: hand-checked cases and properties."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

# bench/ is a folder of scripts, not an installed package: import it from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.evaluate import (
    best_threshold,
    clusters_from_pairs,
    differing_records,
    pair_count,
    pairwise_scores,
    partition_digest,
    threshold_sweep,
)


def _pairs(clustering: dict[str, object]) -> set[frozenset[str]]:
    """Every pair of keys sharing a cluster, by brute force (the tests' reference)."""
    return {
        frozenset((a, b))
        for a, b in itertools.combinations(sorted(clustering), 2)
        if clustering[a] == clustering[b]
    }


def test_pair_count() -> None:
    assert [pair_count(n) for n in range(5)] == [0, 0, 1, 3, 6]


def test_hand_checked_case() -> None:
    # Truth: {a, b, c} and {d, e}: 3 + 1 = 4 true pairs.
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2}
    # Predicted: {a, b} and {c, d, e}: pairs ab, cd, ce, de; correct ab and de.
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "y"}
    scores = pairwise_scores(predicted, truth)
    assert (scores.true_pairs, scores.predicted_pairs, scores.correct_pairs) == (4, 4, 2)
    assert scores.precision == 0.5
    assert scores.recall == 0.5
    assert scores.f1 == 0.5
    assert (scores.records, scores.true_clusters, scores.predicted_clusters) == (5, 2, 2)
    assert scores.missing == 0


def test_all_singletons_predicted() -> None:
    truth = {"a": 1, "b": 1, "c": 2}
    scores = pairwise_scores({"a": 1, "b": 2, "c": 3}, truth)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 0.0, 0.0)


def test_missing_records_are_singletons_and_extra_keys_are_ignored() -> None:
    truth = {"a": 1, "b": 1, "c": 1}
    scores = pairwise_scores({"a": "x", "b": "x", "zz": "x"}, truth)
    assert scores.missing == 1
    assert (scores.correct_pairs, scores.predicted_pairs, scores.true_pairs) == (1, 1, 3)
    assert scores.recall == 1 / 3


def test_clusters_from_pairs() -> None:
    clusters = clusters_from_pairs("abcde", [("a", "b"), ("b", "c"), ("e", "e")])
    assert clusters["a"] == clusters["b"] == clusters["c"]
    assert len({clusters["a"], clusters["d"], clusters["e"]}) == 3


def test_threshold_sweep_hand_checked() -> None:
    truth = {"a": 1, "b": 1, "c": 2, "d": 2}
    scored = [("a", "b", 0.9), ("c", "d", 0.9), ("b", "c", 0.4), ("a", "zz", 0.99)]
    points = threshold_sweep(truth, scored)
    assert [p.threshold for p in points] == [0.9, 0.4]
    assert (points[0].precision, points[0].recall, points[0].f1) == (1.0, 1.0, 1.0)
    # At 0.4 everything is one cluster: 6 predicted pairs, 2 correct.
    assert (points[1].predicted_pairs, points[1].correct_pairs) == (6, 2)
    best = best_threshold(points)
    assert best is not None and best.threshold == 0.9


# Small universes so that clusters actually collide.
_keys = st.lists(st.integers(0, 40), min_size=1, max_size=40, unique=True)


@given(_keys, st.data())
def test_perfect_prediction_scores_one(keys: list[int], data: st.DataObject) -> None:
    truth = {k: data.draw(st.integers(0, 5)) for k in keys}
    # Same partition under different cluster ids.
    predicted = {k: f"cluster-{v}" for k, v in truth.items()}
    scores = pairwise_scores(predicted, truth)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)


@given(_keys, st.data())
def test_merging_everything_has_recall_one(keys: list[int], data: st.DataObject) -> None:
    truth = {k: data.draw(st.integers(0, 5)) for k in keys}
    scores = pairwise_scores(dict.fromkeys(truth, "all"), truth)
    assert scores.recall == 1.0
    assert scores.predicted_pairs == pair_count(len(keys))


@given(_keys, st.data())
def test_counts_agree_with_brute_force(keys: list[int], data: st.DataObject) -> None:
    truth = {str(k): data.draw(st.integers(0, 4)) for k in keys}
    predicted = {str(k): data.draw(st.integers(0, 4)) for k in keys}
    scores = pairwise_scores(predicted, truth)
    true_pairs, predicted_pairs = _pairs(truth), _pairs(predicted)
    assert scores.true_pairs == len(true_pairs)
    assert scores.predicted_pairs == len(predicted_pairs)
    assert scores.correct_pairs == len(true_pairs & predicted_pairs)


@given(_keys, st.data())
def test_sweep_agrees_with_clustering_at_each_threshold(
    keys: list[int], data: st.DataObject
) -> None:
    truth = {k: data.draw(st.integers(0, 4)) for k in keys}
    edges = data.draw(
        st.lists(
            st.tuples(st.sampled_from(keys), st.sampled_from(keys), st.sampled_from([1, 2, 3]))
        )
    )
    for point in threshold_sweep(truth, edges):
        kept = [(a, b) for a, b, score in edges if score >= point.threshold]
        expected = pairwise_scores(clusters_from_pairs(truth, kept), truth)
        assert point.predicted_pairs == expected.predicted_pairs
        assert point.correct_pairs == expected.correct_pairs
        assert point.f1 == expected.f1


def test_differing_records_compares_partitions_not_ids() -> None:
    keys = ["a", "b", "c", "d", "e"]
    left = {"a": 1, "b": 1, "c": 2, "d": 2, "e": 3}
    renamed = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}
    assert differing_records(left, renamed, keys) == 0
    # c leaves d for a and b: a, b, c and d each see other members; e does not.
    moved = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 3}
    assert differing_records(left, moved, keys) == 4
    # A key without a cluster is alone: e alone both ways, d alone on one side only.
    assert differing_records({"a": 1, "b": 1, "c": 2}, left, keys) == 2


@given(st.dictionaries(st.integers(0, 20), st.integers(0, 4)))
def test_the_partition_digest_changes_exactly_when_the_partition_does(
    clustering: dict[int, int],
) -> None:
    keys = sorted(clustering)
    renamed = {key: f"golden-{cluster}" for key, cluster in clustering.items()}
    assert partition_digest(clustering, keys) == partition_digest(renamed, keys)
    if len(keys) >= 2:
        moved = dict(clustering)
        moved[keys[0]] = -1  # the first key leaves its cluster for one of its own
        same = differing_records(clustering, moved, keys) == 0
        assert (partition_digest(clustering, keys) == partition_digest(moved, keys)) == same


@given(st.dictionaries(st.integers(0, 20), st.integers(0, 4)))
def test_differing_records_is_zero_exactly_when_the_pairs_agree(
    clustering: dict[int, int],
) -> None:
    keys = sorted(clustering)
    relabelled = {k: -c for k, c in clustering.items()}
    assert differing_records(clustering, relabelled, keys) == 0
    merged = dict.fromkeys(keys, 0)
    same = _pairs(clustering) == _pairs(merged)  # type: ignore[arg-type]
    assert (differing_records(clustering, merged, keys) == 0) == same
