"""The batch path on data with clusters of many duplicates, against unique records.

Ingests, through `POST /v1/sources/hcm/worker/batch` (the hub's app in process
over ASGI, as bench/hub_runner.py runs it, or `mdm serve`; batches of 200), each
into its own scratch database:

- "dup":    FEBRL3, 5,000 records of 2,000 people (clusters of up to ten records);
- "unique": 5,000 records of 5,000 people of the same shape: FEBRL3's 2,000
            originals ("rec-N-org", one per true entity) and the first 3,000
            originals of FEBRL2 (another draw of the same generator; its
            duplicates are left out).

The two alternate (dup, unique, dup, unique, ...) for `--pairs` pairs, and
records/s of each run and the ratio dup/unique of each pair are printed: the
machine is shared, so only ratios within one run mean much.

    python bench/batch_duplicates.py [--pairs 3] [--model trained|packaged] [--serve]
        [--check] [--copies 1] [--profile dup|unique [--profile-out FILE]]

`--model trained` (the default) puts in force, in every database, the model
that `mdm train` fits on FEBRL3 once it is ingested (done once at the start):
both kinds run under the same model, with the prior of duplicated data, as
after the hub's own training. `--model packaged` leaves the packaged model.
`--serve` posts to `mdm serve` (one worker, its relay publishing to NATS) over
HTTP instead of to the app in process.

`--profile KIND` runs one more ingestion of KIND under cProfile and prints the
top functions by cumulative and own time. `--check` prints, for each run, an md5
over the partition the hub made (the sorted groups of source ids sharing a
golden id) and over the open review tasks (as pairs of those groups' smallest
member ids), and the counts: equal digests mean equal decisions.

Uses MDM_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres,
where it creates and drops its own databases) and MDM_BENCH_NATS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import os
import platform
import pstats
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from litestar.testing import AsyncTestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.datasets import load_febrl  # noqa: E402
from bench.hub_runner import ADMIN_KEY, BATCH, _settings  # noqa: E402
from bench.ingest_batch import wait_healthy  # noqa: E402
from mdm.adapters.matching import MatchStore, StoredModel  # noqa: E402
from mdm.adapters.unit_of_work import SqlUnitOfWork  # noqa: E402
from mdm.api.app import create_app  # noqa: E402
from mdm.bootstrap import load_rules, make_engine  # noqa: E402
from mdm.services.matcher import train_model  # noqa: E402
from mdm.settings import normalize_database_url  # noqa: E402
from tests.support import scratch_database  # noqa: E402

Record = dict[str, Any]


def datasets(copies: int = 1) -> dict[str, list[Record]]:
    febrl3 = load_febrl(3).records
    febrl2 = load_febrl(2).records
    originals3 = [r for r in febrl3 if r["source_id"].endswith("-org")]
    originals2 = [r for r in febrl2 if r["source_id"].endswith("-org")]
    unique = originals3 + [
        {**r, "source_id": "f2-" + r["source_id"]} for r in originals2[: 5000 - len(originals3)]
    ]
    dup = [
        {**r, "source_id": r["source_id"] + (f"~{k}" if k else "")}
        for k in range(copies)
        for r in febrl3
    ]
    return {"dup": dup, "unique": unique}


async def _post_all(client: httpx.AsyncClient, records: list[Record]) -> int:
    rejected = 0
    for start in range(0, len(records), BATCH):
        items = [
            {"source_id": r["source_id"], "attributes": r["attributes"]}
            for r in records[start : start + BATCH]
        ]
        response = await client.post("/v1/sources/hcm/worker/batch", json=items)
        if response.status_code != 200:
            raise RuntimeError(f"batch failed: {response.status_code} {response.text[:500]}")
        rejected += response.json()["rejected"]
    return rejected


def _digest(rows: list[Any]) -> str:
    return hashlib.md5(repr(rows).encode()).hexdigest()[:12]


async def _decisions(url: str) -> dict[str, Any]:
    """The partition and the open review tasks, as digests and counts."""
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT source, source_id, golden_id FROM source_record "
                    "WHERE deleted_at IS NULL AND entity = 'worker'"
                )
            )
        ).all()
        tasks = (
            await conn.execute(
                text(
                    "SELECT s.source_id, t.golden_id, t.candidate_id, t.reason, "
                    "round(t.probability::numeric, 9) "
                    "FROM review_task t JOIN source_record s ON s.id = t.record_id "
                    "WHERE t.status = 'open'"
                )
            )
        ).all()
        merges = await conn.scalar(text("SELECT count(*) FROM merge_event"))
    await engine.dispose()
    groups: dict[str, list[str]] = defaultdict(list)
    for source, source_id, golden_id in rows:
        groups[golden_id].append(f"{source}:{source_id}")
    partition = sorted(sorted(g) for g in groups.values())
    # A golden record by its smallest member: golden ids are fresh in every run.
    name = {g: min(members) for g, members in groups.items()}
    review = sorted(
        (sid, name.get(g, "?"), name.get(c, "?"), reason, str(p)) for sid, g, c, reason, p in tasks
    )
    return {
        "goldens": len(groups),
        "partition": _digest(partition),
        "tasks": len(review),
        "review": _digest(review),
        "merges": merges,
    }


async def trained_model(records: list[Record], server: str) -> StoredModel:
    """The model `mdm train` fits on `records` once they are ingested (packaged model)."""
    async with scratch_database(server) as url:
        async with AsyncTestClient(create_app(_settings(url))) as client:
            client.headers["X-API-Key"] = ADMIN_KEY
            await _post_all(client, records)
        engine = make_engine(url, pool_size=1)
        async with engine.begin() as conn:
            trained = await train_model(SqlUnitOfWork(conn), load_rules(), "worker")
            stored = await MatchStore(conn).model("worker", trained.version)
        await engine.dispose()
    assert stored is not None
    print(f"  trained on {trained.records} records: prior {trained.prior:.3e}")
    return stored


async def _store_model(url: str, model: StoredModel | None) -> None:
    if model is None:
        return
    engine = make_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await load_rules().models.current(MatchStore(conn), "worker")  # the default, as version 1
        await MatchStore(conn).add_model("worker", model.model, model.term_frequencies, 5000)
    await engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ingest_served(
    records: list[Record], server: str, check: bool, model: StoredModel | None = None
) -> tuple[float, int, dict[str, Any] | None]:
    """`ingest` through `mdm serve` (one worker process, its relay on) over HTTP."""
    async with scratch_database(server) as url:
        await _store_model(url, model)
        port = _free_port()
        env = {
            **os.environ,
            "MDM_DATABASE_URL": url,
            "MDM_NATS_URL": os.environ.get("MDM_BENCH_NATS_URL", "nats://127.0.0.1:4222"),
            "MDM_PORT": str(port),
            "MDM_LOG_LEVEL": "WARNING",
            "MDM_ADMIN_KEY": ADMIN_KEY,
            "MDM_RATE_LIMIT": "0",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "mdm.cli", "serve", "--workers", "1"], env=env, cwd=ROOT
        )
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                timeout=300,
                headers={"X-API-Key": ADMIN_KEY},
            ) as client:
                await wait_healthy(client, 300)
                await client.post("/v1/sources/hcm/worker/batch", json=[])
                started = time.perf_counter()
                rejected = await _post_all(client, records)
                seconds = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        return seconds, rejected, (await _decisions(url) if check else None)


async def ingest(
    records: list[Record],
    server: str,
    check: bool,
    model: StoredModel | None = None,
    profile: cProfile.Profile | None = None,
) -> tuple[float, int, dict[str, Any] | None]:
    """Seconds to ingest `records` into a fresh database, rejected count, decisions."""
    async with scratch_database(server) as url:
        await _store_model(url, model)
        async with AsyncTestClient(create_app(_settings(url))) as client:
            client.headers["X-API-Key"] = ADMIN_KEY
            # the model is stored and cached by a first call, outside the timing
            await client.post("/v1/sources/hcm/worker/batch", json=[])
            # The app runs on the test client's own thread: profile that one.
            if profile is not None:
                client.blocking_portal.call(profile.enable)
            started = time.perf_counter()
            rejected = await _post_all(client, records)
            seconds = time.perf_counter() - started
            if profile is not None:
                client.blocking_portal.call(profile.disable)
        return seconds, rejected, (await _decisions(url) if check else None)


def _print_profile(profile: cProfile.Profile, top: int) -> None:
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(key).print_stats(top)
        print(f"--- profile by {key} ---")
        print("\n".join(out.getvalue().splitlines()[: top + 12]))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--profile", choices=("dup", "unique"))
    parser.add_argument("--profile-out", help="also dump the profile's stats to this file")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--check", action="store_true")
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="send FEBRL3 this many times (copy k's source ids end in ~k): clusters of up to "
        "10 x COPIES records; unique stays 5,000 records, so compare records/s, not totals",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="post to `mdm serve` (one worker, relay on) over HTTP, not to the app in process",
    )
    parser.add_argument(
        "--model",
        choices=("trained", "packaged"),
        default="trained",
        help="the model in force: fitted by `mdm train` on FEBRL3 (default), or the packaged one",
    )
    args = parser.parse_args()
    server = normalize_database_url(
        os.environ.get("MDM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    assert server is not None
    data = datasets(args.copies)
    print(
        f"{platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"batches of {BATCH} through POST /v1/sources/hcm/worker/batch "
        f"({'mdm serve, HTTP' if args.serve else 'in-process ASGI'}), model: {args.model}"
    )
    for kind, records in data.items():
        print(f"  {kind}: {len(records)} records")
    model = await trained_model(data["dup"][:5000], server) if args.model == "trained" else None
    ratios = []
    for pair in range(1, args.pairs + 1):
        rates = {}
        for kind in ("dup", "unique"):
            run = ingest_served if args.serve else ingest
            seconds, rejected, decisions = await run(data[kind], server, args.check, model)
            rates[kind] = len(data[kind]) / seconds
            extra = f" {decisions}" if decisions else ""
            print(
                f"pair {pair} {kind:>6}: {seconds:6.1f} s {rates[kind]:7.1f} records/s "
                f"({rejected} rejected){extra}",
                flush=True,
            )
        ratios.append(rates["dup"] / rates["unique"])
        print(f"pair {pair} ratio dup/unique: {ratios[-1]:.2f}", flush=True)
    if ratios:
        print(
            f"ratio dup/unique over {len(ratios)} pairs: median {statistics.median(ratios):.2f}, "
            f"min {min(ratios):.2f}, max {max(ratios):.2f}"
        )
    if args.profile:
        profile = cProfile.Profile()
        seconds, _, _ = await ingest(data[args.profile], server, False, model, profile)
        print(f"profiled {args.profile}: {seconds:.1f} s (under cProfile)")
        if args.profile_out:
            profile.dump_stats(args.profile_out)
        _print_profile(profile, args.top)


if __name__ == "__main__":
    asyncio.run(main())
