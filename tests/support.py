"""Helpers for the tests and the benchmarks, against real servers.

A nats-server of their own that they may stop and start, a scratch PostgreSQL
database (at the hub's newest migration), a reader that collects what a stream
holds, polling, and API clients with their own credentials. Imported as
`tests.support` (with the repository root on sys.path, as `python -m pytest`
and the bench scripts have it).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.embedded import EmbeddedNats


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """A nats-server with JetStream on a fixed port, so clients reconnect after a restart."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = EmbeddedNats(data_dir, port=self.port)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        """SIGTERM (JetStream flushes its store); the data stays for the next start."""
        self._server.stop()

    def freeze(self) -> None:
        """SIGSTOP: a hung broker. Connections stay open and nothing is answered, so
        publishes wait for PubAcks that do not come (until `thaw()`)."""
        os.kill(self._pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: the server reads what was sent to it meanwhile and carries on."""
        os.kill(self._pid(), signal.SIGCONT)

    def _pid(self) -> int:
        return int((self._server.data_dir / "nats-server.pid").read_text().split()[0])


@asynccontextmanager
async def scratch_database(server_url: str, migrate: bool = True) -> AsyncIterator[str]:
    """A fresh database on `server_url`'s server (at the newest migration), dropped after."""
    from mdm.adapters.migrate import upgrade
    from mdm.bootstrap import make_engine

    name = f"mdm_scratch_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            engine = make_engine(url, pool_size=1)
            await upgrade(engine)
            await engine.dispose()
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def read_stream(
    js: JetStreamContext,
    stream: str,
    subject: str,
    expected: int,
    timeout: float = 20.0,
) -> list[Msg]:
    """Every message on `subject` in stream order, waiting until `expected` have arrived.

    Returns what there is at `timeout` (fewer than expected: the caller's assert
    says so), and keeps reading briefly past `expected` so that extra messages show.
    """
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=30.0,
        ),
    )
    got: list[Msg] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            want = max(expected - len(got), 1)
            wait = 0.3 if len(got) >= expected else min(1.0, max(deadline - loop.time(), 0.1))
            try:
                msgs = await sub.fetch(min(want, 1000), timeout=wait)
            except TimeoutError:
                if len(got) >= expected:
                    break
                continue
            for msg in msgs:
                await msg.ack()
            got.extend(msgs)
    finally:
        await sub.unsubscribe()
    return got


async def truncate_hub_tables(database_url: str) -> None:
    """Empty every table of the hub's schema (a test's clean slate)."""
    from mdm.adapters.tables import metadata

    engine = create_async_engine(database_url)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


async def wait_for(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float = 20.0, every: float = 0.05
) -> None:
    """Poll `condition` (sync or async) until it holds; AssertionError after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout:g}s")
        await asyncio.sleep(every)


class KeyedClient:
    """Another caller on an httpx client's connection: its own credentials, or none.

    Litestar's test client runs the app in its own event loop; a second client
    would start the app a second time. This one sends through the first one,
    replacing its X-API-Key / Authorization headers with `headers`.
    """

    _CREDENTIALS = ("x-api-key", "authorization")

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.headers = dict(headers or {})

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        follow = kwargs.pop("follow_redirects", False)
        request = self.client.build_request(method, url, **kwargs)
        for name in self._CREDENTIALS:
            if name in request.headers:
                del request.headers[name]
        for name, value in self.headers.items():
            request.headers[name] = value
        return await self.client.send(request, follow_redirects=follow)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)


#: The tests' `make_client` fixture: `await make_client("steward", name="anna")`.
MakeClient = Callable[..., Awaitable[KeyedClient]]


def mdm_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`mdm ARGS` as its own process on `database_url`, with no other MDM_* setting of
    this environment (blocking: call it through asyncio.to_thread in async tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDM_")}
    env["MDM_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "mdm.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
