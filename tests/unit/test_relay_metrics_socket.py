"""The relay's metrics on a Unix socket (publishers/metrics.py), as the hub reads them."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from prometheus_client import generate_latest

from publishers import metrics


def _left_by_a_dead_relay(path: Path) -> None:
    """A socket file nobody listens on, as a relay killed with -9 leaves it."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


async def test_the_hub_reads_the_relay_serving_the_socket_and_its_successor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay.sock"
    assert await metrics.read(str(path)) is None  # no relay yet
    _left_by_a_dead_relay(path)
    assert await metrics.read(str(path)) is None  # the relay's socket, nobody listening

    server = await metrics.serve(str(path))  # a (re)started relay takes the path over
    try:
        answer = await metrics.read(str(path))
    finally:
        server.close()
        await server.wait_closed()
    assert answer == generate_latest(metrics.REGISTRY)
    assert b"mdm_relay_publish_failures_total" in answer


async def test_an_answer_cut_short_is_left_out(tmp_path: Path) -> None:
    whole = generate_latest(metrics.REGISTRY)

    async def dying(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(whole[: len(whole) // 2])  # the relay dies as it writes
        writer.close()

    path = str(tmp_path / "relay.sock")
    server = await asyncio.start_unix_server(dying, path)
    try:
        assert await metrics.read(path) is None
    finally:
        server.close()
        await server.wait_closed()
