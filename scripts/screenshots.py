"""The steward page's dashboard screenshot in docs/img/dashboard.png, made again.

    python scripts/screenshots.py                  # embedded PostgreSQL and NATS in a temp folder
    python scripts/screenshots.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        --nats-url nats://127.0.0.1:4222          # servers you run (a database of its own on it)

A hub is served on a free port with the relay inline; `mdm demo`'s sample goes in
through the API (mdm/demo.py), a steward defers the sample's review task, the
dashboard's history takes a sample (as `mdm serve` does every minute), and headless
Chromium (/usr/bin/chromium, or --chromium) photographs the charts of #/dashboard.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import secrets
import sys
import tempfile
from pathlib import Path

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.migrate import upgrade
from mdm.api.history import HistorySampler
from mdm.bootstrap import make_engine, resolve_services
from mdm.demo import load_sample
from mdm.settings import AuthSettings, DatabaseSettings, NatsSettings, Settings
from publishers.settings import RelaySettings, normalize_database_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.live_hub import serving  # noqa: E402  (the tests' served hub)

DATABASE = "mdm_screenshots"
STREAM = "MDM_SCREENSHOTS"


async def _fresh_database(server_url: str) -> str:
    """A new, migrated database named DATABASE on the server of `server_url`."""
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        await conn.execute(text(f"CREATE DATABASE {DATABASE}"))
    await engine.dispose()
    url = make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)
    await _migrate(url)
    return url


async def _drop_database(server_url: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
    await engine.dispose()


async def _delete_streams(nats_url: str) -> None:
    """The relay's stream and its dead-letter stream, on a NATS server that stays."""
    import nats
    from nats.js.errors import NotFoundError

    client = await nats.connect(nats_url)
    js = client.jetstream()
    for name in (STREAM, f"{STREAM}_DLQ"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)
    await client.close()


async def _migrate(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    await upgrade(engine)
    await engine.dispose()


async def _load(base: str, key: str, settings: Settings) -> None:
    """The demo's sample through the API, a steward's decision, one history sample."""
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=60) as client:
        await load_sample(client)  # type: ignore[arg-type]  # the test client's API
        tasks = (await client.get("/v1/reviews")).json()["tasks"]
        for task in tasks[:1]:
            response = await client.post(
                f"/v1/reviews/{task['id']}/decision",
                json={"decision": "defer", "actor": "steward.kim", "comment": "ask the account"},
            )
            response.raise_for_status()
    engine = make_engine(settings.database.url or "", pool_size=1)
    await HistorySampler(engine, settings.dashboard).sample()
    await engine.dispose()


def _photograph(base: str, key: str, out: Path, chromium: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(f"{base}/steward/")
        page.fill("#api-key", key)
        page.dispatch_event("#api-key", "change")
        page.goto(f"{base}/steward/#/dashboard")
        page.reload()
        expect(page.locator("#chart-probabilities svg.chart").first).to_be_visible(timeout=60_000)
        out.parent.mkdir(parents=True, exist_ok=True)
        # The charts, not the tables of counts under them.
        box = page.locator(".charts").bounding_box()
        assert box is not None
        clip = {"x": 0, "y": 0, "width": 1360, "height": box["y"] + box["height"] + 12}
        page.screenshot(path=str(out), full_page=True, clip=clip)
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL server (default: embedded)")
    parser.add_argument("--nats-url", help="a NATS server with JetStream (default: embedded)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    args = parser.parse_args(argv)

    key = "mdm_screenshots-" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="mdm-screenshots-") as folder:
        server_url = normalize_database_url(args.database_url)
        database_url = asyncio.run(_fresh_database(server_url)) if server_url else None
        settings = Settings(
            database=DatabaseSettings(url=database_url),
            nats=NatsSettings(url=args.nats_url),
            relay=dataclasses.replace(
                RelaySettings(), mode="inline", stream=STREAM, subject_prefix="mdmscreenshots"
            ),
            auth=AuthSettings(admin_key=key, read_rate=0, write_rate=0),
            data_dir=Path(folder),
        )
        settings, embedded = resolve_services(settings)
        try:
            if database_url is None:
                asyncio.run(_migrate(settings.database.url or ""))
            with serving(settings) as base:
                asyncio.run(_load(base, key, settings))
                _photograph(base, key, args.out, args.chromium)
        finally:
            if embedded is not None:
                embedded.stop()
            if args.nats_url:
                asyncio.run(_delete_streams(args.nats_url))
            if server_url:
                asyncio.run(_drop_database(server_url))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
