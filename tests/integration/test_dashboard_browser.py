"""The dashboard's charts in headless Chromium, from a hub that has ingested a sample.

The hub (tests/integration/test_steward_browser.py's fixtures: uvicorn on a free
port, the tests' database and NATS) takes `mdm demo`'s sample, review pairs, a batch
with a refused item and some steward decisions; the history takes one sample as
`mdm serve` does every minute. The page then draws every chart, and each must have
one drawn element (class "datum") per point or bin of the answer it drew from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, expect

from mdm.api.history import HistorySampler
from mdm.bootstrap import make_engine
from mdm.demo import SAMPLE
from mdm.settings import DashboardSettings
from tests.integration import test_steward_browser as browser
from tests.integration.review_data import batches
from tests.integration.test_steward_browser import ADMIN, WAIT, _sign_in, screenshot_on_failure

# The steward page's fixtures: the served hub, its emptied database, a steward's key, a page.
live_hub = browser.live_hub
hub_url = browser.hub_url
steward_key = browser.steward_key
page = browser.page


def _ingest_a_sample(base: str) -> None:
    for source, entity, source_id, attributes, updated in SAMPLE:
        body: dict[str, Any] = {"attributes": attributes}
        if updated is not None:
            body["source_updated_at"] = updated
        response = httpx.put(
            f"{base}/v1/sources/{source}/{entity}/{source_id}", json=body, headers=ADMIN
        )
        assert response.status_code == 200, response.text
    hcm, psa = batches(6)
    psa.append("not a record")  # type: ignore[arg-type]  # refused: counted as rejected
    for source, body in (("hcm", hcm), ("psa", psa)):
        response = httpx.post(
            f"{base}/v1/sources/{source}/worker/batch", json=body, headers=ADMIN, timeout=120
        )
        assert response.status_code == 200, response.text
    tasks = httpx.get(f"{base}/v1/reviews", params={"entity": "worker"}, headers=ADMIN).json()[
        "tasks"
    ]
    assert len(tasks) >= 3
    for task, decision in zip(tasks, ("merge", "not_a_match", "defer"), strict=False):
        response = httpx.post(
            f"{base}/v1/reviews/{task['id']}/decision",
            json={"decision": decision, "actor": "steward.kim"},
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text


async def _take_a_sample(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        assert await HistorySampler(engine, DashboardSettings()).sample()
    finally:
        await engine.dispose()


@pytest.fixture
def sampled_hub(hub_url: str, database_url: str) -> str:
    """The served hub with the sample ingested and the history sampled once."""
    _ingest_a_sample(hub_url)
    asyncio.run(_take_a_sample(database_url))
    return hub_url


def _distinct(points: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> int:
    return len({key(p) for p in points})


def _drawn(page: Page, selector: str, expected: int) -> None:
    assert expected > 0, f"{selector}: the sample left this chart without data"
    expect(page.locator(selector)).to_have_count(expected, timeout=WAIT)


def test_every_chart_draws_an_element_per_point_of_the_dashboard_answer(
    sampled_hub: str, steward_key: str, page: Page
) -> None:
    with screenshot_on_failure(page, "test_every_chart_draws_an_element_per_point"):
        _sign_in(page, sampled_hub, steward_key)

        def answer(r: Response) -> bool:
            return "/v1/dashboard" in r.url and r.request.method == "GET"

        with page.expect_response(answer, timeout=WAIT) as response:
            page.click("#nav-dashboard")
        board = response.value.json()
        history = board["history"]
        expect(page.locator("#chart-probabilities")).to_be_visible(timeout=WAIT)

        histograms = [h for h in board["probabilities"] if h["bins"]]
        assert {h["entity"] for h in histograms} >= {"customer", "worker"}
        for h in histograms:
            chart = f"#chart-probabilities-{h['entity']}"
            _drawn(page, f"{chart} g.datum", len(h["bins"]))
            counts = page.locator(f"{chart} g.datum").evaluate_all(
                "gs => gs.map(g => Number(g.dataset.count))"
            )
            assert counts == [
                b["linked"] + b["merged"] + b["not_a_match"] + b["undecided"] for b in h["bins"]
            ]
            expect(page.locator(f"{chart} line.threshold")).to_have_count(2)
        worker = next(h for h in histograms if h["entity"] == "worker")
        assert sum(b["merged"] + b["not_a_match"] + b["undecided"] for b in worker["bins"]) >= 6

        sources = {p["source"] for p in history["ingested"]}
        assert sources == {"crm", "erp", "psa", "hcm"}
        for source in sources:
            points = [p for p in history["ingested"] if p["source"] == source]
            _drawn(
                page,
                f"#chart-ingested-{source} .datum",
                _distinct(points, lambda p: (p["at"], p["key"])),
            )
        psa = [p for p in history["ingested"] if p["source"] == "psa"]
        assert {"review", "rejected"} <= {p["key"] for p in psa}

        _drawn(page, "#chart-open-reviews-svg .datum", len(history["open_reviews"]))
        decided = _distinct(history["decisions_per_day"], lambda p: (p["at"], p["key"]))
        _drawn(page, "#chart-decisions-svg .datum", decided)
        _drawn(page, "#chart-outbox-svg .datum", len(history["outbox_lag_seconds"]))
        _drawn(page, "#chart-exceptions-svg .datum", len(history["exceptions"]))

        # Another window is another answer, drawn the same way.
        with page.expect_response(answer, timeout=WAIT) as response:
            page.select_option("#dash-hours", str(24 * 7))
        week = response.value.json()["history"]
        assert week["hours"] == 24 * 7
        _drawn(page, "#chart-open-reviews-svg .datum", len(week["open_reviews"]))
