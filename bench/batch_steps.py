"""Where a batch's time goes: each step's share of `ingest_records` for batches of new
workers against a loaded hub (issue 25, "measure each step's share of a batch").

    python bench/batch_steps.py --database mdm_bench_1m [--batches 6] [--size 1000]
        [--memory-index]

The database is one that bench/bulk_load.py loaded. Each batch is half new people and
half near-duplicates of stored HCM workers (bench/match_latency.py's probes, as
bench/load_test.py sends), ingested as PSA records in its own unit of work on the
hub's own code, in this process (no HTTP), with the garbage collector set as the
hub sets it and held off during each batch as the batch endpoint does. The stores'
methods are timed where the use case calls them; "matching and planning" is what
plan_records spends outside them; the writes (apply_plan) are split the same way into
their statements and "the rest" (survivorship, events, rows built in Python);
"commit" is the transaction's end. `--memory-index` takes the candidates from
`mdm load`'s in-memory blocking index (primed from the database first, then grown
with each committed batch), as a hub holding such an index would. Prints the median
seconds of each step per batch and its share. The batches are committed: the database
grows by batches x size PSA workers.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import match_latency as ml  # noqa: E402

import mdm.services.ingest as ingest  # noqa: E402
from mdm import heap  # noqa: E402
from mdm.adapters.bulk_index import MemoryIndex  # noqa: E402
from mdm.adapters.matching import MatchStore  # noqa: E402
from mdm.adapters.repository import Repository  # noqa: E402
from mdm.adapters.unit_of_work import OutboxStore, SqlUnitOfWork, SqlUnits  # noqa: E402
from mdm.bootstrap import make_engine, rules_of  # noqa: E402
from mdm.services.context import RequestContext  # noqa: E402
from mdm.services.ingest import IncomingRecord  # noqa: E402
from mdm.settings import Settings, normalize_database_url  # noqa: E402

#: step name -> seconds spent in it during the current batch
spent: dict[str, float] = defaultdict(float)


def _timed(step: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            spent[step] += time.perf_counter() - began

    return wrapper


#: (class, method, step): the reads of the plan step, timed where they are called
READS = [
    (SqlUnitOfWork, "lock", "locks (advisory, key buckets)"),
    (Repository, "source_records", "read: stored source records"),
    (Repository, "key_owners", "read: strong-key owners"),
    (MatchStore, "candidate_owners", "read: candidates by blocking key"),
    (MatchStore, "members", "read: candidates' members and features"),
    (MemoryIndex, "pool", "read: candidates and members from the in-memory index"),
]


#: the statements of the write step (apply_plan), timed the same way; "writes: the
#: rest" is apply_plan less these (survivorship, events and the rows built in Python)
WRITES = [
    (Repository, "write_source_records", "writes: source records"),
    (Repository, "replace_match_keys", "writes: match keys"),
    (Repository, "lock_goldens", "writes: lock and read golden records"),
    (Repository, "contributions", "writes: read members for survivorship"),
    (Repository, "save_goldens", "writes: golden records and history"),
    (OutboxStore, "append", "writes: outbox"),
    (MatchStore, "add_review_tasks", "writes: review tasks"),
]


def _instrument() -> None:
    for cls, name, step in READS + WRITES:
        setattr(cls, name, _timed(step, getattr(cls, name)))
    ingest.plan_records = _timed("plan (all)", ingest.plan_records)
    ingest.apply_plan = _timed("writes (apply_plan)", ingest.apply_plan)


async def _run(args: argparse.Namespace) -> None:
    server = normalize_database_url(
        os.environ.get("MDM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    assert server is not None
    url = make_url(server).set(database=args.database).render_as_string(hide_password=False)
    stored = int(await ml._scalar(url, "SELECT count(*) FROM source_record WHERE source = 'hcm'"))
    if not stored:
        raise SystemExit(f"{args.database} holds no HCM workers: load it first")
    used = int(
        await ml._scalar(url, "SELECT count(*) FROM source_record WHERE source_id LIKE 'S%'")
    )
    pop = ml.Population(args.seed, stored, used + args.batches * args.size)
    originals = await ml._originals(url, pop, min(stored, 20_000), args.seed)
    probes = ml.Probes(pop, originals, args.seed + 1).take(used + args.batches * args.size)[used:]
    _instrument()
    rules = rules_of(Settings())
    engine = make_engine(url, pool_size=2)
    # the collector set as `mdm serve` sets it for its long-lived heap (mdm/heap.py):
    # (without it, full passes over this heap doubled the member read of each batch)
    heap.tune()
    heap.freeze_long_lived()
    units = SqlUnits(engine)
    index = None
    if args.memory_index:
        index = MemoryIndex()
        began = time.perf_counter()
        async with engine.connect() as conn:
            primed = await index.prime(conn, "worker")
        gc.collect()
        gc.freeze()  # the primed index is long-lived, as `mdm load` leaves it (bulk.py)
        print(
            f"in-memory index primed with {primed:,} records in "
            f"{time.perf_counter() - began:.0f} s",
            flush=True,
        )
    stamp = f"S{int(time.time())}"
    per_batch: list[dict[str, float]] = []
    try:
        for b in range(args.batches):
            batch = probes[b * args.size : (b + 1) * args.size]
            records = [
                IncomingRecord(f"{stamp}-{b}-{j:04d}", p.attributes) for j, p in enumerate(batch)
            ]
            spent.clear()
            began = time.perf_counter()
            async with units.transaction() as uow:
                with heap.paused():  # as the batch endpoint ingests (mdm/api/sources.py)
                    await ingest.ingest_records(
                        uow, rules, "worker", "psa", records, RequestContext(), index
                    )
                ended = time.perf_counter()
            if index is not None:
                index.commit("psa")  # what the batch linked, into the index
            done = time.perf_counter()
            steps = dict(spent)
            reads = sum(steps.get(step, 0.0) for _, _, step in READS)
            steps["matching and planning (plan minus its reads and locks)"] = (
                steps.pop("plan (all)") - reads
            )
            steps["writes: the rest (survivorship, events, rows built in Python)"] = steps.pop(
                "writes (apply_plan)"
            ) - sum(steps.get(step, 0.0) for _, _, step in WRITES)
            steps["commit"] = done - ended
            steps["total"] = done - began
            per_batch.append(steps)
            print(
                f"batch {b + 1}: {steps['total']:.2f} s, "
                + ", ".join(f"{k} {v:.3f}" for k, v in steps.items() if k != "total"),
                flush=True,
            )
    finally:
        await engine.dispose()
    names = [n for n in per_batch[0] if n != "total"]
    total = statistics.median(p["total"] for p in per_batch)
    machine = ", ".join(f"{k} {v}" for k, v in ml._machine().items() if v)
    where = "the in-memory index" if args.memory_index else "PostgreSQL"
    print(
        f"\n{stored:,} HCM workers stored ({args.database}), {args.batches} batches of "
        f"{args.size}, candidates from {where}, medians; {machine}\n"
    )
    print("| step | s per batch | share |\n|---|---:|---:|")
    for name in names:
        value = statistics.median(p.get(name, 0.0) for p in per_batch)
        print(f"| {name} | {value:.3f} | {value / total:.0%} |")
    print(f"| whole batch | {total:.3f} | {args.size / total:,.0f} records/s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--memory-index",
        action="store_true",
        help="candidates from `mdm load`'s in-memory blocking index (mdm/adapters/"
        "bulk_index.py), primed from the database first, instead of PostgreSQL's",
    )
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
