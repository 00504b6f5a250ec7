"""Outbox relay: commit-to-PubAck latency and sustained events/s, against real servers.

    python bench/relay_latency.py [--paced 2000 --rate 200] [--burst 3000 --writers 4]
                                  [--backlog 20000] [--sustained 20000]

Creates its own database on MDM_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) and its own stream on
MDM_BENCH_NATS_URL (default nats://127.0.0.1:4222), drops both at the end.
Events are written by the real ingestion use case (one customer golden record
created or updated per event), and published by one Relay with LISTEN/NOTIFY,
exactly as `mdm serve` runs it.

Phases:
- paced: one event per transaction at a steady rate; latency from the
  writer's commit returning to the PubAck reaching the relay.
- burst: several writers committing single-event transactions as fast as they can.
- backlog: events written while no relay runs, then drained: events/s.
- sustained: batches of 500 written as fast as possible while the relay runs:
  events/s from the first commit to the last PubAck, and the latency under it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mdm.bootstrap import Hub  # noqa: E402
from mdm.services.context import RequestContext  # noqa: E402
from mdm.services.ingest import IncomingRecord, ingest_records  # noqa: E402
from mdm.settings import (  # noqa: E402
    DatabaseSettings,
    NatsSettings,
    RelaySettings,
    Settings,
    normalize_database_url,
)
from publishers.connection import NatsLink  # noqa: E402
from publishers.relay import PublishedEvent, Relay  # noqa: E402
from tests.support import scratch_database  # noqa: E402


class Clock:
    """Commit times of (golden_id, version) and the PubAck times the relay reports."""

    def __init__(self) -> None:
        self.committed: dict[tuple[str, int], float] = {}
        self.acked: dict[tuple[str, int], float] = {}
        self.done = asyncio.Event()
        self.expect = 0

    async def on_published(self, published: Sequence[PublishedEvent]) -> None:
        for p in published:
            self.acked[(p.row.golden_id, p.row.version)] = p.acked_at
        if len(self.acked) >= self.expect:
            self.done.set()

    def latencies_ms(self) -> list[float]:
        return sorted(
            (self.acked[k] - t) * 1000 for k, t in self.committed.items() if k in self.acked
        )


async def write(
    hub: Hub, clock: Clock, start: int, count: int, batch: int = 1, revision: int = 0
) -> None:
    """Upsert customers start..start+count, `batch` per transaction; note each commit time."""
    for first in range(start, start + count, batch):
        ids = range(first, min(first + batch, start + count))
        records = [
            IncomingRecord(source_id=f"B-{i}", attributes={"name": f"Customer {i} r{revision}"})
            for i in ids
        ]
        async with hub.transaction() as repo:
            results = await ingest_records(
                repo, hub.rules, "customer", "crm", records, RequestContext()
            )
        committed = time.time()
        for r in results:
            clock.committed[(r.golden_id, r.version)] = committed  # type: ignore[union-attr]


def summary(name: str, clock: Clock, seconds: float | None = None) -> str:
    lat = clock.latencies_ms()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    line = (
        f"{name:<10} events={len(lat):>6}  commit->PubAck median={statistics.median(lat):7.2f} ms"
        f"  p99={p99:7.2f} ms  max={lat[-1]:7.2f} ms"
    )
    if seconds:
        line += f"  {len(lat) / seconds:8.0f} events/s"
    return line


async def run(args: argparse.Namespace) -> None:
    server = normalize_database_url(
        os.environ.get("MDM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    nats_url = os.environ.get("MDM_BENCH_NATS_URL", "nats://127.0.0.1:4222")
    token = secrets.token_hex(3)
    relay_settings = RelaySettings(stream=f"BENCH_{token}", subject_prefix=f"bench{token}")
    assert server is not None
    async with scratch_database(server) as url:
        settings = Settings(
            database=DatabaseSettings(url=url, pool_size=args.writers + 2),
            nats=NatsSettings(url=nats_url),
            relay=relay_settings,
        )
        hub = Hub.from_settings(settings)
        link = NatsLink(nats_url, name="bench-relay")
        await link.start()
        nc = await nats.connect(nats_url)
        next_id = 0
        try:

            async def phase(name: str, work: object, expect: int, timed: bool = False) -> None:
                clock = Clock()
                clock.expect = expect
                relay = Relay(hub.engine, link, relay_settings, on_published=clock.on_published)
                await relay.start()
                await asyncio.wait_for(relay.listening.wait(), 10)
                started = time.time()
                await work(clock)  # type: ignore[operator]
                await asyncio.wait_for(clock.done.wait(), 300)
                elapsed = max(clock.acked.values()) - started
                await relay.stop()
                print(summary(name, clock, elapsed if timed else None), flush=True)

            async def paced(clock: Clock) -> None:
                nonlocal next_id
                interval = 1 / args.rate
                t0 = time.perf_counter()
                for i in range(args.paced):
                    await write(hub, clock, next_id + i, 1)
                    delay = t0 + (i + 1) * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                next_id += args.paced

            async def burst(clock: Clock) -> None:
                nonlocal next_id
                share = args.burst // args.writers
                base = next_id
                await asyncio.gather(
                    *(write(hub, clock, base + w * share, share) for w in range(args.writers))
                )
                next_id += share * args.writers

            async def sustained(clock: Clock) -> None:
                nonlocal next_id
                await write(hub, clock, next_id, args.sustained, batch=500)
                next_id += args.sustained

            await phase("paced", paced, args.paced)
            await phase("burst", burst, (args.burst // args.writers) * args.writers)
            await phase("sustained", sustained, args.sustained, timed=True)

            # Backlog: written with no relay running, then drained.
            clock = Clock()
            clock.expect = args.backlog
            await write(hub, clock, next_id, args.backlog, batch=1000)
            relay = Relay(hub.engine, link, relay_settings, on_published=clock.on_published)
            started = time.time()
            await relay.start()
            await asyncio.wait_for(clock.done.wait(), 300)
            drained = max(clock.acked.values()) - started
            await relay.stop()
            print(
                f"backlog    events={len(clock.acked):>6}  drained in {drained:.2f} s"
                f"  {len(clock.acked) / drained:8.0f} events/s",
                flush=True,
            )
        finally:
            try:
                await nc.jetstream().delete_stream(relay_settings.stream)
            except Exception:
                pass
            await nc.close()
            await link.close()
            await hub.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paced", type=int, default=2000, help="events in the paced phase")
    parser.add_argument("--rate", type=float, default=200, help="paced transactions per second")
    parser.add_argument("--burst", type=int, default=3000, help="events in the burst phase")
    parser.add_argument("--writers", type=int, default=4, help="concurrent burst writers")
    parser.add_argument("--backlog", type=int, default=20000, help="events in the backlog")
    parser.add_argument("--sustained", type=int, default=20000, help="events written in batches")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        flush=True,
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
