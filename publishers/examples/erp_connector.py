"""An example connector: the ERP's customer master follows the hub's golden customers.

    python -m publishers.examples.erp_connector \\
        --database-url postgresql://postgres@127.0.0.1:5432/erp \\
        --nats-url nats://127.0.0.1:4222 --hub-url http://127.0.0.1:8000

A small table, `erp_customer`, stands in for the ERP. For every golden.created
and golden.updated event of a customer the connector creates or updates the
ERP customer (in the same transaction as the subscriber's state, so an event
is applied once even across crashes), and then registers the ERP's id back in
the hub with `PUT /v1/xref/customer/{golden_id}/erp`. After that an xref lookup
of the CRM's id answers the ERP's id too: the cross-system id loop is closed.

Registration happens after the commit, never inside it: an HTTP call cannot
roll back, and a registration that succeeded for a transaction that then
failed would leave the hub pointing at an ERP id that does not exist. A row
stays `registered = false` until the hub accepted it; a sweep (at start and
every few seconds) retries those, so a hub that is down delays the loop but
never breaks it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import nats
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from publishers.settings import normalize_database_url
from publishers.state import PostgresStateStore, PostgresUnit
from publishers.subscriber import Subscriber, SubscriberConfig
from schemas.events import Event

log = logging.getLogger("erp_connector")

SOURCE = "erp"
ENTITY = "customer"
HANDLED = frozenset({"golden.created", "golden.updated"})

_DDL = (
    "CREATE SEQUENCE IF NOT EXISTS erp_customer_number",
    """CREATE TABLE IF NOT EXISTS erp_customer (
        erp_id text PRIMARY KEY,
        golden_id text NOT NULL UNIQUE,
        name text NOT NULL,
        tax_id text,
        tax_country text,
        hub_version integer NOT NULL,
        registered boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now())""",
)


class ErpCustomerConnector:
    """Subscribes to golden customers, keeps `erp_customer` in step, registers ERP ids."""

    def __init__(
        self,
        engine: AsyncEngine,
        js: JetStreamContext,
        hub: httpx.AsyncClient,
        *,
        stream: str = "MDM",
        subject_prefix: str = "mdm",
        durable: str = "erp-customers",
        sweep_interval: float = 5.0,
        **subscriber_options: Any,
    ) -> None:
        """`subscriber_options` are further SubscriberConfig fields (ack_wait, backoff, ...)."""
        self.engine = engine
        self.hub = hub
        self.sweep_interval = sweep_interval
        self.store = PostgresStateStore(engine, consumer=durable)
        config = SubscriberConfig(
            durable=durable,
            stream=stream,
            # One filter subject works on every nats-server 2.x; `types` picks the two.
            subjects=[f"{subject_prefix}.{ENTITY}.golden.*"],
            types=HANDLED,
            **subscriber_options,
        )
        self.subscriber = Subscriber(js, self.store, self.apply, config, on_applied=self.register)
        self._stopping = asyncio.Event()

    async def setup(self) -> None:
        """Create the ERP table and the subscriber's state tables if missing."""
        await self.store.setup()
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('erp-connector-ddl'))"))
            for statement in _DDL:
                await conn.execute(text(statement))

    async def apply(self, event: Event, unit: PostgresUnit) -> None:
        """Create or update the ERP customer of the event's golden record (unit's transaction)."""
        conn = unit.connection
        attrs = event.payload.attributes
        known = [x.source_id for x in event.payload.xrefs if x.source == SOURCE]
        values = {
            "g": event.golden_id,
            "name": str(attrs.get("name") or ""),
            "tax_id": attrs.get("tax_id"),
            "tax_country": attrs.get("tax_country"),
            "v": event.version,
        }
        erp_id = await conn.scalar(
            text("SELECT erp_id FROM erp_customer WHERE golden_id = :g"), {"g": event.golden_id}
        )
        if erp_id is None:
            # A golden record the ERP already sent to the hub keeps the ERP's id.
            erp_id = known[0] if known else await _next_erp_id(unit)
            await conn.execute(
                text(
                    "INSERT INTO erp_customer "
                    "(erp_id, golden_id, name, tax_id, tax_country, hub_version, registered) "
                    "VALUES (:erp_id, :g, :name, :tax_id, :tax_country, :v, :registered)"
                ),
                {**values, "erp_id": erp_id, "registered": erp_id in known},
            )
            log.info("created ERP customer %s for %s", erp_id, event.golden_id)
            return
        await conn.execute(
            text(
                "UPDATE erp_customer SET name = :name, tax_id = :tax_id, "
                "tax_country = :tax_country, hub_version = :v, "
                "registered = registered OR :registered, updated_at = now() "
                "WHERE golden_id = :g"
            ),
            {**values, "registered": erp_id in known},
        )

    async def register(self, event: Event) -> None:
        """After an event committed: tell the hub the ERP id, if it does not know it yet."""
        await self.register_pending(event.golden_id)

    async def register_pending(self, golden_id: str | None = None) -> int:
        """Register ERP ids the hub has not accepted yet; answer how many it accepted."""
        query = "SELECT erp_id, golden_id FROM erp_customer WHERE NOT registered"
        params: dict[str, str] = {}
        if golden_id is not None:
            query += " AND golden_id = :g"
            params["g"] = golden_id
        async with self.engine.connect() as conn:
            pending = list(await conn.execute(text(query), params))
        accepted = 0
        for erp_id, gid in pending:
            try:
                response = await self.hub.put(
                    f"/v1/xref/{ENTITY}/{gid}/{SOURCE}", json={"source_id": erp_id}
                )
            except httpx.HTTPError as exc:
                log.warning("hub unreachable registering %s: %r; will retry", erp_id, exc)
                return accepted
            if response.status_code != 200:
                # 409: linked elsewhere, or the golden record was merged: a steward's case.
                log.warning(
                    "hub refused %s for %s: %s %s", erp_id, gid, response.status_code, response.text
                )
                continue
            async with self.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE erp_customer SET registered = true WHERE erp_id = :e"),
                    {"e": erp_id},
                )
            accepted += 1
        return accepted

    def request_stop(self) -> None:
        self._stopping.set()
        self.subscriber.request_stop()

    async def run(self) -> None:
        """Consume until `request_stop()`; sweep unregistered ids meanwhile."""
        await self.setup()
        await self.subscriber.start()
        sweeper = asyncio.create_task(self._sweep(), name="erp-register-sweep")
        try:
            await self.subscriber.run()
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def _sweep(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.register_pending()
            except Exception:
                log.exception("registration sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.sweep_interval)


async def _next_erp_id(unit: PostgresUnit) -> str:
    number = await unit.connection.scalar(text("SELECT nextval('erp_customer_number')"))
    return f"C-{number:05d}"


async def _main(args: argparse.Namespace) -> None:
    url = normalize_database_url(args.database_url)
    assert url is not None
    engine = create_async_engine(url, pool_size=2)
    client = await nats.connect(args.nats_url, name="erp-connector")
    # An `erp` source key: it may register erp's ids, nothing else (docs/security.md).
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    async with httpx.AsyncClient(base_url=args.hub_url, timeout=10, headers=headers) as hub:
        connector = ErpCustomerConnector(
            engine,
            client.jetstream(),
            hub,
            stream=args.stream,
            subject_prefix=args.subject_prefix,
            durable=args.durable,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, connector.request_stop)
        try:
            await connector.run()
        finally:
            await client.drain()
            await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m publishers.examples.erp_connector",
        description="Example ERP customer connector: follows golden customers, registers ERP ids.",
    )
    parser.add_argument("--database-url", required=True, help="the ERP stand-in's PostgreSQL")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--hub-url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("MDM_API_KEY"),
        help="the hub API key (default: MDM_API_KEY); create one with "
        "`mdm keys create --role source --source erp`",
    )
    parser.add_argument("--stream", default="MDM")
    parser.add_argument("--subject-prefix", default="mdm")
    parser.add_argument("--durable", default="erp-customers", help="the consumer's name")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
