"""`mdm serve` as a real subprocess (with its relay child) for the multi-process and
fault tests: started in a process group of its own so that a test can kill -9 the
whole of it, with its output collected for the assertion messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx

from mdm.settings import RelaySettings
from tests.support import free_port


def hub_env(
    database_url: str,
    nats_url: str,
    admin_key: str,
    relay: RelaySettings | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of an `mdm serve` on these servers (no embedded services)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDM_")}
    env.update(
        MDM_DATABASE_URL=database_url,
        MDM_NATS_URL=nats_url,
        MDM_ADMIN_KEY=admin_key,
        MDM_RATE_LIMIT="0",
        MDM_LOG_LEVEL="WARNING",
    )
    if relay is not None:
        env.update(
            MDM_STREAM=relay.stream,
            MDM_SUBJECT_PREFIX=relay.subject_prefix,
            MDM_STREAM_MAX_AGE=str(relay.stream_max_age),
            MDM_STREAM_DUPLICATE_WINDOW=str(relay.duplicate_window),
            MDM_RELAY_MAX_BACKOFF=str(relay.max_backoff),
            MDM_RELAY_POLL_INTERVAL=str(relay.poll_interval),
        )
    env.update(extra)
    return env


class HubProcess:
    """One `mdm serve --port P` in its own session; `kill()` SIGKILLs its whole group."""

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.env = env
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 90.0) -> HubProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mdm.cli", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the relay child dies with it
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        self.wait_healthy(timeout)
        return self

    def _read(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self._lines.append(line.decode(errors="replace"))

    def log(self) -> str:
        return "".join(self._lines[-200:])

    def wait_healthy(self, timeout: float = 90.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mdm serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"mdm serve did not become healthy:\n{self.log()}")

    def relay_pid(self) -> int:
        """The process id of the `mdm relay` child `mdm serve` started."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        for pid in children.split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"relay" in cmdline:
                return int(pid)
        raise AssertionError(f"mdm serve has no relay child:\n{self.log()}")

    def kill(self) -> None:
        """kill -9 the hub and its relay child at once: no drain, no clean shutdown."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._join()

    def stop(self) -> None:
        """SIGTERM (uvicorn and the relay drain), SIGKILL if that hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        # The relay child is stopped by the parent; anything left in the group goes now.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._join()

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=10)
