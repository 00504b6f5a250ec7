"""The steward page end to end in headless Chromium (Debian's), driven by Playwright.

The real hub serves on a free port (uvicorn in a thread, the tests' database and
NATS); review tasks come from ingesting near-duplicates through the API; the
browser opens the queue, decides, and sees the golden record change. Screenshots
of a failing test go to a temporary folder named in the failure.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.keys import KeyStore
from mdm.settings import Settings
from tests.integration.live_hub import serving
from tests.integration.review_data import LETTER_RECORDS, batches, pair
from tests.support import truncate_hub_tables

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The test's own calls (setup, checks) act as admin with the shared settings' key,
# filled in by `live_hub` (importing tests.conftest again would make another key).
ADMIN: dict[str, str] = {}
WAIT = 60_000  # ms: an upper bound for a page update on a busy machine, not a timing claim


@pytest.fixture(scope="module")
def live_hub(settings: Settings) -> Iterator[str]:
    """The hub's app served by uvicorn on a free port; its base URL."""
    assert settings.auth.admin_key
    ADMIN["X-API-Key"] = settings.auth.admin_key
    with serving(settings) as base:
        yield base


@pytest.fixture
def hub_url(live_hub: str, database_url: str) -> str:
    asyncio.run(truncate_hub_tables(database_url))
    return live_hub


@pytest.fixture
def steward_key(hub_url: str, database_url: str) -> str:
    """A steward's API key (docs/security.md), the one the page is signed in with."""

    async def create() -> str:
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            _, key = await KeyStore(conn).create("steward", "steward.kim")
        await engine.dispose()
        return key

    return asyncio.run(create())


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        # A fixed locale: money and country names are formatted for the reader's.
        page = browser.new_page(locale="en-US")
        sent: list[dict[str, str]] = []
        page.on("request", lambda r: sent.append(r.headers) if "/v1/" in r.url else None)
        page.sent_headers = sent  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            browser.close()


@contextmanager
def screenshot_on_failure(page: Page, name: str) -> Iterator[None]:
    """Keep a full-page screenshot of a failing test in a temporary folder."""
    try:
        yield
    except BaseException:
        path = Path(tempfile.mkdtemp(prefix="mdm-browser-")) / f"{name}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the failure: {path}")
        except Exception as exc:  # the browser may be what failed
            print(f"no screenshot ({exc!r})")
        raise


def _post(base: str, path: str, body: Any) -> Any:
    response = httpx.post(f"{base}{path}", json=body, timeout=120, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def _sign_in(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/steward/")
    page.fill("#api-key", key)
    page.dispatch_event("#api-key", "change")
    page.fill("#actor", "steward.kim")
    page.dispatch_event("#actor", "change")
    # The key and the name stay for the browser tab's session: a reload keeps them.
    page.sent_headers.clear()  # type: ignore[attr-defined]
    page.reload()
    expect(page.locator("#api-key")).to_have_value(key)
    expect(page.locator("#actor")).to_have_value("steward.kim")


def test_a_steward_decides_a_task_and_sees_the_golden_record_change(
    hub_url: str, steward_key: str, page: Page
) -> None:
    with screenshot_on_failure(
        page, "test_a_steward_decides_a_task_and_sees_the_golden_record_change"
    ):
        hcm, psa = pair(0)
        first = httpx.put(
            f"{hub_url}/v1/sources/hcm/worker/H-0", json={"attributes": hcm}, headers=ADMIN
        ).json()
        second = httpx.put(
            f"{hub_url}/v1/sources/psa/worker/P-0", json={"attributes": psa}, headers=ADMIN
        ).json()
        assert second["review"] == [first["golden_id"]]
        survivor = min(first["golden_id"], second["golden_id"])

        _sign_in(page, hub_url, steward_key)
        expect(page.locator("#queue tbody tr")).to_have_count(1, timeout=WAIT)
        expect(page.locator("#queue-total")).to_contain_text("1 task")
        page.click("#queue tbody tr a[href^='#/task/']")

        # Both records side by side. The key has no sensitive grant: the birth date
        # (only HCM has it) is masked, not marked as differing, and its waterfall
        # row says neither the level nor the weight.
        birth = page.locator("#compare tr[data-attr='date_of_birth']")
        expect(birth.locator("td.candidate .value")).to_have_text("***", timeout=WAIT)
        expect(birth).to_have_class("masked")
        expect(birth.locator("mark")).to_have_count(0)
        expect(page.locator("#compare tr[data-attr='family_name']")).to_have_class("agree")
        expect(page.locator("#waterfall tr", has_text="date_of_birth")).to_contain_text("***")
        expect(page.locator("#waterfall tr", has_text="family_name")).to_contain_text("exact")
        expect(page.locator("#left")).to_contain_text("psa:P-0 (under review)")

        page.fill("#comment", "same person: HR confirms")
        page.click("button[data-decide='merge']")

        # No task is left: the queue says so and links the merge's survivor.
        expect(page.locator("#flash")).to_contain_text("No open task left", timeout=WAIT)
        expect(page.locator("#flash")).to_contain_text("merged into")
        expect(page.locator("#queue-total")).to_contain_text("0 task")
        page.click("#flash-link")

        # The golden record page: both sources now, the merge in its history.
        expect(page.locator("#golden-id")).to_contain_text(survivor, timeout=WAIT)
        expect(page.locator("#xrefs")).to_contain_text("P-0")
        expect(page.locator("#xrefs")).to_contain_text("H-0")
        expect(page.locator("#history tbody tr").first).to_contain_text("golden.merged")
        expect(page.locator("#history tbody tr").first).to_contain_text("steward.kim")
        expect(page.locator("#review-decisions")).to_contain_text("same person: HR confirms")

        golden = httpx.get(f"{hub_url}/v1/golden/worker/{survivor}", headers=ADMIN).json()
        assert {(x["source"], x["source_id"]) for x in golden["xrefs"]} == {
            ("hcm", "H-0"),
            ("psa", "P-0"),
        }
        assert page.locator("#golden-version").inner_text() == str(golden["version"])

        # The queue is empty now; the search box finds the record by a source id.
        page.click("#nav-queue")
        expect(page.locator("#queue-total")).to_contain_text("0 task", timeout=WAIT)
        page.fill("#search-q", "P-0")
        page.press("#search-q", "Enter")
        expect(page.locator("#search-results")).to_contain_text(survivor, timeout=WAIT)
        expect(page.locator("#search-results")).to_contain_text("psa:P-0")
        page.click(f"#search-results a[href$='{survivor}']")
        expect(page.locator("#golden-id")).to_contain_text(survivor, timeout=WAIT)

        page.click("#nav-dashboard")
        expect(page.locator("#dash-records")).to_contain_text("hcm", timeout=WAIT)
        expect(page.locator("#dash-reviews")).to_contain_text("merged")

        # Every API call the page made carried the key typed in the key box.
        sent = page.sent_headers  # type: ignore[attr-defined]
        assert sent and all(h.get("x-api-key") == steward_key for h in sent)


def _review_of(base: str, task_id: int) -> dict[str, Any]:
    response = httpx.get(f"{base}/v1/reviews/{task_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_review_task_reads_like_the_records(hub_url: str, steward_key: str, page: Page) -> None:
    with screenshot_on_failure(page, "test_a_review_task_reads_like_the_records"):
        ingested = {}
        for source, entity, source_id, attributes in LETTER_RECORDS:
            response = httpx.put(
                f"{hub_url}/v1/sources/{source}/{entity}/{source_id}",
                json={"attributes": attributes},
                headers=ADMIN,
            )
            assert response.status_code == 200, response.text
            ingested[source_id] = response.json()
        assert ingested["P-3"]["review"] == [ingested["H-3"]["golden_id"]]
        assert ingested["PR-6"]["review"] == [ingested["PR-4"]["golden_id"]]
        tasks = httpx.get(f"{hub_url}/v1/reviews", headers=ADMIN).json()["tasks"]
        task_of = {t["entity"]: t["id"] for t in tasks}

        _sign_in(page, hub_url, steward_key)
        page.click(f"#queue a[href='#/task/{task_of['worker']}']")
        compare = page.locator("#compare")

        # The address as on a letter, one line per part of it; the differing house
        # numbers are marked, and so is the postcode only the candidate has.
        address = compare.locator("tr[data-attr='address']")
        expect(address).to_have_class("differ", timeout=WAIT)
        expect(address.locator("td.this .line")).to_have_text(
            ["7 Beaumont Close", "St Ives", "United Kingdom"]
        )
        expect(address.locator("td.candidate .line")).to_have_text(
            ["5 Beaumont Close", "St Ives", "TR26 1AB", "United Kingdom"]
        )
        expect(address.locator("td.this mark")).to_have_text(["7"])
        expect(address.locator("td.candidate mark")).to_have_text(["5", "TR26 1AB"])
        text = compare.inner_text()
        assert "{" not in text and "}" not in text and '":' not in text, text

        # Identifiers and dates side by side: the characters that differ are marked,
        # not the whole value.
        number = compare.locator("tr[data-attr='employee_number']")
        expect(number).to_have_class("differ")
        expect(number.locator("td.this .value")).to_have_text("E-10424")
        expect(number.locator("td.candidate .value")).to_have_text("E-10442")
        expect(number.locator("td.this mark")).to_have_text(["2"])
        expect(number.locator("td.candidate mark")).to_have_text(["4"])
        hired = compare.locator("tr[data-attr='hire_date']")
        expect(hired.locator("td.this .value")).to_have_text("2019-04-15")
        expect(hired.locator("td.this mark")).to_have_text(["15"])
        expect(hired.locator("td.candidate mark")).to_have_text(["01"])

        # An agreeing value is shown as agreeing, nothing marked; a masked one stays masked.
        for name in ("given_name", "family_name"):
            row = compare.locator(f"tr[data-attr='{name}']")
            expect(row).to_have_class("agree")
            expect(row.locator("th")).to_contain_text("same")
            expect(row.locator("mark")).to_have_count(0)
        birth = compare.locator("tr[data-attr='date_of_birth']")
        expect(birth).to_have_class("masked")
        expect(birth.locator("td.candidate .value")).to_have_text("***")
        expect(birth.locator("mark")).to_have_count(0)

        # Money in its currency, the differing digits marked.
        page.click("#nav-queue")
        page.click(f"#queue a[href='#/task/{task_of['project']}']")
        value = page.locator("#compare tr[data-attr='contract_value']")
        expect(value.locator("td.this .value")).to_have_text("€245,000.50", timeout=WAIT)
        expect(value.locator("td.candidate .value")).to_have_text("€250,000.00")
        expect(value.locator("td.this mark")).to_have_text(["245", "50"])
        expect(value.locator("td.candidate mark")).to_have_text(["250", "00"])
        expect(page.locator("#compare tr[data-attr='name']")).to_have_class("agree")
        expect(page.locator("#compare tr[data-attr='start_date'] td.this mark")).to_have_text(
            ["15"]
        )


def test_keyboard_shortcuts_decide_and_the_next_task_opens(
    hub_url: str, steward_key: str, page: Page
) -> None:
    with screenshot_on_failure(page, "test_keyboard_shortcuts_decide_and_the_next_task_opens"):
        hcm, psa = batches(3)
        _post(hub_url, "/v1/sources/hcm/worker/batch", hcm)
        _post(hub_url, "/v1/sources/psa/worker/batch", psa)
        tasks = httpx.get(f"{hub_url}/v1/reviews", headers=ADMIN).json()["tasks"]
        first, second, third = (t["id"] for t in tasks)  # the queue's order, oldest first

        _sign_in(page, hub_url, steward_key)
        page.click(f"#queue a[href='#/task/{first}']")
        heading = page.locator("h1")
        expect(heading).to_contain_text(f"Review task #{first}", timeout=WAIT)
        for decision, key in (("merge", "m"), ("not_a_match", "n"), ("defer", "d")):
            expect(page.locator(f"button[data-decide='{decision}'] kbd")).to_have_text(key)

        # Letters typed in the comment box are the comment, not decisions; Esc leaves it.
        page.click("#comment")
        page.keyboard.type("m n d")
        page.keyboard.press("Escape")
        expect(page.locator("#comment")).to_have_value("m n d")

        page.keyboard.press("m")
        expect(heading).to_contain_text(f"Review task #{second}", timeout=WAIT)
        expect(page.locator("#flash")).to_contain_text(f"Task #{first}: merged into")
        expect(page.locator("#flash")).to_contain_text(f"Next: task #{second}")

        page.keyboard.press("n")
        expect(heading).to_contain_text(f"Review task #{third}", timeout=WAIT)
        expect(page.locator("#flash")).to_contain_text(f"Task #{second}: not a match")

        page.keyboard.press("d")
        expect(page.locator("#flash")).to_contain_text(
            f"Task #{third}: deferred. No open task left", timeout=WAIT
        )
        expect(page.locator("#queue-total")).to_contain_text("0 task")

        # One decision each, the one its key names; the typed letters decided nothing.
        decided = {
            task_id: _review_of(hub_url, task_id)["decisions"] for task_id in (first, second, third)
        }
        assert [(d["decision"], d["comment"]) for d in decided[first]] == [("merge", "m n d")]
        assert [d["decision"] for d in decided[second]] == ["not_a_match"]
        assert [d["decision"] for d in decided[third]] == ["defer"]
        assert all("steward.kim" in d["actor"] for ds in decided.values() for d in ds)


def test_a_steward_works_a_queue_of_100_tasks_from_the_page(
    hub_url: str, steward_key: str, page: Page
) -> None:
    with screenshot_on_failure(page, "test_a_steward_works_a_queue_of_100_tasks_from_the_page"):
        hcm, psa = batches(100)
        _post(hub_url, "/v1/sources/hcm/worker/batch", hcm)
        _post(hub_url, "/v1/sources/psa/worker/batch", psa)
        opened = httpx.get(f"{hub_url}/v1/reviews", params={"limit": 1}, headers=ADMIN).json()[
            "total"
        ]
        assert opened >= 100

        _sign_in(page, hub_url, steward_key)
        expect(page.locator("#queue tbody tr")).to_have_count(50, timeout=WAIT)
        decisions = ["merge"] + ["not_a_match"] * 20
        for round_, decision in enumerate(decisions):
            if page.locator("#queue tbody tr .pick").count() == 0:
                break
            page.evaluate("document.getElementById('flash').textContent = ''")
            page.check("#pick-all")
            page.fill("#bulk-comment", f"pass {round_}")
            page.click(f"button[data-bulk='{decision}']")
            expect(page.locator("#flash")).to_contain_text("decided", timeout=WAIT)
        else:
            raise AssertionError("the queue did not empty")
        expect(page.locator("#queue tbody")).to_contain_text("No tasks.")
        expect(page.locator("#queue-total")).to_contain_text("0 task")

        everything = httpx.get(
            f"{hub_url}/v1/reviews", params={"status": "any", "limit": 500}, headers=ADMIN
        ).json()["tasks"]
        assert len(everything) == opened
        statuses = [t["status"] for t in everything]
        assert set(statuses) <= {"merged", "not_a_match", "superseded"}
        assert statuses.count("merged") >= 1 and statuses.count("not_a_match") >= 50
        # Every task carries who decided it and the comment of its pass.
        assert all("steward.kim" in t["decided_by"] for t in everything)
        assert all((t["comment"] or "").startswith("pass ") for t in everything)
