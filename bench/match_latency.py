"""One-record matching latency with N golden records stored (issue 3).

1. Generates N distinct synthetic workers (seeded; Faker name pools from several
   locales, surnames drawn Zipf-like so that common ones exist) and loads them
   through the hub's ingestion use case in batches of 1,000 (two loaders, each
   on its own connection), into a scratch database on the local PostgreSQL, or
   into `--keep-db NAME`, reused when it already holds N workers.
2. The matching step: `mdm.services.matcher.search` (standardize, features,
   candidates from the blocking index, scores, decision; stores nothing) for
   each probe, sequentially: median / p95 / p99 / max, and the candidate golden
   records scored.
3. The whole request: `mdm serve` on loopback against that database, one PUT
   per probe, sequentially, timed by the client.

Probes: half new people, half near-duplicates of loaded ones (a typo in the
surname, a nickname or an initial for the given name, no e-mail), from "psa".

    python bench/match_latency.py [--records 1000000] [--probes 1000] [--keep-db mdm_latency]
                                  [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mdm.adapters.migrate import upgrade  # noqa: E402
from mdm.adapters.repository import Repository  # noqa: E402
from mdm.bootstrap import make_engine  # noqa: E402
from mdm.services.context import RequestContext  # noqa: E402
from mdm.services.ingest import IncomingRecord, ingest_records  # noqa: E402
from mdm.services.matcher import search  # noqa: E402
from mdm.settings import load_rules, normalize_database_url  # noqa: E402

DESCRIPTION = (
    "N synthetic workers (seeded; Faker name pools of 8 locales, Zipf-like "
    "surnames) loaded through the ingestion use case (batches of 1,000, two "
    "loaders); then probes, half new people and half near-duplicates of stored ones "
    "(a letter dropped from the surname, half with an initial for the given name, "
    "no e-mail or employee number), one at a time: the matching step alone "
    "(`mdm.services.matcher.search`: standardize, features, candidates from the "
    "blocking index, scores, decision), and the whole PUT against `mdm serve` on "
    "loopback, timed by the client, once with MDM_RELAY=0 and once with the relay "
    "publishing every event to the local NATS JetStream from the same process."
)
START = "<!-- match_latency -->"
END = "<!-- match_latency: end -->"
LOCALES = ["de_DE", "en_GB", "en_US", "fr_FR", "es_ES", "it_IT", "pl_PL", "nl_NL"]


def _ascii(text_: str) -> str:
    folded = unicodedata.normalize("NFKD", text_).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


class People:
    """Seeded pools of names and places, and people drawn from them."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        fake = Faker(LOCALES)
        Faker.seed(seed)
        self.rng = random.Random(seed)
        self.given = sorted({fake.first_name() for _ in range(6_000)})
        self.family = sorted({fake.last_name() for _ in range(60_000)})
        self.rng.shuffle(self.family)  # rank = frequency order
        self.places = [(fake["de_DE"].postcode(), fake["de_DE"].city()) for _ in range(3_000)]
        # Zipf-like: rank r drawn with weight 1 / (r + 10)
        self.family_weights = [1.0 / (r + 10) for r in range(len(self.family))]

    def person(self, i: int) -> dict[str, Any]:
        rng = self.rng
        given = rng.choice(self.given)
        family = rng.choices(self.family, self.family_weights)[0]
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(54 * 365))
        postcode, city = rng.choice(self.places)
        attrs: dict[str, Any] = {
            "given_name": given,
            "family_name": family,
            "date_of_birth": born.isoformat(),
            "email": f"{_ascii(given)}.{_ascii(family)}{i}@example.com",
            "address": {
                "line1": f"{rng.choice(self.family)}str. {rng.randrange(1, 200)}",
                "postal_code": postcode,
                "city": city,
                "country": "DE",
            },
        }
        if rng.random() < 0.3:
            attrs["employee_number"] = f"E{i:08d}"
        return attrs

    def near_duplicate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        out = {k: v for k, v in attrs.items() if k not in ("email", "employee_number")}
        family = out["family_name"]
        if len(family) > 4:
            cut = rng.randrange(1, len(family) - 1)
            out["family_name"] = family[:cut] + family[cut + 1 :]  # one letter dropped
        if rng.random() < 0.5:
            out["given_name"] = out["given_name"][0] + "."
        return out


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "median": statistics.median(ordered),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": ordered[-1],
    }


async def _count_workers(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        text("SELECT count(*) FROM source_record WHERE entity = 'worker'")
                    )
                ).scalar_one()
            )
    except Exception:
        return 0
    finally:
        await engine.dispose()


async def _ensure_database(server: str, name: str) -> str:
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        exists = (
            await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        ).first()
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=1)
    await upgrade(engine)
    await engine.dispose()
    return url


async def _load(url: str, people: People, n: int, start: int) -> float:
    rules = load_rules()
    engine = make_engine(url, pool_size=3)
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    for offset in range(start, n, 1_000):
        queue.put_nowait(offset)
    began, done = time.perf_counter(), start

    async def loader() -> None:
        nonlocal done
        while True:
            try:
                offset = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            assert offset is not None
            records = [
                IncomingRecord(f"H{i:08d}", people.person(i))
                for i in range(offset, min(n, offset + 1_000))
            ]
            async with engine.begin() as conn:
                await ingest_records(
                    Repository(conn), rules, "worker", "hcm", records, RequestContext()
                )
            before, done = done, done + len(records)
            if done // 50_000 > before // 50_000:
                rate = (done - start) / (time.perf_counter() - began)
                print(f"  loaded {done:,} workers ({rate:,.0f} records/s)", flush=True)

    await asyncio.gather(loader(), loader())
    await engine.dispose()
    return time.perf_counter() - began


def _probes(people: People, n: int, count: int) -> list[dict[str, Any]]:
    """New people (the near-duplicates' originals are read back by _originals).

    The loaders drew people from the seeded stream from its start; probes come
    from another stream, so they are not the first people loaded again.
    """
    people.rng = random.Random(people.rng.random() + n)
    return [people.person(n + 10_000_000 + i) for i in range(count)]


async def _originals(url: str, count: int, seed: int) -> list[dict[str, Any]]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        rows = await conn.execute(
            text(
                "SELECT raw FROM source_record WHERE entity = 'worker' ORDER BY random() LIMIT :n"
            ),
            {"n": count},
        )
        out = [r.raw for r in rows]
    await engine.dispose()
    return out


async def _match_step(url: str, probes: list[dict[str, Any]]) -> dict[str, Any]:
    rules = load_rules()
    engine = make_engine(url, pool_size=1)
    times, candidates, outcomes = [], [], {"link": 0, "review": 0, "new": 0}
    async with engine.connect() as conn:
        await search(conn, rules, "worker", probes[0], limit=1000)  # warm the model cache
        for attrs in probes:
            t0 = time.perf_counter()
            found = await search(conn, rules, "worker", attrs, limit=1000)
            times.append((time.perf_counter() - t0) * 1000)
            candidates.append(len(found.scores))
            outcomes[found.decision.outcome] += 1
    await engine.dispose()
    return {
        "ms": _percentiles(times),
        "candidates": _percentiles([float(c) for c in candidates]),
        "outcomes": outcomes,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(url: str, probes: list[dict[str, Any]], relay: bool, prefix: str) -> dict[str, Any]:
    port = _free_port()
    admin_key = "mdm_bench_" + secrets.token_urlsafe(16)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MDM_")},
        "MDM_DATABASE_URL": url,
        "MDM_NATS_URL": os.environ.get("MDM_BENCH_NATS_URL", "nats://127.0.0.1:4222"),
        "MDM_LOG_LEVEL": "WARNING",
        "MDM_RELAY": "1" if relay else "0",
        "MDM_ADMIN_KEY": admin_key,
        "MDM_RATE_LIMIT": "0",  # measure the hub, not its throttle
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdm.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        times, linked = [], 0
        with httpx.Client(base_url=base, timeout=30, headers={"X-API-Key": admin_key}) as client:
            for i, attrs in enumerate(probes):
                t0 = time.perf_counter()
                response = client.put(
                    f"/v1/sources/psa/worker/{prefix}{i:08d}", json={"attributes": attrs}
                )
                times.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                linked += response.json()["outcome"] == "linked"
        return {"ms": _percentiles(times), "linked": linked}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


async def _server_version(url: str) -> str:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        version = (await conn.execute(text("SHOW server_version"))).scalar_one()
    await engine.dispose()
    return str(version).split()[0]


def _machine() -> str:
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()}, {model}, {os.cpu_count()} cores, Linux {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", default=None, help="load into / reuse this database")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    server = normalize_database_url(
        os.environ.get("MDM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    assert server is not None
    name = args.keep_db or f"mdm_latency_{args.records}"
    url = asyncio.run(_ensure_database(server, name))
    people = People(args.seed)
    have = asyncio.run(_count_workers(url))
    load_seconds = None
    if have < args.records:
        print(f"loading {args.records - have:,} workers into {name} ({have:,} there)", flush=True)
        load_seconds = asyncio.run(_load(url, people, args.records, have))
        admin = create_async_engine(url, isolation_level="AUTOCOMMIT")

        async def vacuum() -> None:
            async with admin.connect() as conn:
                await conn.execute(text("VACUUM ANALYZE"))
            await admin.dispose()

        asyncio.run(vacuum())
    stored = asyncio.run(_count_workers(url))
    half = args.probes // 2
    fresh = _probes(people, args.records, half)
    dups = [people.near_duplicate(a) for a in asyncio.run(_originals(url, half, args.seed))]
    probes = [p for pair in zip(fresh, dups, strict=False) for p in pair]
    print(f"{stored:,} workers stored; {len(probes)} probes", flush=True)
    match = asyncio.run(_match_step(url, probes))
    stamp = int(time.time())
    http = _http(url, probes, relay=False, prefix=f"P{stamp}-")
    with_relay = _http(url, probes, relay=True, prefix=f"R{stamp}-")
    pg = asyncio.run(_server_version(url))
    m, c, h, r = match["ms"], match["candidates"], http["ms"], with_relay["ms"]
    lines = [
        f"| workers stored | {stored:,} |",
        f"| matching step (search), ms: median / p95 / p99 / max | {m['median']:.2f} / "
        f"{m['p95']:.2f} / {m['p99']:.2f} / {m['max']:.2f} |",
        f"| candidate golden records scored: median / p99 / max | {c['median']:.0f} / "
        f"{c['p99']:.0f} / {c['max']:.0f} |",
        f"| decisions of the {len(probes)} probes (search) | {match['outcomes']} |",
        f"| whole PUT over HTTP (mdm serve with MDM_RELAY=0, one client), ms: median / p95 / "
        f"p99 / max | {h['median']:.2f} / {h['p95']:.2f} / {h['p99']:.2f} / {h['max']:.2f} |",
        f"| the same with the relay in the serving process (the default), ms | "
        f"{r['median']:.2f} / {r['p95']:.2f} / {r['p99']:.2f} / {r['max']:.2f} |",
        f"| probes the PUT linked to an existing golden record | {http['linked']} |",
    ]
    if load_seconds is not None:
        lines.append(
            f"| load: {args.records - have:,} workers through ingest_records, 2 loaders x "
            f"1,000 | {load_seconds / 60:.1f} min |"
        )
    table = "\n".join(["| what | figure |", "|---|---|", *lines])
    print(table)
    if args.write:
        section = "\n".join(
            [
                START,
                f"## One-record matching with {stored:,} workers stored (issue 3)",
                "",
                f"`python bench/match_latency.py --records {args.records} --probes {args.probes}`:",
                "",
                DESCRIPTION,
                "",
                f"Machine: {_machine()}; PostgreSQL {pg} (Debian package, default settings), "
                f"same machine. {dt.date.today().isoformat()}.",
                "",
                table,
                END,
            ]
        )
        doc = ROOT / "docs" / "benchmarks.md"
        current = doc.read_text()
        if START in current:
            before, rest = current.split(START, 1)
            after = rest.split(END, 1)[1] if END in rest else ""
            current = before + section + after
        else:
            current = current.rstrip() + "\n\n" + section + "\n"
        doc.write_text(current)
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
