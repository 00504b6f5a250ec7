"""Pairwise precision, recall and F1 of a clustering against the truth.

A clustering is a mapping from record key to cluster id. Two records form a
*predicted pair* when they share a predicted cluster and a *true pair* when
they share a true cluster; precision is correct pairs / predicted pairs,
recall is correct pairs / true pairs. Pairs are counted from the contingency
table of (predicted cluster, true cluster) sizes, n * (n - 1) / 2 per cell, so
a cluster of 10,000 records costs one multiplication, not 50 million pairs.

Standard library only: the unit tests import this module without the
benchmark's extra dependencies.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "PairwiseScores",
    "SweepPoint",
    "best_threshold",
    "clusters_from_pairs",
    "differing_records",
    "pair_count",
    "pairwise_scores",
    "threshold_sweep",
]


def pair_count(n: int) -> int:
    """How many unordered pairs `n` records form."""
    return n * (n - 1) // 2


@dataclass(frozen=True, slots=True)
class PairwiseScores:
    """Pairwise scores of one clustering and the counts behind them.

    `missing` counts truth records the prediction has no cluster for; each is
    scored as a singleton (it can only cost recall).
    """

    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    records: int
    true_clusters: int
    predicted_clusters: int
    missing: int = 0


def _scores(correct: int, predicted: int, true: int) -> tuple[float, float, float]:
    # With nothing predicted there is no false positive: precision 1. With no
    # true pair there is nothing to find: recall 1.
    precision = correct / predicted if predicted else 1.0
    recall = correct / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pairwise_scores(
    predicted: Mapping[Hashable, Hashable], truth: Mapping[Hashable, Hashable]
) -> PairwiseScores:
    """Score `predicted` (record key -> cluster id) against `truth` (record key -> entity).

    Only records in `truth` are scored; a predicted key not in `truth` is
    ignored and a truth key absent from `predicted` is a singleton.
    """
    cells: Counter[tuple[object, object]] = Counter()
    predicted_sizes: Counter[object] = Counter()
    true_sizes: Counter[object] = Counter()
    missing = 0
    for key, entity in truth.items():
        if key in predicted:
            cluster: object = ("cluster", predicted[key])
        else:
            cluster = ("missing", key)
            missing += 1
        cells[cluster, entity] += 1
        predicted_sizes[cluster] += 1
        true_sizes[entity] += 1
    correct = sum(pair_count(n) for n in cells.values())
    predicted_pairs = sum(pair_count(n) for n in predicted_sizes.values())
    true_pairs = sum(pair_count(n) for n in true_sizes.values())
    precision, recall, f1 = _scores(correct, predicted_pairs, true_pairs)
    return PairwiseScores(
        precision=precision,
        recall=recall,
        f1=f1,
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        correct_pairs=correct,
        records=len(truth),
        true_clusters=len(true_sizes),
        predicted_clusters=len(predicted_sizes),
        missing=missing,
    )


def differing_records(
    a: Mapping[Hashable, Hashable], b: Mapping[Hashable, Hashable], keys: Iterable[Hashable]
) -> int:
    """How many of `keys` are clustered differently by `a` and by `b`: a record counts
    when the records sharing its cluster in `a` are not those sharing it in `b`. The
    partitions are compared, not the cluster ids; a key without one is alone."""
    keys = list(keys)

    def members(clusters: Mapping[Hashable, Hashable]) -> dict[Hashable, frozenset[Hashable]]:
        groups: dict[object, set[Hashable]] = {}
        for key in keys:
            cluster = ("cluster", clusters[key]) if key in clusters else ("alone", key)
            groups.setdefault(cluster, set()).add(key)
        return {key: frozenset(group) for group in groups.values() for key in group}

    left, right = members(a), members(b)
    return sum(1 for key in keys if left[key] != right[key])


def partition_digest(clusters: Mapping[Hashable, Hashable], keys: Iterable[Hashable]) -> str:
    """An md5 of the partition of `keys` that `clusters` makes, independent of the
    cluster ids (golden ids are random): each key is paired with the smallest key
    of its cluster. Two runs that cluster every record alike give the same digest."""
    keys = sorted(keys, key=repr)
    smallest: dict[Hashable, str] = {}
    for key in keys:
        cluster = ("cluster", clusters[key]) if key in clusters else ("alone", key)
        smallest.setdefault(cluster, repr(key))
    digest = hashlib.md5()
    for key in keys:
        cluster = ("cluster", clusters[key]) if key in clusters else ("alone", key)
        digest.update(f"{key!r}\t{smallest[cluster]}\n".encode())
    return digest.hexdigest()


class _DisjointSets:
    """Union-find over arbitrary hashable keys, with path halving and union by size."""

    def __init__(self, keys: Iterable[Hashable]) -> None:
        self.parent: dict[Hashable, Hashable] = {k: k for k in keys}
        self.size: dict[Hashable, int] = dict.fromkeys(self.parent, 1)

    def find(self, key: Hashable) -> Hashable:
        parent = self.parent
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def union(self, a: Hashable, b: Hashable) -> tuple[Hashable, Hashable] | None:
        """Join the sets of `a` and `b`; returns (kept root, absorbed root), or None."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra, rb


def clusters_from_pairs(
    keys: Iterable[Hashable], pairs: Iterable[tuple[Hashable, Hashable]]
) -> dict[Hashable, int]:
    """Connected components: every key gets a cluster number; linked keys share one."""
    sets = _DisjointSets(keys)
    for a, b in pairs:
        sets.union(a, b)
    numbers: dict[Hashable, int] = {}
    return {k: numbers.setdefault(sets.find(k), len(numbers)) for k in sets.parent}


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """The clustering at one threshold: connected components of pairs scoring >= it."""

    threshold: float
    precision: float
    recall: float
    f1: float
    predicted_pairs: int
    correct_pairs: int


def threshold_sweep(
    truth: Mapping[Hashable, Hashable],
    scored_pairs: Iterable[tuple[Hashable, Hashable, float]],
) -> list[SweepPoint]:
    """Pairwise scores of connected-components clustering at every distinct pair score.

    Equivalent to clustering once per threshold (keep the pairs scoring at or
    above it, take connected components, score) but done in one pass: pairs
    are added from the highest score down, and each union of two clusters adds
    |A| * |B| predicted pairs and, per true entity, count_A * count_B correct
    ones. Each cluster keeps a per-entity count; the smaller is merged into the
    larger, so the whole sweep is O(n log n) in records plus a sort of pairs.
    Pairs naming a key not in `truth` are ignored. Points come out from the
    highest threshold down.
    """
    true_pairs = sum(pair_count(n) for n in Counter(truth.values()).values())
    sets = _DisjointSets(truth)
    entity_counts: dict[Hashable, Counter[Hashable]] = {
        k: Counter({entity: 1}) for k, entity in truth.items()
    }
    ordered = sorted(
        ((score, a, b) for a, b, score in scored_pairs if a in truth and b in truth),
        key=lambda t: t[0],
        reverse=True,
    )
    points: list[SweepPoint] = []
    predicted = correct = 0
    i = 0
    while i < len(ordered):
        threshold = ordered[i][0]
        # Every pair with the same score joins before the point is taken.
        while i < len(ordered) and ordered[i][0] == threshold:
            _, a, b = ordered[i]
            i += 1
            joined = sets.union(a, b)
            if joined is None:
                continue
            kept, absorbed = joined
            big, small = entity_counts[kept], entity_counts.pop(absorbed)
            size_small = sum(small.values())
            size_big = sets.size[kept] - size_small
            predicted += size_big * size_small
            correct += sum(n * big.get(entity, 0) for entity, n in small.items())
            big.update(small)
        precision, recall, f1 = _scores(correct, predicted, true_pairs)
        points.append(SweepPoint(threshold, precision, recall, f1, predicted, correct))
    return points


def best_threshold(points: Sequence[SweepPoint]) -> SweepPoint | None:
    """The sweep point with the highest F1 (the highest threshold among ties)."""
    best: SweepPoint | None = None
    for point in points:
        if best is None or point.f1 > best.f1:
            best = point
    return best
