"""`mdm load` of N workers into an empty hub, timed (issue 8 part 1).

1. Writes the N synthetic workers of bench/match_latency.py (same seed, same
   people: names drawn Zipf-like from Faker pools, birth dates, addresses in DE,
   GB and US, unique e-mails, some employee numbers and phones) to an NDJSON file
   of batch items, once (kept beside the database name in the temp folder).
2. Creates the database `--database` on the local PostgreSQL (dropped first if
   it exists), migrates it, and runs the real command a user would:
   `mdm load --source hcm --entity worker --quiet FILE`, as its own process.
   While it runs, the source-record id sequence is read every `--every` seconds
   (a cheap read, no count(*)) for the records/s of each window.
3. Counts what was stored: source records, golden records, review tasks, match
   keys, outbox events; then VACUUM ANALYZE (timed apart: autovacuum's work,
   which is off on this machine).

    python bench/bulk_load.py [--records 1000000] [--database mdm_bench_1m]
        [--processes 1] [--chunk 1000] [--write]

The database is kept: bench/load_test.py and bench/match_latency.py --keep-db
measure against it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from match_latency import GENERATOR, Population, _machine  # noqa: E402

from mdm.settings import normalize_database_url  # noqa: E402

START = "<!-- bulk_load -->"
END = "<!-- bulk_load: end -->"


def _file(records: int, seed: int) -> Path:
    path = (
        Path(tempfile.gettempdir())
        / f"mdm-workers-{GENERATOR.replace('/', '-')}-{seed}-{records}.ndjson"
    )
    if path.exists():
        return path
    began = time.perf_counter()
    pop = Population(seed, records, 0)
    encode = msgspec.json.Encoder().encode
    partial = path.with_suffix(".partial")
    with partial.open("wb") as f:
        for i in range(records):
            f.write(encode({"source_id": f"H{i:08d}", "attributes": pop.person(i)}) + b"\n")
    partial.rename(path)
    print(f"wrote {records:,} workers to {path} in {time.perf_counter() - began:.0f} s")
    return path


async def _sql(url: str, *statements: str, autocommit: bool = False) -> list[Any]:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT" if autocommit else None)
    out = []
    async with engine.connect() as conn:
        for statement in statements:
            result = await conn.execute(text(statement))
            out.append(result.scalar() if result.returns_rows else None)
    await engine.dispose()
    return out


def _watch(url: str, stop: threading.Event, every: float, windows: list) -> None:
    began = time.perf_counter()
    last = (0.0, 0)
    sequence = "SELECT coalesce((SELECT last_value FROM source_record_id_seq WHERE is_called), 0)"
    while not stop.wait(every):
        try:
            (value,) = asyncio.run(_sql(url, sequence))
        except Exception:  # the database may not be migrated yet
            continue
        now = time.perf_counter() - began
        rate = (value - last[1]) / (now - last[0])
        windows.append((now, value, rate))
        print(f"  {now:6.0f} s: {value:>9,} records, {rate:,.0f}/s over the last {every:.0f} s")
        last = (now, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default="mdm_bench_1m")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between windows")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    server = normalize_database_url(
        os.environ.get("MDM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    assert server is not None
    url = make_url(server).set(database=args.database).render_as_string(hide_password=False)
    path = _file(args.records, args.seed)
    asyncio.run(
        _sql(
            server,
            f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)',
            f'CREATE DATABASE "{args.database}"',
            autocommit=True,
        )
    )
    env = {
        **os.environ,
        "MDM_DATABASE_URL": url.replace("postgresql+asyncpg://", "postgresql://"),
        "MDM_NATS_URL": os.environ.get("MDM_NATS_URL", "nats://127.0.0.1:4222"),
    }
    mdm = str(Path(sys.executable).parent / "mdm")
    migrate = subprocess.run([mdm, "migrate"], env=env, capture_output=True)
    if migrate.returncode:
        sys.exit(migrate.stderr.decode())
    command = [
        mdm,
        "load",
        "--source",
        "hcm",
        "--entity",
        "worker",
        "--quiet",
        "--no-train",  # the load's own speed; training and re-matching are not measured here
        "--processes",
        str(args.processes),
        "--chunk",
        str(args.chunk),
        str(path),
    ]
    print("$", " ".join(["mdm", *command[1:]]), flush=True)
    windows: list[tuple[float, int, float]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(url, stop, args.every, windows), daemon=True)
    began = time.perf_counter()
    watcher.start()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    stop.set()
    watcher.join()
    print(done.stdout.strip(), done.stderr.strip()[-2000:], sep="\n")
    if done.returncode:
        sys.exit(f"mdm load failed ({done.returncode})")
    vacuum_began = time.perf_counter()
    asyncio.run(_sql(url, "VACUUM ANALYZE", autocommit=True))
    vacuum = time.perf_counter() - vacuum_began
    counts = dict(
        zip(
            ("source records", "golden records", "review tasks", "match keys", "outbox events"),
            asyncio.run(
                _sql(
                    url,
                    "SELECT count(*) FROM source_record",
                    "SELECT count(*) FROM golden_record",
                    "SELECT count(*) FROM review_task",
                    "SELECT count(*) FROM match_key",
                    "SELECT count(*) FROM outbox",
                )
            ),
            strict=True,
        )
    )
    (size,) = asyncio.run(_sql(url, f"SELECT pg_database_size('{args.database}')"))
    rate = args.records / seconds
    print(
        f"{args.records:,} workers in {seconds:,.0f} s = {rate:,.0f} records/s; "
        f"VACUUM ANALYZE {vacuum:,.0f} s; {counts}; {size / 2**30:.1f} GiB"
    )
    if args.write:
        _write(args, seconds, vacuum, counts, size, windows, done.stdout.strip())


def _write(
    args: argparse.Namespace,
    seconds: float,
    vacuum: float,
    counts: dict[str, int],
    size: int,
    windows: list[tuple[float, int, float]],
    summary: str,
) -> None:
    m = _machine()
    rates = [r for _, _, r in windows] or [0.0]
    first, median, last = rates[0], sorted(rates)[len(rates) // 2], rates[-1]
    windowed = f"{first:,.0f}, {median:,.0f}, {last:,.0f}"
    whole = f"**{seconds:,.0f} s, {args.records / seconds:,.0f} records/s**"
    tenths = []
    for k in range(1, 11):
        target = args.records * k // 10
        hit = next((w for w in windows if w[1] >= target), None)
        if hit:
            tenths.append(f"{target // 1000:,}k at {hit[0]:,.0f} s")
    section = f"""{START}
## Bulk load: {args.records:,} workers with `mdm load` (issue 8 part 1)

`python bench/bulk_load.py --records {args.records} --database {args.database} --processes
{args.processes} --chunk {args.chunk} --write` writes the workers of bench/match_latency.py
(seed {args.seed}) to an NDJSON file and runs `mdm load --source hcm --entity worker` into
an empty, migrated database on the local PostgreSQL, as its own process. Machine:
{m["arch"]} {m["model"]}, {m["cores"]} cores, {m["memory"]}, Linux {m["kernel"]}, Python
{m["python"]}; PostgreSQL 15 (Debian package, autovacuum off, shared_buffers 128MB) on the
same machine. {time.strftime("%Y-%m-%d")}.

| | |
|---|---|
| whole load | {whole} (target: 1,000,000 in 600 s) |
| `mdm load`'s summary | {summary} |
| records/s per {args.every:.0f} s window: first, median, last | {windowed} |
| progress (the first window past each 100,000) | {"; ".join(tenths)} |
| stored | {", ".join(f"{k} {v:,}" for k, v in counts.items())}; {size / 2**30:.1f} GiB |
| VACUUM ANALYZE after | {vacuum:,.0f} s |

{END}"""
    doc = ROOT / "docs" / "benchmarks.md"
    current = doc.read_text()
    if START in current and END in current.split(START, 1)[1]:
        before, rest = current.split(START, 1)
        current = before + section + rest.split(END, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + section + "\n"
    doc.write_text(current)


if __name__ == "__main__":
    main()
