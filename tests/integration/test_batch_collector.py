"""The batch endpoint ingests with automatic garbage collection held off, in a process
whose collector the hub owns (mdm/heap.py `paused`), and turns it back on."""

from __future__ import annotations

import gc

import pytest
from litestar.testing import AsyncTestClient

from mdm import heap


async def test_a_batch_is_ingested_with_the_collector_off_and_it_is_on_again_after(
    client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heap._pauses, "owned", True)  # as in `mdm serve`
    switched: list[str] = []
    disable, enable = gc.disable, gc.enable

    def off() -> None:
        switched.append("off")
        disable()

    def on() -> None:
        switched.append("on")
        enable()

    monkeypatch.setattr(heap.gc, "disable", off)
    monkeypatch.setattr(heap.gc, "enable", on)
    items = [
        {"source_id": f"P-{i}", "attributes": {"given_name": name, "family_name": "Okafor"}}
        for i, name in enumerate(("Ada", "Ben"))
    ]
    response = await client.post("/v1/sources/psa/worker/batch", json=items)
    assert response.status_code == 200, response.text
    assert switched == ["off", "on"]
    assert gc.isenabled()
