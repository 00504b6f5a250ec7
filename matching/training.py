"""Unsupervised training of a match model's m and u probabilities and its prior (no labels).

As Splink does, u (a level's probability among non-matches) comes from
random pairs, which are almost all non-matches, and m (its probability among
matches) from expectation maximisation on blocked candidate pairs, where
matches are common enough to be found:

1. u, first pass: a seeded sample of random pairs gives each level's share;
   the exact level's share is counted from the value frequencies instead
   (exact for any sample size).
2. m: one EM session per blocking rule, on the pairs sharing one of its keys
   (keys held by more than `max_block_size` records skipped), with u held at
   its random-pair value and without the fields the rule reads: those agree
   far more often among the rule's non-matching pairs than among random
   pairs, so they would teach EM nothing true. Each field's m is the average
   of the sessions that fitted it, weighted by the matches behind each.
3. prior: the share of matches among all candidate pairs (EM on the share
   alone, m and u held) times their number, over the number of all pairs.
4. u, second pass: the random pairs weighted by their probability of being
   a non-match, and the exact agreements counted from the values less the
   matching candidate pairs that agree, so that the true matches among
   "random" pairs do not make agreeing on an identifier look common.

Every estimate is smoothed towards the model it starts from with a few
pseudo-counts, so a field that is rarely populated keeps its prior m and u
(an identifier's agreement stays strong evidence) instead of being fitted to
a handful of pairs; and it is kept off 0 and 1 by floors and ceilings.
EM runs vectorised in numpy on the distinct rows of the comparison-level
matrix (`level_matrix`, which bulk loading can use too). Deterministic for a
given seed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from matching.blocking import blocking_keys, candidate_pairs
from matching.comparators import NULL
from matching.model import FieldComparison, Level, MatchModel
from matching.prepare import Prepared
from matching.scoring import compile_model

M_FLOOR = 1e-6
U_FLOOR = 1e-7
PRIOR_FLOOR = 1e-12
# Pseudo-counts: matches for m, non-matching pairs for u.
M_PSEUDO = 10.0
U_PSEUDO = 1000.0

# Comparators whose first level "exact" is equality of the "v" feature, so that its
# share among random pairs can be counted from value frequencies.
_EXACT_ON_V = frozenset(
    {"exact", "text", "identifier", "person_name", "date", "email", "phone", "postal_code"}
)


@dataclass(frozen=True, slots=True)
class TrainingReport:
    """What `train` saw and fitted, for logs and benchmarks."""

    records: int
    candidate_pairs: int
    pairs_used: int
    random_pairs: int
    sessions: int
    iterations: int
    converged: bool
    prior: float
    candidate_match_share: float


def level_matrix(model: MatchModel, records: Sequence[Prepared], pairs: np.ndarray) -> np.ndarray:
    """Comparison levels of many pairs at once: int8 of shape (len(pairs), fields), NULL = -1.

    `pairs` holds row indices into `records`, shape (n, 2).
    """
    compiled = compile_model(model)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    left, right = pairs[:, 0].tolist(), pairs[:, 1].tolist()
    out = np.empty((len(left), len(compiled.fields)), dtype=np.int8)
    for column, f in enumerate(compiled.fields):
        features = [r.get(f.name) for r in records]
        predicates = f.predicates
        comparable = f.comparable
        else_index = len(predicates)
        levels = []
        for i, j in zip(left, right, strict=True):
            a, b = features[i], features[j]
            if a is None or b is None or (comparable is not None and not comparable(a, b)):
                levels.append(NULL)
                continue
            for index, holds in enumerate(predicates):
                if holds(a, b):
                    levels.append(index)
                    break
            else:
                levels.append(else_index)
        out[:, column] = levels
    return out


def random_pairs(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` uniform random pairs (i, j) of distinct records out of `n`."""
    if n < 2 or count <= 0:
        return np.empty((0, 2), dtype=np.int64)
    i = rng.integers(0, n, size=count)
    j = rng.integers(0, n - 1, size=count)
    j = j + (j >= i)
    return np.stack([i, j], axis=1)


def train(
    model: MatchModel,
    records: Sequence[Prepared],
    *,
    seed: int = 0,
    max_pairs: int = 1_000_000,
    random_pair_count: int = 200_000,
    max_block_size: int = 500,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
) -> MatchModel:
    """`model` with m, u and prior fitted to `records` (prepared for it) and version + 1."""
    return train_with_report(
        model,
        records,
        seed=seed,
        max_pairs=max_pairs,
        random_pair_count=random_pair_count,
        max_block_size=max_block_size,
        max_iterations=max_iterations,
        tolerance=tolerance,
    )[0]


def train_with_report(
    model: MatchModel,
    records: Sequence[Prepared],
    *,
    seed: int = 0,
    max_pairs: int = 1_000_000,
    random_pair_count: int = 200_000,
    max_block_size: int = 500,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
) -> tuple[MatchModel, TrainingReport]:
    """`train`, also returning what it saw (pair counts, sessions, convergence)."""
    n = len(records)
    if n < 2:
        raise ValueError("training needs at least two records")
    rng = np.random.default_rng(seed)
    m0, u0 = _parameters(model)

    # 1. u, first pass: every random pair counted as a non-match.
    sample = random_pairs(n, min(random_pair_count, n * (n - 1) // 2), rng)
    sampled = level_matrix(model, records, sample)
    exact = [_exact_pairs(f, records) for f in model.fields]
    u_start = _u_estimate(model, sampled, np.ones(len(sampled)), exact, None, u0)

    # The candidate pairs of each blocking rule, and their union.
    keys = [blocking_keys(model, r) for r in records]
    by_rule = _rule_pairs(model, keys, n, max_block_size)
    union = np.unique(np.concatenate([*by_rule.values(), np.empty(0, dtype=np.int64)]))
    total_candidates = len(union)
    if total_candidates > max_pairs:
        union = np.sort(rng.choice(union, size=max_pairs, replace=False))
    gamma = level_matrix(model, records, np.stack([union // n, union % n], axis=1))

    # 2. m: one EM session per rule, without the fields the rule reads.
    sessions = []
    for rule in model.blocking:
        rows = _rows_of(union, by_rule[rule.name])
        read = {part.split(".", 1)[0] for part in rule.parts}
        free = np.array([f.name not in read for f in model.fields])
        if len(rows) and free.any():
            patterns, counts = np.unique(gamma[rows], axis=0, return_counts=True)
            sessions.append(
                _em(patterns, counts.astype(float), m0, u_start, free, max_iterations, tolerance)
            )
    m_fit = _combine(sessions, m0)

    # 3. prior, and the matches expected among the candidates, per field and level.
    share, matched = _match_share(gamma, m_fit, u_start, max_iterations, tolerance)
    scale = total_candidates / max(len(union), 1)
    matched = [x * scale for x in matched]
    prior = min(0.5, max(PRIOR_FLOOR, share * total_candidates / (n * (n - 1) / 2)))

    # 4. u, second pass: the random pairs' true matches taken out.
    ratio = _lookup(sampled, m_fit, u_start, np.ones(len(model.fields), dtype=bool))
    nonmatch = 1 - _logistic(math.log(prior / (1 - prior)) + ratio)
    u_fit = _u_estimate(model, sampled, nonmatch, exact, matched, u0)

    fields = tuple(
        _with_levels(f, m, u) for f, m, u in zip(model.fields, m_fit, u_fit, strict=True)
    )
    # The matches per record behind that prior: a model that follows the store derives
    # its prior at any size from it (matching.model.MatchModel.prior_at).
    trained = model.with_parameters(
        version=model.version + 1, prior=prior, fields=fields, matches_per_record=prior * (n - 1)
    )
    report = TrainingReport(
        records=n,
        candidate_pairs=total_candidates,
        pairs_used=len(union),
        random_pairs=len(sample),
        sessions=len(sessions),
        iterations=max((x.iterations for x in sessions), default=0),
        converged=all(x.converged for x in sessions),
        prior=prior,
        candidate_match_share=share,
    )
    return trained, report


# --- pieces ------------------------------------------------------------------------


def _parameters(model: MatchModel) -> tuple[list[np.ndarray], list[np.ndarray]]:
    m = [np.array([level.m for level in f.levels]) for f in model.fields]
    u = [np.array([level.u for level in f.levels]) for f in model.fields]
    return [x / x.sum() for x in m], [x / x.sum() for x in u]


def _exact_pairs(f: FieldComparison, records: Sequence[Prepared]) -> tuple[float, float] | None:
    """(pairs agreeing exactly, pairs with both values), counted from the values."""
    if f.comparator not in _EXACT_ON_V or f.levels[0].label != "exact":
        return None
    counts = Counter(r[f.name]["v"] for r in records if f.name in r)
    total = sum(counts.values())
    if total < 2:
        return None
    return sum(c * (c - 1) / 2 for c in counts.values()), total * (total - 1) / 2


def _u_estimate(
    model: MatchModel,
    sampled: np.ndarray,
    weights: np.ndarray,
    exact: Sequence[tuple[float, float] | None],
    matched: Sequence[np.ndarray] | None,
    u_prior: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """Per field, u from the random pairs weighted by `weights` (their P(non-match)).

    The exact level's u comes from `exact` (value counts) less, when given,
    the `matched` pairs (expected matches per level among the candidates).
    """
    out = []
    for k, f in enumerate(model.fields):
        levels = sampled[:, k]
        present = levels != NULL
        size = float(weights[present].sum())
        got = np.bincount(levels[present], weights=weights[present], minlength=len(f.levels))
        share = got / size if size > 0 else np.array(u_prior[k])
        if exact[k] is not None and size > 0:
            agreeing, pairs = exact[k]  # type: ignore[misc]
            if matched is not None:
                agreeing = max(agreeing - matched[k][0], 0.0)
                pairs = max(pairs - matched[k].sum(), 1.0)
            u_exact = agreeing / pairs
            rest = share[1:].sum()
            if rest > 0:
                share[1:] = share[1:] * (1 - u_exact) / rest
            else:
                share[1:] = (1 - u_exact) / (len(share) - 1)
            share[0] = u_exact
        out.append(_bounded(_smooth(share, size, u_prior[k], U_PSEUDO), U_FLOOR))
    return out


def _rows_of(union: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Positions in `union` (sorted) of the `codes` it holds."""
    if not len(union) or not len(codes):
        return np.empty(0, dtype=np.intp)
    rows = np.minimum(np.searchsorted(union, codes), len(union) - 1)
    return rows[union[rows] == codes]


def _smooth(share: np.ndarray, size: float, prior: np.ndarray, pseudo: float) -> np.ndarray:
    return (share * size + prior * pseudo) / (size + pseudo)


def _bounded(p: np.ndarray, floor: float) -> np.ndarray:
    p = np.clip(p, floor, 1 - floor)
    return p / p.sum()


def _with_levels(f: FieldComparison, m: np.ndarray, u: np.ndarray) -> FieldComparison:
    levels = tuple(
        Level(label=level.label, m=float(mi), u=float(ui), tf_adjust=level.tf_adjust)
        for level, mi, ui in zip(f.levels, m, u, strict=True)
    )
    return msgspec.structs.replace(f, levels=levels)


@dataclass(frozen=True, slots=True)
class _Session:
    """One EM session: m of the fields it was free to fit, and how many matches backed each."""

    m: list[np.ndarray]
    support: np.ndarray  # expected matches with a value, per field (0 where not free)
    iterations: int
    converged: bool


def _rule_pairs(
    model: MatchModel, keys: Sequence[list[str]], n: int, max_block_size: int
) -> dict[str, np.ndarray]:
    """Per blocking rule: the codes i * n + j of the pairs sharing one of its keys."""
    out = {}
    for rule in model.blocking:
        prefix = f"{rule.name}:"
        pairs = candidate_pairs(
            [[k for k in ks if k.startswith(prefix)] for ks in keys], max_block_size=max_block_size
        )
        out[rule.name] = pairs[:, 0] * n + pairs[:, 1]
    return out


def _lookup(
    patterns: np.ndarray, m: list[np.ndarray], u: list[np.ndarray], columns: np.ndarray
) -> np.ndarray:
    """log(m/u) of each pattern summed over `columns` (a boolean mask of fields); NULL adds 0."""
    fields = len(m)
    width = max(len(x) for x in m) + 1  # the last column stands for NULL
    table = np.zeros((fields, width))
    for k in range(fields):
        if columns[k]:
            table[k, : len(m[k])] = np.log(m[k]) - np.log(u[k])
    index = np.where(patterns < 0, width - 1, patterns).astype(np.intp)
    return table[np.arange(fields), index].sum(axis=1)


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # 1 / (1 + e^-x), without overflow


def _em(
    patterns: np.ndarray,
    counts: np.ndarray,
    m_prior: list[np.ndarray],
    u: list[np.ndarray],
    free: np.ndarray,
    max_iterations: int,
    tolerance: float,
) -> _Session:
    """EM for m and the match share on distinct level patterns (rows) weighted by `counts`.

    u stays at its random-pair value; only the `free` fields take part: the
    fields the session's blocking rule reads agree far more often among its
    non-matching pairs than u says, so they would teach EM nothing true.
    """
    m = [x.copy() for x in m_prior]
    present = patterns >= 0
    # Start the match share from the pairs the starting model finds positive.
    share = float(np.clip((counts * (_lookup(patterns, m, u, free) > 0)).sum() / counts.sum(),
                          0.01, 0.99))  # fmt: skip
    converged = False
    iterations = 0
    support = np.zeros(len(m))
    for _ in range(max_iterations):
        iterations += 1
        p = _logistic(math.log(share / (1 - share)) + _lookup(patterns, m, u, free))
        weights = p * counts
        new_m = list(m)
        for k in np.flatnonzero(free):
            rows = present[:, k]
            got = np.bincount(patterns[rows, k], weights=weights[rows], minlength=len(m[k]))
            support[k] = got.sum()
            fitted = (got + M_PSEUDO * m_prior[k]) / (got.sum() + M_PSEUDO)
            new_m[k] = _bounded(fitted, M_FLOOR)
        new_share = float(np.clip(weights.sum() / counts.sum(), PRIOR_FLOOR, 1 - PRIOR_FLOOR))
        change = max(
            abs(new_share - share),
            max(float(np.abs(a - b).max()) for a, b in zip(new_m, m, strict=True)),
        )
        m, share = new_m, new_share
        if change < tolerance:
            converged = True
            break
    return _Session(m, support, iterations, converged)


def _combine(sessions: Sequence[_Session], m_prior: list[np.ndarray]) -> list[np.ndarray]:
    """Per field, the sessions' m averaged by the matches that backed them; else the prior."""
    out = []
    for k, prior in enumerate(m_prior):
        weights = np.array([s.support[k] for s in sessions])
        if not len(sessions) or weights.sum() <= 0:
            out.append(prior)
            continue
        fitted = sum(w * s.m[k] for w, s in zip(weights, sessions, strict=True)) / weights.sum()
        out.append(_bounded(fitted, M_FLOOR))
    return out


def _match_share(
    gamma: np.ndarray,
    m: list[np.ndarray],
    u: list[np.ndarray],
    max_iterations: int,
    tolerance: float,
) -> tuple[float, list[np.ndarray]]:
    """The share of matches among candidate pairs (EM on the share alone, m and u held),
    and per field the expected number of matches at each level."""
    matched: list[np.ndarray] = [np.zeros(len(x)) for x in m]
    if not len(gamma):
        return 0.0, matched
    patterns, counts = np.unique(gamma, axis=0, return_counts=True)
    ratio = _lookup(patterns, m, u, np.ones(len(m), dtype=bool))
    share = 0.5
    for _ in range(max_iterations):
        p = _logistic(math.log(share / (1 - share)) + ratio)
        new_share = float(np.clip((p * counts).sum() / counts.sum(), PRIOR_FLOOR, 1 - PRIOR_FLOOR))
        done = abs(new_share - share) < tolerance * share
        share = new_share
        if done:
            break
    weights = _logistic(math.log(share / (1 - share)) + ratio) * counts
    for k in range(len(m)):
        rows = patterns[:, k] >= 0
        matched[k] = np.bincount(patterns[rows, k], weights=weights[rows], minlength=len(m[k]))
    return share, matched
