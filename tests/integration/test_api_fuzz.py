"""API fuzzing with schemathesis, every check, against the hub's own OpenAPI document.

Runs `st run` (schemathesis' command line) against the real hub served on a free
port, with an admin key, over every operation in /schema/openapi.json: the
coverage phase (boundary values of every parameter and body field), the fuzzing
phase and the stateful phase (sequences of calls along the links it infers),
with deterministic generation and a bounded number of examples so that CI runs
the same cases every time. Every check runs: no server error; every status,
content type, header and body as the document declares; schema-valid requests
accepted and invalid ones refused; credentials enforced; undeclared methods
refused. tests/integration/schemathesis.toml holds the configuration and each
exception, with its reason.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mdm.settings import Settings
from tests.integration.live_hub import serving
from tests.support import truncate_hub_tables

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = "25"  # per operation and phase


@pytest.fixture(scope="module")
def live_hub(settings: Settings, database_url: str) -> Iterator[str]:
    asyncio.run(truncate_hub_tables(database_url))
    with serving(settings) as base:
        yield base


def test_the_hub_answers_as_its_openapi_document_says(
    live_hub: str, settings: Settings, tmp_path: Path
) -> None:
    assert settings.auth.admin_key
    key = settings.auth.admin_key
    # Some data, so that lookups by source id and searches also answer 200.
    for source, sid, name in (("crm", "ACC-1", "Acme Consulting GmbH"), ("erp", "C-1", "Globex")):
        response = httpx.put(
            f"{live_hub}/v1/sources/{source}/customer/{sid}",
            json={"attributes": {"name": name}},
            headers={"X-API-Key": key},
        )
        assert response.status_code == 200, response.text
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [
            str(st),
            "--config-file",
            str(CONFIG),
            "run",
            f"{live_hub}/schema/openapi.json",
            "--header",
            f"X-API-Key: {key}",
            "--phases",
            "coverage,fuzzing,stateful",
            "--max-examples",
            EXAMPLES,
            # Hypothesis' derandomized mode: the same cases on every run (no seed to keep).
            "--generation-deterministic",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # schemathesis keeps a .schemathesis folder where it runs
    )
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    # Every operation of the document was exercised (none skipped, none refused).
    document = httpx.get(f"{live_hub}/schema/openapi.json", headers={"X-API-Key": key}).json()
    operations = sum(
        method in {"get", "put", "post", "delete", "patch"}
        for item in document["paths"].values()
        for method in item
    )
    assert f"Tested: {operations}" in run.stdout, report
