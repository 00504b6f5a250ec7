"""Warming the ID lookup cache at start (mdm/adapters/lookup_cache.py `fill`).

A hub process that starts on a database already holding records reads their
answers into its cache, page by page, before anyone asks: the answers must be
the very bytes a lookup would read, only for live records, never beyond the
cache's size, and never an answer a change overtook.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from mdm import heap
from mdm.adapters.lookup_cache import Lookups, answer_size
from mdm.api.app import create_app
from mdm.api.golden import render_xref
from mdm.settings import LookupSettings, Settings
from tests.integration.prometheus_text import samples
from tests.integration.test_lookup_cache import fast_path

WAIT = 10.0


async def put(client: AsyncTestClient, source: str, sid: str, attrs: dict[str, Any]) -> str:
    response = await client.put(f"/v1/sources/{source}/customer/{sid}", json={"attributes": attrs})
    assert response.status_code == 200, response.text
    golden_id: str = response.json()["golden_id"]
    return golden_id


@asynccontextmanager
async def hub_process(settings: Settings, **lookup: Any) -> AsyncIterator[AsyncTestClient]:
    """Another `mdm serve` starting on the same database (its own, empty caches)."""
    changed = dataclasses.replace(settings, lookup=LookupSettings(**lookup))
    async with AsyncTestClient(app=create_app(changed)) as started:
        started.headers["X-API-Key"] = settings.auth.admin_key or ""
        yield started


def lookups_of(client: AsyncTestClient) -> Lookups:
    lookups: Lookups = client.app.state.hub.lookups
    return lookups


async def stored(client: AsyncTestClient) -> dict[str, bytes]:
    """The started process's cache once its warming finished (no lookup made)."""
    lookups = lookups_of(client)
    await asyncio.wait_for(lookups.warmed.wait(), WAIT)
    return {key: body for key, (_tag, body) in lookups.answers._entries.items()}


async def three_goldens(client: AsyncTestClient) -> None:
    """ACC-1 and C-77 in one golden record, P alone, Q deleted."""
    await put(client, "crm", "ACC-1", {"name": "Acme GmbH", "email": "info@acme.example"})
    await put(client, "erp", "C-77", {"name": "Acme", "email": "info@acme.example"})
    await put(client, "crm", "P", {"name": "Initech", "email": "hello@initech.example"})
    await put(client, "crm", "Q", {"name": "Umbrella", "email": "ops@umbrella.example"})
    assert (await client.delete("/v1/sources/crm/customer/Q")).status_code in (200, 204)


async def test_a_starting_process_holds_every_live_answer_before_it_is_asked(
    client: AsyncTestClient, settings: Settings
) -> None:
    await three_goldens(client)
    async with hub_process(settings) as started:
        warmed = await stored(started)
        assert set(warmed) == {"customer/crm/ACC-1", "customer/erp/C-77", "customer/crm/P"}
        # The bytes a lookup reads from the database (this process's own cache is
        # cleared first, so its answer is read, not cached).
        lookups_of(client).answers.clear()
        for key, body in warmed.items():
            answer = await client.get(f"/v1/xref/{key}")
            assert answer.status_code == 200 and answer.content == body
        # Both keys of the shared golden record hold one answer (one bytes object).
        assert warmed["customer/crm/ACC-1"] is warmed["customer/erp/C-77"]
        served = fast_path(started).served
        assert (await started.get("/v1/xref/customer/crm/P")).content == warmed["customer/crm/P"]
        assert fast_path(started).served == served + 1  # from memory, before routing
        metrics = samples((await started.get("/metrics")).text)
        assert metrics["mdm_lookup_cache_warmed_entries"] == 3
        assert metrics["mdm_lookup_cache_warmed_store_answers"] == 3
        assert metrics["mdm_lookup_cache_warmed_share"] == 1.0
        held = lookups_of(started).answers.bytes
        assert held == sum(answer_size(key, body) for key, body in warmed.items())
        assert metrics["mdm_lookup_cache_warmed_bytes"] == held
        assert metrics["mdm_lookup_cache_budget_bytes"] == LookupSettings().cache_bytes


async def test_warming_stops_at_the_byte_budget_and_says_what_share_of_the_store_it_holds(
    client: AsyncTestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await three_goldens(client)
    async with hub_process(settings) as whole:
        sizes = {key: answer_size(key, body) for key, body in (await stored(whole)).items()}
    # Golden ids in order: ACC-1 and C-77's record, then P's. A budget one byte short
    # of all three answers holds the first two.
    budget = sum(sizes.values()) - 1
    caplog.set_level(logging.INFO, logger="mdm.lookup")
    async with hub_process(settings, cache_bytes=budget) as started:
        warmed = await stored(started)
        assert set(warmed) == {"customer/crm/ACC-1", "customer/erp/C-77"}
        answers = lookups_of(started).answers
        assert answers.bytes == sizes["customer/crm/ACC-1"] + sizes["customer/erp/C-77"]
        assert (
            f"lookup cache warmed: 2 of 3 answers (66.6%), {answers.bytes / 1024:.0f} KiB of "
            f"its {budget / 1024:.0f} KiB budget, in " in caplog.text
        )
        metrics = samples((await started.get("/metrics")).text)
        assert metrics["mdm_lookup_cache_warmed_entries"] == 2
        assert metrics["mdm_lookup_cache_warmed_store_answers"] == 3
        assert metrics["mdm_lookup_cache_warmed_share"] == pytest.approx(2 / 3)
        assert metrics["mdm_lookup_cache_budget_bytes"] == budget
        # A lookup of P is stored, and the least recently used answer makes room for it.
        await started.get("/v1/xref/customer/crm/P")
        assert set(answers._entries) == {"customer/erp/C-77", "customer/crm/P"}
        assert answers.bytes == sizes["customer/erp/C-77"] + sizes["customer/crm/P"] <= budget
        assert samples((await started.get("/metrics")).text)["mdm_lookup_cache_bytes"] == (
            answers.bytes
        )


async def test_warming_stops_when_the_cache_is_full_and_can_be_turned_off(
    client: AsyncTestClient, settings: Settings
) -> None:
    await three_goldens(client)
    async with hub_process(settings, cache_entries=2) as started:  # a cap on answers
        assert len(await stored(started)) == 2
    async with hub_process(settings, warm=False) as started:
        await asyncio.sleep(0.5)
        assert not lookups_of(started).warmed.is_set() and len(lookups_of(started).answers) == 0


async def test_an_answer_an_eviction_overtook_is_not_stored_by_the_warming(
    client: AsyncTestClient, database_url: str
) -> None:
    await three_goldens(client)
    p = (await client.get("/v1/xref/customer/crm/P")).json()["golden_id"]
    lookups = Lookups(database_url, warm=False)  # a process's lookups, on this test's loop
    await lookups.start()
    try:
        assert lookups.live

        def overtaken(entity: str, rows: Sequence[Any]) -> bytes:
            # P's change is committed (its notification arrives) after the page was read.
            if rows[0]["golden_id"] == p:
                lookups.answers.evict([p])
            return render_xref(client.app.state.hub, entity, rows)

        lookups.renderer = overtaken
        assert (await lookups.fill(page=1)).stored == 2  # one golden record a page
        assert set(lookups.answers._entries) == {"customer/crm/ACC-1", "customer/erp/C-77"}
    finally:
        await lookups.stop()


def in_collected_generations(obj: object) -> bool:
    """Whether the cyclic collector's passes walk `obj` (frozen objects are not listed)."""
    return any(o is obj for o in gc.get_objects())


async def test_a_process_of_its_own_freezes_what_outlives_its_start_out_of_the_collector(
    client: AsyncTestClient, settings: Settings
) -> None:
    """`mdm serve` (own_process) leaves what outlives its start to reference
    counting alone, the tables of the ID lookup cache among it, and makes full
    collections rarer (mdm/heap.py); an app sharing its process (these tests, a
    program embedding the hub) leaves the collector as it is."""
    await three_goldens(client)
    threshold = gc.get_threshold()
    try:
        async with hub_process(settings) as shared:
            await stored(shared)
            assert in_collected_generations(lookups_of(shared).answers._entries)
            assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0
            assert not [cb for cb in gc.callbacks if isinstance(cb, heap._PauseTimer)]

        changed = dataclasses.replace(settings, lookup=LookupSettings())
        async with AsyncTestClient(app=create_app(changed, own_process=True)) as own:
            own.headers["X-API-Key"] = settings.auth.admin_key or ""
            assert gc.get_freeze_count() > 0 and gc.get_threshold()[2] == heap.FULL_EVERY
            assert len(await stored(own)) == 3
            lookups = lookups_of(own)
            assert not in_collected_generations(lookups.answers._entries)
            # Its collections are timed: the full one before the freeze at least.
            metrics = (await own.get("/metrics")).text
            full = re.search(r'^mdm_gc_pause_seconds_count\{generation="2"\} (\S+)$', metrics, re.M)
            assert full is not None and float(full[1]) >= 1
            # Still answered and still evicted: frozen objects live and die as before.
            golden = (await own.get("/v1/xref/customer/crm/P")).json()["golden_id"]
            await put(own, "crm", "P", {"name": "Initech Ltd", "email": "hello@initech.example"})
            assert "customer/crm/P" not in lookups.answers._entries
            assert (await own.get("/v1/xref/customer/crm/P")).json()["golden_id"] == golden
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        gc.callbacks[:] = [cb for cb in gc.callbacks if not isinstance(cb, heap._PauseTimer)]
