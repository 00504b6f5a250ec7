"""Sensitive attributes: masked without the grant in every answer, never in events or logs."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.api.app import create_app
from mdm.api.sensitive import MASK
from mdm.settings import Settings
from tests.integration.review_data import pair
from tests.support import KeyedClient, MakeClient

NATIONAL_ID = "756.1234.5678.97"
BIRTH = "1983-07-19"
RATE = "187.50"
ADA = {
    "given_name": "Ada",
    "family_name": "Lovelace",
    "email": "ada@example.com",
    "national_id": NATIONAL_ID,
    "date_of_birth": BIRTH,
    "cost_rate": {"amount": RATE, "currency": "EUR"},
}
SECRETS = (NATIONAL_ID, BIRTH, RATE, "75612345678", "187.5")


def _token(settings: Settings, **claims: Any) -> str:
    assert settings.auth.jwt is not None and settings.auth.jwt.key is not None
    now = int(time.time())
    body = {
        "iss": settings.auth.jwt.issuer,
        "aud": settings.auth.jwt.audience,
        "sub": "bi-feed",
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(body, settings.auth.jwt.key, algorithm="HS256")


async def _worker(client: AsyncTestClient) -> str:
    hcm = await client.put("/v1/sources/hcm/worker/H-1", json={"attributes": ADA})
    assert hcm.status_code == 200, hcm.text
    # A second record of Ada without strong keys: matched on name and birth date, so
    # its link's waterfall compares the birth dates.
    psa = await client.put(
        "/v1/sources/psa/worker/P-1",
        json={
            "attributes": {
                "given_name": "Ada",
                "family_name": "Lovelace",
                "date_of_birth": BIRTH,
                "cost_rate": {"amount": "190", "currency": "EUR"},
            }
        },
    )
    assert psa.json()["golden_id"] == hcm.json()["golden_id"], psa.text
    golden_id: str = hcm.json()["golden_id"]
    pin = await client.put(
        f"/v1/golden/worker/{golden_id}/pins/national_id",
        json={"value": NATIONAL_ID, "reason": "checked the passport"},
    )
    assert pin.status_code == 200, pin.text
    return golden_id


def _reads(golden_id: str, granted: bool) -> list[tuple[str, str, Any]]:
    # Only a caller with the grant may search by a sensitive value (the test below).
    searched = {"date_of_birth": BIRTH} if granted else {}
    return [
        ("GET", f"/v1/golden/worker/{golden_id}", None),
        ("GET", f"/v1/golden/worker/{golden_id}?as_of=2999-01-01T00:00:00Z", None),
        ("GET", f"/v1/golden/worker/{golden_id}/history", None),
        ("GET", f"/v1/golden/worker/{golden_id}/links", None),
        ("GET", f"/v1/golden/worker/{golden_id}/overrides", None),
        (
            "POST",
            "/v1/match/worker",
            {
                "attributes": {
                    "given_name": "Ada",
                    "family_name": "Lovelace",
                    **searched,
                }
            },
        ),
    ]


@pytest.mark.parametrize(
    ("caller", "granted"),
    [
        ("admin", True),
        ("steward", False),
        ("reader", False),
        ("reader with the grant", True),
        ("token", False),
        ("token with the grant", True),
    ],
)
async def test_every_answer_masks_sensitive_values_without_the_grant(
    caller: str,
    granted: bool,
    client: AsyncTestClient,
    make_client: MakeClient,
    settings: Settings,
) -> None:
    golden_id = await _worker(client)
    callers = {
        "admin": lambda: make_client(key=str(client.headers["X-API-Key"])),
        "steward": lambda: make_client("steward"),
        "reader": lambda: make_client("reader"),
        "reader with the grant": lambda: make_client("reader", sensitive=True),
        "token": lambda: make_client(
            headers={"Authorization": f"Bearer {_token(settings, mdm_role='reader')}"}
        ),
        "token with the grant": lambda: make_client(
            headers={
                "Authorization": "Bearer " + _token(settings, mdm_role="reader", mdm_sensitive=True)
            }
        ),
    }
    who: KeyedClient = await callers[caller]()
    for method, url, body in _reads(golden_id, granted):
        response = await who.request(method, url, **({"json": body} if body else {}))
        assert response.status_code == 200, (url, response.text)
        shown = [s for s in SECRETS if s in response.text]
        if granted:
            assert BIRTH in response.text or "75612345678" in response.text, url
        else:
            assert shown == [], (caller, url, response.text)
            assert MASK in response.text, url
    golden = (await who.get(f"/v1/golden/worker/{golden_id}")).json()
    if not granted:
        assert golden["attributes"]["national_id"] == MASK
        assert golden["attributes"]["date_of_birth"] == MASK
        assert golden["attributes"]["cost_rate"] == MASK
        assert golden["attributes"]["family_name"] == "Lovelace"  # the rest is readable
        assert golden["provenance"]["national_id"]["rule"] == "pin"  # where it came from, too
        links = (await who.get(f"/v1/golden/worker/{golden_id}/links")).json()["links"]
        rows = [f for link in links if link["explanation"] for f in link["explanation"]["fields"]]
        birth = [f for f in rows if f["field"] == "date_of_birth"]
        assert birth and all(f["left"] == f["right"] == MASK for f in birth), rows
        # Nor whether they agreed: the level and the weight it gave.
        assert all(f["level"] == f["weight"] == f["tf_adjustment"] == MASK for f in birth), rows
        assert all(f["level"] != MASK for f in rows if f["field"] == "family_name"), rows


async def test_source_answers_never_echo_sensitive_values(
    client: AsyncTestClient, make_client: MakeClient
) -> None:
    hcm = await make_client("source", source="hcm")
    one = await hcm.put("/v1/sources/hcm/worker/H-9", json={"attributes": ADA})
    batch = await hcm.post(
        "/v1/sources/hcm/worker/batch",
        json=[
            {"source_id": "H-10", "attributes": ADA},
            {"source_id": "H-11", "attributes": {**ADA, "national_id": "x" * 41}},
        ],
    )
    xref = await hcm.get("/v1/xref/worker/hcm/H-9")
    for response in (one, batch, xref):
        assert response.status_code == 200, response.text
        assert [s for s in SECRETS if s in response.text] == [], response.text
    assert batch.json()["rejected"] == 1


async def test_events_name_changed_sensitive_attributes_but_never_carry_them(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    golden_id = await _worker(client)
    moved = await client.put(
        "/v1/sources/hcm/worker/H-1",
        json={"attributes": {**ADA, "date_of_birth": "1983-07-20"}},
    )
    assert moved.status_code == 200
    rows = (
        await db.execute(
            text(
                "SELECT envelope::text, envelope FROM outbox WHERE golden_id = :g ORDER BY version"
            ),
            {"g": golden_id},
        )
    ).all()
    assert len(rows) >= 3
    for raw, envelope in rows:
        assert [s for s in (*SECRETS, "1983-07-20") if s in raw] == [], raw
        attributes = envelope["payload"]["attributes"]
        assert not {"national_id", "date_of_birth", "cost_rate"} & attributes.keys()
        assert envelope["payload"]["withheld"] == ["cost_rate", "date_of_birth", "national_id"]
        assert attributes["family_name"] == "Lovelace"
    created, last = rows[0][1], rows[-1][1]
    assert {"national_id", "date_of_birth", "cost_rate"} <= set(created["payload"]["changed"])
    assert "date_of_birth" in last["payload"]["changed"]  # that it changed, not to what
    # The history keeps the values, for readers with the grant (admin here).
    history = (await client.get(f"/v1/golden/worker/{golden_id}/history")).json()
    assert history["versions"][0]["attributes"]["date_of_birth"] == "1983-07-20"


async def test_logs_never_contain_sensitive_values(
    client: AsyncTestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    golden_id = await _worker(client)
    bad = await client.put(
        "/v1/sources/hcm/worker/H-2",
        json={"attributes": {**ADA, "national_id": NATIONAL_ID + "x" * 40}},
    )
    assert bad.status_code == 422
    await client.get(f"/v1/golden/worker/{golden_id}")
    assert caplog.records  # the capture works: the hub and its libraries did log
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.__dict__}" for r in caplog.records)
    assert [s for s in SECRETS if s in logged] == []


async def test_the_configuration_adds_sensitive_attributes(
    settings: Settings, db: AsyncConnection
) -> None:
    configured = dataclasses.replace(
        settings,
        auth=dataclasses.replace(settings.auth, sensitive_attributes=("employee_number",)),
    )
    app = create_app(configured)
    async with AsyncTestClient(app=app) as admin:
        admin.headers["X-API-Key"] = settings.auth.admin_key or ""
        created = await admin.put(
            "/v1/sources/hcm/worker/H-77",
            json={"attributes": {"family_name": "Hopper", "employee_number": "E-4711"}},
        )
        assert created.status_code == 200, created.text
        golden_id = created.json()["golden_id"]
        reader = KeyedClient(
            admin, {"Authorization": f"Bearer {_token(settings, mdm_role='reader')}"}
        )
        shown = (await reader.get(f"/v1/golden/worker/{golden_id}")).json()
        assert shown["attributes"]["employee_number"] == MASK
        assert shown["attributes"]["family_name"] == "Hopper"
        full = (await admin.get(f"/v1/golden/worker/{golden_id}")).json()
        assert full["attributes"]["employee_number"] == "E-4711"
    envelope = (
        await db.execute(text("SELECT envelope FROM outbox WHERE golden_id = :g"), {"g": golden_id})
    ).scalar_one()
    assert "employee_number" not in envelope["payload"]["attributes"]
    assert "employee_number" in envelope["payload"]["withheld"]


def test_an_unknown_sensitive_attribute_stops_the_hub(settings: Settings) -> None:
    configured = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, sensitive_attributes=("shoe_size",))
    )
    with pytest.raises(ValueError, match="shoe_size"):
        create_app(configured)


# -- a configured sensitive attribute: never in an event, whatever changed the record ----

EMPLOYEE_NUMBER = "E-90210"
WANDA = {
    "given_name": "Wanda",
    "family_name": "Kowalczyk",
    "employee_number": EMPLOYEE_NUMBER,
    "manager_ref": "M-1",  # hcm's M-1, not known yet
}
MAX = {"given_name": "Maximilian", "family_name": "Oyelaran", "employee_number": "E-1"}


@contextlib.asynccontextmanager
async def _hub(settings: Settings, *sensitive: str) -> AsyncIterator[AsyncTestClient]:
    """An admin client of a hub that declares the attributes `sensitive` too."""
    auth = dataclasses.replace(settings.auth, sensitive_attributes=sensitive)
    app = create_app(dataclasses.replace(settings, auth=auth))
    async with AsyncTestClient(app=app) as admin:
        admin.headers["X-API-Key"] = settings.auth.admin_key or ""
        yield admin


@pytest.fixture
async def configured(client: AsyncTestClient, settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """An admin client of a hub that declares employee_number sensitive, on an empty database."""
    async with _hub(settings, "employee_number") as admin:
        yield admin


async def _put(client: AsyncTestClient, source: str, source_id: str, attrs: dict) -> str:
    response = await client.put(
        f"/v1/sources/{source}/worker/{source_id}", json={"attributes": attrs}
    )
    assert response.status_code == 200, response.text
    golden_id: str = response.json()["golden_id"]
    return golden_id


async def _outbox(db: AsyncConnection) -> list[tuple[str, dict[str, Any]]]:
    rows = await db.execute(
        text("SELECT envelope::text, envelope FROM outbox ORDER BY golden_id, version")
    )
    return [(raw, envelope) for raw, envelope in rows]


def _assert_employee_numbers_withheld(rows: list[tuple[str, dict[str, Any]]], holder: str) -> None:
    """No event carries an employee number; each of `holder`'s says it withheld one."""
    for raw, envelope in rows:
        assert EMPLOYEE_NUMBER not in raw and 'E-1"' not in raw, raw
        assert "employee_number" not in envelope["payload"]["attributes"], raw
        if envelope["golden_id"] == holder:
            assert "employee_number" in envelope["payload"]["withheld"], raw


def _versions(rows: list[tuple[str, dict[str, Any]]], golden_id: str) -> list[int]:
    return [e["version"] for _, e in rows if e["golden_id"] == golden_id]


async def test_a_reference_change_keeps_configured_sensitive_attributes_out_of_events(
    configured: AsyncTestClient, db: AsyncConnection
) -> None:
    wanda = await _put(configured, "hcm", "W-1", WANDA)
    await _put(configured, "hcm", "M-1", MAX)  # Wanda's manager arrives: her reference resolves
    deleted = await configured.delete("/v1/sources/hcm/worker/M-1")  # and is pending again
    assert deleted.status_code == 200, deleted.text
    rows = await _outbox(db)
    assert _versions(rows, wanda) == [1, 2, 3]
    _assert_employee_numbers_withheld(rows, wanda)


async def test_a_merge_and_unmerge_keep_configured_sensitive_attributes_out_of_events(
    configured: AsyncTestClient, db: AsyncConnection
) -> None:
    manager = await _put(configured, "hcm", "M-1", MAX)
    wanda = await _put(configured, "hcm", "W-1", WANDA)  # names her manager from the start
    other = await _put(configured, "psa", "P-7", {"given_name": "Ingrid", "family_name": "Sato"})
    # Wanda's manager merged away: her reference now names the survivor ...
    merged = await configured.post(
        "/v1/golden/worker/merge",
        json={"survivor_id": other, "loser_ids": [manager], "reason": "one person"},
    )
    assert merged.status_code == 200, merged.text
    # ... and split off again: it names the restored golden record.
    split = await configured.post(
        f"/v1/golden/worker/{other}/unmerge",
        json={"records": [{"source": "hcm", "source_id": "M-1"}], "reason": "two people"},
    )
    assert split.status_code == 200, split.text
    assert split.json()["split_golden_id"] == manager
    rows = await _outbox(db)
    assert _versions(rows, wanda) == [1, 2, 3]
    assert {e["type"] for _, e in rows} >= {"golden.merged", "golden.unmerged"}
    _assert_employee_numbers_withheld(rows, wanda)


# -- no search confirms a sensitive value to a caller without the grant -------------------


def _reader(client: AsyncTestClient, settings: Settings, granted: bool = False) -> KeyedClient:
    token = _token(settings, mdm_role="reader", **({"mdm_sensitive": True} if granted else {}))
    return KeyedClient(client, {"Authorization": f"Bearer {token}"})


async def test_a_match_by_a_sensitive_value_needs_the_grant(
    client: AsyncTestClient, make_client: MakeClient, settings: Settings
) -> None:
    golden_id = await _worker(client)
    guesses: dict[tuple[str, ...], dict[str, Any]] = {
        ("national_id",): {"given_name": "X", "national_id": NATIONAL_ID},
        ("date_of_birth", "national_id"): {
            "given_name": "Ada",
            "family_name": "Lovelace",
            "national_id": NATIONAL_ID,
            "date_of_birth": BIRTH,
        },
        ("cost_rate",): {
            "family_name": "Lovelace",
            "cost_rate": {"amount": RATE, "currency": "EUR"},
        },
    }
    refused = [await make_client("reader"), await make_client("steward"), _reader(client, settings)]
    for who in refused:
        for names, attributes in guesses.items():
            response = await who.post("/v1/match/worker", json={"attributes": attributes})
            assert response.status_code == 403, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            paths = [e["path"] for e in response.json()["errors"]]
            assert paths == [f"$.attributes.{name}" for name in names], response.text
            assert golden_id not in response.text
    for who in (await make_client("reader", sensitive=True), _reader(client, settings, True)):
        found = await who.post("/v1/match/worker", json={"attributes": guesses[("national_id",)]})
        assert found.status_code == 200, found.text
        assert golden_id in [c["golden_id"] for c in found.json()["candidates"]]


async def test_a_match_by_a_configured_sensitive_attribute_needs_the_grant(
    configured: AsyncTestClient, settings: Settings
) -> None:
    wanda = await _put(configured, "hcm", "W-1", {**WANDA, "manager_ref": None})
    guess = {"attributes": {"given_name": "X", "employee_number": EMPLOYEE_NUMBER}}
    refused = await _reader(configured, settings).post("/v1/match/worker", json=guess)
    assert refused.status_code == 403, refused.text
    assert [e["path"] for e in refused.json()["errors"]] == ["$.attributes.employee_number"]
    found = await _reader(configured, settings, True).post("/v1/match/worker", json=guess)
    assert found.status_code == 200, found.text
    assert wanda in [c["golden_id"] for c in found.json()["candidates"]]


async def test_a_review_shows_no_comparison_of_sensitive_values_without_the_grant(
    client: AsyncTestClient, make_client: MakeClient
) -> None:
    hcm, psa = pair(12)
    # The same person as far as names go, a birth date a year and a day off, no address:
    # a review task whose waterfall compares the birth dates.
    psa = {"given_name": hcm["given_name"], "family_name": hcm["family_name"]}
    year = int(hcm["date_of_birth"][:4]) + 1
    psa["date_of_birth"] = f"{year}{hcm['date_of_birth'][4:-1]}9"
    await _put(client, "hcm", "H-12", hcm)
    await _put(client, "psa", "P-12", psa)
    (task,) = (await client.get("/v1/reviews")).json()["tasks"]
    for granted in (False, True):
        steward = await make_client("steward", sensitive=granted)
        listed = (await steward.get("/v1/reviews")).json()["tasks"][0]["explanation"]
        detail = (await steward.get(f"/v1/reviews/{task['id']}")).json()
        for explanation in (listed, detail["task"]["explanation"]):
            (birth,) = [f for f in explanation["fields"] if f["field"] == "date_of_birth"]
            shown = {k: birth[k] for k in ("level", "weight", "left", "right")}
            if granted:
                assert birth["level"] == "else", birth
            else:
                assert set(shown.values()) == {MASK}, birth
            (family,) = [f for f in explanation["fields"] if f["field"] == "family_name"]
            assert family["level"] == "exact"
        assert ("date_of_birth" in detail["different"]) is granted, detail["different"]
        assert "address" in detail["different"]


async def test_a_name_search_skips_a_sensitive_name_without_the_grant(
    client: AsyncTestClient, settings: Settings
) -> None:
    async with _hub(settings, "family_name") as admin:
        await _put(admin, "hcm", "W-1", {"given_name": "Wanda", "family_name": "Kowalczyk"})
        for granted in (False, True):
            reader = _reader(admin, settings, granted)
            by_name = (await reader.get("/v1/search/golden?q=kowalczyk")).json()["hits"]
            assert [h["name"] for h in by_name] == (["Wanda Kowalczyk"] if granted else [])
            by_id = (await reader.get("/v1/search/golden?q=hcm:W-1")).json()["hits"]
            assert [h["name"] for h in by_id] == ["Wanda Kowalczyk" if granted else "Wanda"]
