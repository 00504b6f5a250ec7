"""The docs' screenshot of a review task on the stewards' page (docs/img/review-task.png).

It talks to a running hub with an admin key: it loads a small sample whose records
open a review task (a worker known to HCM and PSA), opens that task on the page in
headless Chromium (Debian's /usr/bin/chromium, as the browser test does) and saves
the top of the page: the task, the decision buttons and the two records compared.
Loading the sample writes records into the hub, so point it at a throwaway one:

    MDM_ADMIN_KEY=mdm_shots-$(openssl rand -hex 8) mdm serve --data-dir /tmp/mdm-shots &
    python scripts/screenshot_review.py --hub http://127.0.0.1:8000 --key "$MDM_ADMIN_KEY"

Run it again after changing the page; the sample is idempotent (same content, no
new version).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
REVIEW_TASK_PNG = ROOT / "docs" / "img" / "review-task.png"

# (source, entity, source_id, attributes): one person in HCM and PSA whose employee
# numbers disagree (two digits swapped), so the matcher asks a steward.
REVIEW_SAMPLE: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "hcm",
        "worker",
        "E-2207",
        {
            "given_name": "Ingrid",
            "family_name": "Lindbrau",
            "date_of_birth": "1984-03-12",
            "employee_number": "E-10442",
            "email": "ingrid.lindbrau@northwind.example",
            "job_title": "Senior Consultant",
            "hire_date": "2019-04-01",
            "cost_rate": {"amount": "92.50", "currency": "GBP"},
            "address": {
                "line1": "5 Beaumont Close",
                "city": "St Ives",
                "postal_code": "TR26 1AB",
                "country": "GB",
            },
        },
    ),
    (
        "psa",
        "worker",
        "res-311",
        {
            "given_name": "Ingrid",
            "family_name": "Lindbrau",
            "employee_number": "E-10424",
            "email": "ingrid.lindbrau@northwind.example",
            "job_title": "Consultant",
            "hire_date": "2019-04-15",
            "cost_rate": {"amount": "88", "currency": "GBP"},
            "address": {"line1": "7 Beaumont Close", "city": "St Ives", "country": "GB"},
        },
    ),
]


def load_review_sample(hub: str, key: str) -> int:
    """PUT the sample through the API; the id of the review task it opened."""
    headers = {"X-API-Key": key}
    for source, entity, source_id, attributes in REVIEW_SAMPLE:
        response = httpx.put(
            f"{hub}/v1/sources/{source}/{entity}/{source_id}",
            json={"attributes": attributes},
            headers=headers,
            timeout=60,
        )
        response.raise_for_status()
    source, entity, source_id, _ = REVIEW_SAMPLE[-1]
    tasks = httpx.get(
        f"{hub}/v1/reviews",
        params={"entity": entity, "status": "undecided", "limit": 500},
        headers=headers,
        timeout=60,
    ).json()["tasks"]
    found = [t["id"] for t in tasks if (t["source"], t["source_id"]) == (source, source_id)]
    if not found:
        raise SystemExit(f"the sample opened no review task on {hub} (already decided?)")
    return int(found[0])


def sign_in(page: Page, hub: str, key: str, steward: str = "kim") -> None:
    """Open the page with the key and the steward's name in the header's boxes."""
    page.goto(f"{hub}/steward/")
    page.fill("#api-key", key)
    page.dispatch_event("#api-key", "change")
    page.fill("#actor", steward)
    page.dispatch_event("#actor", "change")


def review_task(page: Page, hub: str, task_id: int, out: Path) -> None:
    """A screenshot of review task `task_id`, down to the end of its comparison."""
    page.goto(f"{hub}/steward/#/task/{task_id}")
    page.wait_for_selector("#compare tbody tr")
    page.evaluate("document.activeElement.blur()")
    bottom = page.evaluate(
        "Math.ceil(document.querySelector('.sides').getBoundingClientRect().bottom)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(out), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 16}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", default="http://127.0.0.1:8000", help="the hub's base URL")
    parser.add_argument("--key", required=True, help="an admin API key of that hub")
    parser.add_argument("--out", type=Path, default=REVIEW_TASK_PNG, help="the PNG to write")
    args = parser.parse_args()
    hub = args.hub.rstrip("/")
    task_id = load_review_sample(hub, args.key)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
            sign_in(page, hub, args.key)
            review_task(page, hub, task_id, args.out)
        finally:
            browser.close()
    print(f"review task #{task_id}: {args.out}")


if __name__ == "__main__":
    main()
