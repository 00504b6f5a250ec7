"""Batch-ingestion throughput through the real HTTP API, against a real PostgreSQL.

Starts `mdm serve` as its own process on a fresh database, generates N worker
records from HCM and PSA (a share of PSA's are the same people as HCM's, linked
by e-mail), posts them in batches of 1,000 and prints records/s.

    python bench/ingest_batch.py [--records 10000] [--runs 1x1 1x2 2x2]

Uses MDM_BENCH_DATABASE_URL (default: postgresql://postgres@127.0.0.1:5432/postgres,
where it creates and drops its own database) and MDM_BENCH_NATS_URL (default
nats://127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mdm.settings import normalize_database_url  # noqa: E402

GIVEN = [
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Eva",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Marta",
    "Nikolai",
    "Olga",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
]
FAMILY = [
    "Müller",
    "Smith",
    "García",
    "Nowak",
    "Rossi",
    "Kowalski",
    "Dubois",
    "Jensen",
    "Okafor",
    "Tanaka",
    "Novák",
    "Silva",
    "Cohen",
    "Andersson",
    "O'Brien",
    "Schmidt",
]
TITLES = ["Consultant", "Senior Consultant", "Manager", "Architect", "Engineer", "Analyst"]


def generate(n: int, seed: int = 7) -> list[tuple[str, dict]]:
    """(source, batch item) pairs: 70% HCM workers, 30% PSA resources, half of them known to HCM."""
    rng = random.Random(seed)
    hcm_count = int(n * 0.7)
    people = []
    for i in range(hcm_count):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        people.append(
            {
                "family_name": family,
                "given_name": given,
                "email": f"{given.lower()}.{i}@northwind.example",
                "employee_number": f"E{i:06d}",
                "phone": f"+49 30 {rng.randrange(1000000, 9999999)}",
                "job_title": rng.choice(TITLES),
                "worker_type": "employee",
                "status": "active",
                "hire_date": f"20{rng.randrange(10, 26)}-0{rng.randrange(1, 9)}-1{i % 9}",
                "cost_rate": {"amount": str(rng.randrange(40, 160)), "currency": "EUR"},
                "address": {"city": "Berlin", "country": "DE", "postal_code": "10117"},
            }
        )
    records = [("hcm", {"source_id": f"H{i}", "attributes": p}) for i, p in enumerate(people)]
    for j in range(n - hcm_count):
        if j % 2 == 0:
            p = people[rng.randrange(hcm_count)]
            attrs = {
                "family_name": p["family_name"],
                "given_name": p["given_name"],
                "email": p["email"].upper(),
                "job_title": rng.choice(TITLES),
            }
        else:
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            attrs = {
                "family_name": family,
                "given_name": given,
                "worker_type": "contractor",
                "email": f"{given.lower()}.{j}@contractor.example",
            }
        records.append(("psa", {"source_id": f"R{j}", "attributes": attrs}))
    return records


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(client: httpx.AsyncClient, attempts: int) -> None:
    """Poll GET /health every 0.1 s until the hub answers 200 (at most `attempts` times)."""
    for _ in range(attempts):
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)


async def run(records: int, concurrency: int, batch_size: int, workers: int) -> dict[str, float]:
    server = normalize_database_url(
        os.environ.get("MDM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    nats_url = os.environ.get("MDM_BENCH_NATS_URL", "nats://127.0.0.1:4222")
    assert server is not None
    name = f"mdm_bench_{secrets.token_hex(3)}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    port = free_port()
    admin_key = "mdm_bench_" + secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "MDM_DATABASE_URL": url,
        "MDM_NATS_URL": nats_url,
        "MDM_PORT": str(port),
        "MDM_LOG_LEVEL": "WARNING",
        "MDM_ADMIN_KEY": admin_key,
        "MDM_RATE_LIMIT": "0",  # measure the hub, not its throttle
    }
    mdm = [sys.executable, "-m", "mdm.cli"]
    subprocess.run([*mdm, "migrate"], env=env, check=True, cwd=ROOT)
    proc = subprocess.Popen([*mdm, "serve", "--workers", str(workers)], env=env, cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base, timeout=120, headers={"X-API-Key": admin_key}
        ) as client:
            await wait_healthy(client, 100)
            data = generate(records)
            batches: list[tuple[str, list[dict]]] = []
            for source in ("hcm", "psa"):
                items = [item for s, item in data if s == source]
                batches += [
                    (source, items[i : i + batch_size]) for i in range(0, len(items), batch_size)
                ]
            queue: asyncio.Queue[tuple[str, list[dict]]] = asyncio.Queue()
            for b in batches:
                queue.put_nowait(b)
            latencies: list[float] = []

            async def worker() -> None:
                while not queue.empty():
                    source, items = queue.get_nowait()
                    t = time.perf_counter()
                    r = await client.post(f"/v1/sources/{source}/worker/batch", json=items)
                    latencies.append(time.perf_counter() - t)
                    r.raise_for_status()
                    assert r.json()["rejected"] == 0, r.text[:500]

            started = time.perf_counter()
            await asyncio.gather(*[worker() for _ in range(concurrency)])
            elapsed = time.perf_counter() - started
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            goldens = (await conn.execute(text("SELECT count(*) FROM golden_record"))).scalar_one()
            sources = (await conn.execute(text("SELECT count(*) FROM source_record"))).scalar_one()
            events = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
        await engine.dispose()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    latencies.sort()
    return {
        "records": records,
        "seconds": elapsed,
        "records_per_s": records / elapsed,
        "batch_p50_ms": latencies[len(latencies) // 2] * 1000,
        "batch_max_ms": latencies[-1] * 1000,
        "golden_records": goldens,
        "source_records": sources,
        "events": events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["1x1", "1x2", "2x2"],
        help="server workers x concurrent clients, e.g. 1x1 2x2",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}"
    )
    print(
        f"{'workers':>7} {'clients':>7} {'records':>8} {'seconds':>8} {'records/s':>10} "
        f"{'batch p50 ms':>12} {'batch max ms':>12} {'golden':>7} {'events':>7}"
    )
    for spec in args.runs:
        workers, clients = (int(x) for x in spec.split("x"))
        r = asyncio.run(run(args.records, clients, args.batch_size, workers))
        print(
            f"{workers:>7} {clients:>7} {r['records']:>8} {r['seconds']:>8.2f} "
            f"{r['records_per_s']:>10.0f} {r['batch_p50_ms']:>12.0f} {r['batch_max_ms']:>12.0f} "
            f"{r['golden_records']:>7} {r['events']:>7}"
        )


if __name__ == "__main__":
    main()
