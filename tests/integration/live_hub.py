"""The hub's app served by uvicorn on a free port, in a thread, for tests that need
a real HTTP server (a browser, schemathesis' command line)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from mdm.api.app import create_app
from mdm.settings import Settings
from tests.support import free_port


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """Serve `create_app(settings)`; yields its base URL once /health answers."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            threading.Event().wait(0.1)
        else:
            raise AssertionError("the hub did not start")
        yield base
    finally:
        server.should_exit = True
        thread.join(30)
