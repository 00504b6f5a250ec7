"""The README's run command on a bare machine: `mdm serve` with nothing configured.

Starts the real CLI as a subprocess with no MDM_DATABASE_URL / MDM_NATS_URL, so
it must start embedded PostgreSQL and nats-server itself, migrate, and serve;
then restarts it on the same data folder and checks the data survived.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mdms-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _serve(data_dir: Path, port: int, admin_key: str | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDM_")}
    if admin_key:
        env["MDM_ADMIN_KEY"] = admin_key
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mdm.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout and not proc.stdout.closed else ""
            raise AssertionError(f"mdm serve exited with {proc.returncode}:\n{out}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("mdm serve did not become healthy")


def _printed_key(proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """The development admin key `mdm serve` prints at start."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if ready:
            line = proc.stdout.readline().decode()
            if "X-API-Key: " in line:
                return line.split("X-API-Key: ", 1)[1].strip()
            if not line:
                break
    raise AssertionError("mdm serve printed no development admin key")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out.decode()


class _Log:
    """Collects a process's output as it runs (to find the embedded NATS address)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, b""):
            self.lines.append(line.decode(errors="replace"))

    def text(self) -> str:
        return "".join(self.lines)

    def finish(self, proc: subprocess.Popen[bytes]) -> str:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        self._thread.join(timeout=10)
        return self.text()


async def _stream_messages(nats_url: str, stream: str = "MDM") -> int:
    client = await nats.connect(nats_url)
    try:
        info = await client.jetstream().stream_info(stream)
        return int(info.state.messages)
    except nats.js.errors.NotFoundError:  # the relay has not created it yet
        return 0
    finally:
        await client.close()


def test_serve_with_nothing_configured_keeps_data_across_restarts(data_dir: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    key = "mdm_serve-test-admin"
    proc = _serve(data_dir, port, admin_key=key)
    output = _Log(proc)
    try:
        _wait_healthy(base, proc)
        assert httpx.get(f"{base}/v1/xref/customer/crm/ACC-1").status_code == 401
        crm = httpx.put(
            f"{base}/v1/sources/crm/customer/ACC-1",
            headers={"X-API-Key": key},
            json={
                "attributes": {
                    "name": "Acme Consulting GmbH",
                    "tax_id": "DE136695976",
                    "tax_country": "DE",
                }
            },
        )
        erp = httpx.put(
            f"{base}/v1/sources/erp/customer/C-77",
            headers={"X-API-Key": key},
            json={"attributes": {"name": "ACME CONSULTING", "tax_id": "DE 136 695 976"}},
        )
        assert crm.status_code == erp.status_code == 200
        assert crm.json()["golden_id"] == erp.json()["golden_id"]
        # The relay (a child process of `mdm serve`) publishes both changes.
        found = re.search(r"embedded nats-server started: (nats://\S+),", output.text())
        assert found, output.text()
        deadline = time.monotonic() + 30
        while asyncio.run(_stream_messages(found.group(1))) < 2:
            assert time.monotonic() < deadline, output.text()
            time.sleep(0.2)
    finally:
        log = output.finish(proc)
    assert "starting the outbox relay as a child process" in log, log
    assert "relay stopped" in log, log
    assert "embedded PostgreSQL" in log and "embedded nats-server" in log, log
    # SIGTERM (docker stop, systemd) stops the embedded servers too; none is left behind.
    assert "embedded nats-server stopped" in log, log
    assert "embedded PostgreSQL stopped" in log, log

    # Without MDM_ADMIN_KEY embedded mode makes a development key and prints it.
    proc = _serve(data_dir, port)
    try:
        printed = _printed_key(proc)
        _wait_healthy(base, proc)
        old = httpx.get(f"{base}/v1/xref/customer/crm/ACC-1", headers={"X-API-Key": key})
        assert old.status_code == 401  # the first run's key went with its process
        xref = httpx.get(f"{base}/v1/xref/customer/crm/ACC-1", headers={"X-API-Key": printed})
        assert xref.status_code == 200
        assert {(x["source"], x["source_id"]) for x in xref.json()["xrefs"]} == {
            ("crm", "ACC-1"),
            ("erp", "C-77"),
        }
    finally:
        _stop(proc)
