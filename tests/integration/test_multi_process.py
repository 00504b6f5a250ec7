"""Two `mdm serve` processes (each with its own relay child) on one database and one NATS.

Ingestion is spread over both at once, with the duplicates arriving concurrently:
the same person from HCM on one process and from PSA on the other at the same
moment (sharing an e-mail and a national id), fuzzy near-duplicates (no shared
identifier; HCM on one process, ERP on the other), whole batches of the same
people sent to both, and updates of one source record sent to both processes
at once. ARCHITECTURE.md's invariants must hold across processes: each pair
ends in exactly one golden record, every source record is linked once, and the
two relays publish every outbox row exactly once, in version order per golden
record.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec
import pytest
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mdm.settings import RelaySettings
from tests.integration.hub_process import HubProcess, hub_env
from tests.support import read_stream, scratch_database, wait_for

ADMIN_KEY = "mdm_multi-process-" + secrets.token_hex(8)
HEADERS = {"X-API-Key": ADMIN_KEY}

GIVEN = ["Anna", "Jonas", "Leonie", "Matthias", "Sofia", "Tobias", "Clara", "Felix"]
FAMILY = [
    "Achterberg", "Brandauer", "Castellano", "Dreyfus", "Eichendorff", "Falkenrath",
    "Grünewald", "Hohenstein", "Isenburg", "Jablonski", "Kessler", "Lindqvist",
    "Morgenstern", "Nussbaum", "Oberholzer", "Pfannkuch", "Quandt", "Rautenberg",
    "Schwarzkopf", "Tannhauser", "Ulbricht", "Vogelsang", "Wolkenstein", "Zimmerer",
]  # fmt: skip
STRONG = 24  # people sent one record at a time, from HCM and PSA at once
BATCHED = 16  # people sent in two concurrent batches, HCM's and PSA's
FUZZY = 8  # people without a shared identifier, from HCM and ERP at once
UPDATE_ROUNDS = 3
CHAINS = 8  # records changed one version after another, alternating processes ...
CHAIN_LENGTH = 15  # ... this many times: each commit wakes both relays at once


def _person(i: int) -> dict[str, Any]:
    return {
        "given_name": GIVEN[i % len(GIVEN)],
        "family_name": f"{FAMILY[i % len(FAMILY)]}-{chr(ord('A') + i // len(FAMILY))}",
        "email": f"worker{i}@example.com",
        "national_id": f"{12_000_000 + i * 7919}",
        "date_of_birth": f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "phone": f"+49 30 {5550000 + i}",
    }


def _fuzzy(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """HCM's and ERP's records of one person: no identifier in common, a typo, a format."""
    family = FAMILY[i % len(FAMILY)]
    given = GIVEN[(i + 3) % len(GIVEN)]
    dob = f"19{70 + i}-0{1 + i % 9}-1{i % 10}"
    phone = f"+49 89 {7770000 + i * 13}"
    hcm = {
        "given_name": given,
        "family_name": family,
        "date_of_birth": dob,
        "phone": phone,
        "address": {"city": "München", "country": "DE"},
    }
    erp = {
        "given_name": given.upper(),
        "family_name": family[:-2] + family[-1] + family[-2],  # two letters swapped
        "date_of_birth": dob,
        "phone": phone.replace(" ", ""),
        "address": {"city": "Muenchen", "country": "DE"},
    }
    return hcm, erp


@pytest.fixture
async def own_database(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


@pytest.fixture
def hubs(
    own_database: str, nats_url: str, relay_settings: RelaySettings
) -> Iterator[list[HubProcess]]:
    # Small relay rounds: a backlog is published in many rounds, both relays interleaving.
    env = hub_env(own_database, nats_url, ADMIN_KEY, relay_settings, MDM_RELAY_BATCH_SIZE="20")
    procs = [HubProcess(env), HubProcess(env)]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def _put(
    client: httpx.AsyncClient, base: str, source: str, source_id: str, attrs: dict[str, Any]
) -> dict[str, Any]:
    response = await client.put(
        f"{base}/v1/sources/{source}/worker/{source_id}", json={"attributes": attrs}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _batch(
    client: httpx.AsyncClient, base: str, source: str, items: list[dict[str, Any]]
) -> None:
    response = await client.post(f"{base}/v1/sources/{source}/worker/batch", json=items)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(items), response.text


@contextmanager
def _paused(pids: list[int]) -> Iterator[None]:
    """SIGSTOP these processes, SIGCONT them all at once after the block."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def _ingest(hubs: list[HubProcess]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Send every pair's two records at the same moment, one to each process; answer
    the pairs as ((source, source_id), (source, source_id)). Then change some records
    many times on both processes while the relays are paused, so that both relays
    start on a backlog of many versions of the same golden records at once."""
    a, b = (h.base for h in hubs)
    pairs: list[tuple[tuple[str, str], tuple[str, str]]] = []
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as client:
        sends = []
        for i in range(STRONG):
            person = _person(i)
            psa = {**person, "given_name": person["given_name"].upper(), "job_title": "Resource"}
            # Alternate which process gets which source, so both see both.
            first, second = (a, b) if i % 2 else (b, a)
            sends += [
                _put(client, first, "hcm", f"W-{i}", person),
                _put(client, second, "psa", f"R-{i}", psa),
            ]
            pairs.append((("hcm", f"W-{i}"), ("psa", f"R-{i}")))
        for i in range(FUZZY):
            hcm, erp = _fuzzy(i)
            sends += [
                _put(client, a, "hcm", f"FW-{i}", hcm),
                _put(client, b, "erp", f"FE-{i}", erp),
            ]
            pairs.append((("hcm", f"FW-{i}"), ("erp", f"FE-{i}")))
        batched = range(STRONG, STRONG + BATCHED)
        for base, source, p in ((a, "hcm", "W"), (b, "psa", "R")):
            items = [{"source_id": f"{p}-{i}", "attributes": _person(i)} for i in batched]
            sends.append(_batch(client, base, source, items))
        pairs += [(("hcm", f"W-{i}"), ("psa", f"R-{i}")) for i in batched]
        await asyncio.gather(*sends)
        with _paused([h.relay_pid() for h in hubs]):
            await _changes(client, a, b)
    return pairs


async def _changes(client: httpx.AsyncClient, a: str, b: str) -> None:
    """Concurrent updates of one source record on both processes; bursts of changes."""
    # Updates of one source record sent to both processes at once, a few rounds.
    for round_ in range(UPDATE_ROUNDS):
        updates = []
        for i in range(0, STRONG, 2):
            person = _person(i)
            updates += [
                _put(client, a, "hcm", f"W-{i}", {**person, "job_title": f"Consultant {round_}"}),
                _put(client, b, "hcm", f"W-{i}", {**person, "job_title": f"Manager {round_}"}),
            ]  # fmt: skip
        await asyncio.gather(*updates)

    async def chain(i: int) -> None:
        person = _person(i)
        for n in range(CHAIN_LENGTH):  # bursts of four changes, two on each process
            await asyncio.gather(
                *(
                    _put(client, base, "hcm", f"W-{i}", {**person, "job_title": f"G{n}.{k}"})
                    for k, base in enumerate((a, b, a, b))
                )
            )

    await asyncio.gather(*(chain(i) for i in range(1, 2 * CHAINS, 2)))


async def _scalar_rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def test_two_processes_keep_the_invariants_under_concurrent_duplicates(
    hubs: list[HubProcess],
    own_database: str,
    js: JetStreamContext,
    relay_settings: RelaySettings,
) -> None:
    a, b = (h.base for h in hubs)
    pairs = await _ingest(hubs)
    engine = create_async_engine(own_database)
    try:
        # Each pair of records of one person ends in exactly one golden record.
        linked = {
            (source, source_id): golden_id
            for source, source_id, golden_id in await _scalar_rows(
                engine, "SELECT source, source_id, golden_id FROM source_record"
            )
        }
        split = [(x, y) for x, y in pairs if linked[x] != linked[y]]
        assert not split, f"{len(split)} pairs in two golden records: {split}"
        people = {linked[x] for x, _ in pairs}
        assert len(people) == len(pairs)  # and different people stayed apart
        active = await _scalar_rows(
            engine, "SELECT golden_id FROM golden_record WHERE status = 'active'"
        )
        assert sorted(g for (g,) in active) == sorted(people)

        # Every cross-reference is there once, in the golden record both processes answer.
        async with httpx.AsyncClient(headers=HEADERS, timeout=60) as client:
            for x, y in pairs:
                for base in (a, b):
                    response = await client.get(f"{base}/v1/xref/worker/{x[0]}/{x[1]}")
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert body["golden_id"] == linked[x]
                    xrefs = Counter((r["source"], r["source_id"]) for r in body["xrefs"])
                    assert xrefs == Counter({x: 1, y: 1}), body

        # Both relays drain the one outbox ...
        async def drained() -> bool:
            ((pending,),) = await _scalar_rows(
                engine, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            return int(pending) == 0

        await wait_for(drained, timeout=60)
        outbox = {
            str(event_id): (golden_id, int(version))
            for event_id, golden_id, version in await _scalar_rows(
                engine, "SELECT event_id::text, golden_id, version FROM outbox"
            )
        }
        # ... and every golden record's versions are all in it, one row per version.
        for golden_id, version in await _scalar_rows(
            engine, "SELECT golden_id, version FROM golden_record"
        ):
            have = sorted(v for g, v in outbox.values() if g == golden_id)
            assert have == list(range(1, version + 1)), (golden_id, have)
    finally:
        await engine.dispose()

    # The stream holds every outbox row exactly once, in version order per record.
    msgs = await read_stream(
        js, relay_settings.stream, f"{relay_settings.subject_prefix}.>", len(outbox), timeout=60
    )
    ids = [m.header.get("Nats-Msg-Id") if m.header else None for m in msgs]
    assert len(ids) == len(set(ids)), "an event was published twice"
    assert set(ids) == set(outbox), "the stream and the outbox differ"
    seen: dict[str, list[int]] = defaultdict(list)
    for msg, event_id in zip(msgs, ids, strict=True):
        event = msgspec.json.decode(msg.data)
        key, version = outbox[str(event_id)]
        assert event["event_id"] == event_id and event["version"] == version
        seen[key].append(version)
    broken = {k: v for k, v in seen.items() if v != list(range(1, len(v) + 1))}
    assert not broken, f"out of order, gaps or repeats: {broken}"
    # The concurrent updates made later versions, published after their first.
    assert sum(1 for v in seen.values() if len(v) > 2) >= STRONG // 2
