"""Bad input gets a clear 4xx problem and changes nothing that was stored before."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.settings import Settings
from tests.integration.live_hub import serving

GOOD = {
    "attributes": {"name": "Acme Consulting GmbH", "tax_id": "DE136695976", "tax_country": "DE"}
}


async def snapshot(db: AsyncConnection) -> dict[str, Any]:
    out = {}
    for table in (
        "golden_record",
        "source_record",
        "outbox",
        "golden_record_history",
        "match_key",
        "idempotency_key",
    ):
        # Sorted whole rows: ORDER BY one column leaves ties (every match key of an
        # entity) in whatever order the plan reads them, which changes once the table
        # has been analyzed.
        rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()
        out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


CASES: list[tuple[str, str, str, Any, dict[str, str], int, str | None]] = [
    # (name, method, path, body, headers, status, expected error path)
    ("unknown entity", "PUT", "/v1/sources/crm/vendor/1", GOOD, {}, 404, None),
    ("unknown source", "PUT", "/v1/sources/sap/customer/1", GOOD, {}, 404, None),
    (
        "reference_only source",
        "PUT",
        "/v1/sources/crm/worker/1",
        {"attributes": {"family_name": "Doe"}},
        {},
        403,
        None,
    ),
    (
        "wrong type",
        "PUT",
        "/v1/sources/crm/customer/1",
        {"attributes": {"name": 12}},
        {},
        422,
        "$.attributes.name",
    ),
    (
        "nested wrong type",
        "PUT",
        "/v1/sources/crm/customer/1",
        {"attributes": {"name": "X", "address": {"country": 7}}},
        {},
        422,
        "$.attributes.address.country",
    ),
    (
        "unknown field",
        "PUT",
        "/v1/sources/crm/customer/1",
        {"attributes": {"name": "X", "nmae": "typo"}},
        {},
        422,
        "$.attributes",
    ),
    (
        "missing required",
        "PUT",
        "/v1/sources/crm/customer/1",
        {"attributes": {"tax_id": "DE136695976"}},
        {},
        422,
        "$.attributes",
    ),
    (
        "blank required",
        "PUT",
        "/v1/sources/crm/customer/1",
        {"attributes": {"name": "   "}},
        {},
        422,
        "$.attributes.name",
    ),
    (
        "bad enum",
        "PUT",
        "/v1/sources/hcm/worker/1",
        {"attributes": {"family_name": "Doe", "worker_type": "intern"}},
        {},
        422,
        "$.attributes.worker_type",
    ),
    (
        "bad date",
        "PUT",
        "/v1/sources/hcm/worker/1",
        {"attributes": {"family_name": "Doe", "hire_date": "2026-02-30"}},
        {},
        422,
        "$.attributes.hire_date",
    ),
    (
        "naive timestamp",
        "PUT",
        "/v1/sources/crm/customer/1",
        {**GOOD, "source_updated_at": "2026-01-01T00:00:00"},
        {},
        422,
        "$.source_updated_at",
    ),
    ("body not an object", "PUT", "/v1/sources/crm/customer/1", [1, 2], {}, 422, None),
    # Bodies are held to their types strictly, as the batch items are: a number is not
    # a time (it was 1970), a string is not a number.
    (
        "number for a time",
        "PUT",
        "/v1/sources/crm/customer/1",
        {**GOOD, "source_updated_at": 1767225600},
        {},
        422,
        "$.source_updated_at",
    ),
    (
        "string for a number",
        "POST",
        "/v1/reviews/decisions",
        {"decisions": [{"task_id": "1", "decision": "defer"}]},
        {},
        422,
        "$.decisions[0].task_id",
    ),
    ("batch not a list", "POST", "/v1/sources/crm/customer/batch", {"a": 1}, {}, 422, None),
    (
        "batch too large",
        "POST",
        "/v1/sources/crm/customer/batch",
        [{"source_id": str(i), "attributes": {"name": "x"}} for i in range(1001)],
        {},
        422,
        "$",
    ),
    ("unknown entity batch", "POST", "/v1/sources/crm/vendor/batch", [], {}, 404, None),
    ("source id too long", "PUT", "/v1/sources/crm/customer/" + "x" * 201, GOOD, {}, 422, None),
    ("unknown entity xref", "GET", "/v1/xref/vendor/crm/1", None, {}, 404, None),
    ("unknown golden", "GET", "/v1/golden/customer/cus_nope", None, {}, 404, None),
    (
        "xref lookup bad body",
        "POST",
        "/v1/xref/lookup",
        {"keys": [{"entity": "vendor"}]},
        {},
        422,
        "$.keys[0].entity",
    ),
    ("reference_only delete", "DELETE", "/v1/sources/crm/worker/1", None, {}, 403, None),
]


@pytest.mark.parametrize(
    "method,path,body,headers,status,error_path",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_bad_input_is_a_clear_4xx_and_loses_nothing(
    client: AsyncTestClient,
    db: AsyncConnection,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    error_path: str | None,
) -> None:
    accepted = await client.put("/v1/sources/crm/customer/1", json=GOOD)
    assert accepted.status_code == 200
    before = await snapshot(db)

    response = await client.request(method, path, json=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem.get("detail")
    if error_path is not None:
        assert error_path in [e["path"] for e in problem["errors"]], problem
    assert await snapshot(db) == before


async def test_invalid_json_is_400(client: AsyncTestClient) -> None:
    response = await client.put(
        "/v1/sources/crm/customer/1",
        content=b'{"attributes": {',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_oversized_body_is_413(client: AsyncTestClient, db: AsyncConnection) -> None:
    huge = b'{"attributes": {"name": "' + b"x" * (9 * 1024 * 1024) + b'"}}'
    response = await client.put(
        "/v1/sources/crm/customer/1", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert (await db.execute(text("SELECT count(*) FROM source_record"))).scalar_one() == 0


async def test_unknown_source_names_the_configured_ones(client: AsyncTestClient) -> None:
    response = await client.put("/v1/sources/sap/customer/1", json=GOOD)
    assert "crm" in response.json()["detail"] and "sap" in response.json()["detail"]
    response = await client.put("/v1/sources/crm/vendor/1", json=GOOD)
    assert "customer" in response.json()["detail"] and "vendor" in response.json()["detail"]


async def test_a_worker_without_any_name_is_refused_and_one_without_a_family_name_kept(
    client: AsyncTestClient,
) -> None:
    refused = await client.put(
        "/v1/sources/hcm/worker/NONAME", json={"attributes": {"email": "x@example.com"}}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["path"] == "$.attributes.family_name"
    kept = await client.put(
        "/v1/sources/hcm/worker/GIVEN", json={"attributes": {"given_name": "Cher"}}
    )
    assert kept.status_code == 200, kept.text
    assert [(w["path"], w["code"]) for w in kept.json()["warnings"]] == [("family_name", "missing")]


@pytest.mark.parametrize(
    ("method", "url", "body", "path"),
    [
        # Found by the API fuzzing (tests/integration/test_api_fuzz.py): an offset past
        # PostgreSQL's bigint reached asyncpg and answered 500.
        ("GET", "/v1/reviews?offset=17140600891117355925504", None, "query:offset"),
        ("GET", "/v1/exceptions?offset=99999999999999999999", None, "query:offset"),
        ("GET", "/v1/references/pending?offset=99999999999999999999", None, "query:offset"),
        ("GET", "/v1/reviews?min_age_hours=1e300", None, "query:min_age_hours"),
        ("GET", "/v1/reviews/99999999999999999999", None, "path:task_id"),
        (
            "POST",
            "/v1/reviews/decisions",
            {"decisions": [{"task_id": 99999999999999999999, "decision": "defer"}]},
            "$.decisions[0].task_id",
        ),
    ],
)
async def test_numbers_out_of_the_databases_range_are_422_not_500(
    client: AsyncTestClient, method: str, url: str, body: Any, path: str
) -> None:
    response = await client.request(method, url, json=body)
    assert response.status_code == 422, response.text
    assert path in {e["path"] for e in response.json()["errors"]}, response.text


async def test_a_whole_number_written_with_a_fraction_is_still_an_integer(
    client: AsyncTestClient,
) -> None:
    # JSON (and the document's "integer") make 7.0 the number 7.
    response = await client.post(
        "/v1/reviews/decisions", json={"decisions": [{"task_id": 7.0, "decision": "defer"}]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["error"]["status"] == 404  # no task 7


def assert_problem(response: Any, status: int, path: str | None = None) -> dict[str, Any]:
    """`response` is an RFC 9457 problem of `status`, naming `path` among its errors."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"], problem
    if path is not None:
        assert path in [e["path"] for e in problem.get("errors") or []], problem
    return problem


def batch_results(response: Any) -> list[tuple[int, str | None]]:
    """(status, first error path) of each item of a batch answer."""
    assert response.status_code == 200, response.text
    return [
        (r["status"], r["error"]["errors"][0]["path"] if "error" in r else None)
        for r in response.json()["results"]
    ]


@pytest.mark.parametrize(
    "attributes,path",
    [
        ({"name": "Acme\u0000"}, "$.attributes.name"),
        ({"name": "Acme", "industry": "\u0000"}, "$.attributes.industry"),
        ({"name": "Acme", "address": {"line1": "Main St\u0000 1"}}, "$.attributes.address.line1"),
        ({"name": "Acme", "parent_ref": "P\u00001"}, "$.attributes.parent_ref"),
    ],
)
async def test_a_nul_character_in_an_attribute_is_a_422_naming_it(
    client: AsyncTestClient, db: AsyncConnection, attributes: dict[str, Any], path: str
) -> None:
    # PostgreSQL's text and jsonb cannot hold NUL: it reached asyncpg and was a 500.
    before = await snapshot(db)
    response = await client.put("/v1/sources/crm/customer/1", json={"attributes": attributes})
    assert_problem(response, 422, path)
    assert await snapshot(db) == before


async def test_a_nul_character_in_a_batch_item_fails_that_item_alone(
    client: AsyncTestClient,
) -> None:
    response = await client.post(
        "/v1/sources/crm/customer/batch",
        json=[
            {"source_id": "A", "attributes": {"name": "Acme Consulting GmbH"}},
            {"source_id": "B", "attributes": {"name": "Globex\u0000"}},
            {"source_id": "C\u0000", "attributes": {"name": "Initech"}},
            {"source_id": "D", "attributes": {"name": "Umbrella Corp"}},
        ],
    )
    assert batch_results(response) == [
        (200, None),
        (422, "$[1].attributes.name"),
        (422, "$[2].source_id"),
        (200, None),
    ]


@pytest.mark.parametrize(
    "method,url,body",
    [
        ("PUT", "/v1/sources/crm/customer/a%00b", GOOD),
        ("DELETE", "/v1/sources/crm/customer/a%00b", None),
        ("GET", "/v1/xref/customer/crm/a%00b", None),
        ("GET", "/v1/xref/customer/crm/a%00b/in/erp", None),
        ("GET", "/v1/golden/worker/wrk_%00", None),
        ("GET", "/v1/search/golden?q=a%00b", None),
        ("GET", "/v1/reviews?entity=%00", None),
    ],
)
async def test_a_nul_character_in_the_path_or_query_is_a_400(
    client: AsyncTestClient, db: AsyncConnection, method: str, url: str, body: Any
) -> None:
    await client.put("/v1/sources/crm/customer/1", json=GOOD)
    before = await snapshot(db)
    assert_problem(await client.request(method, url, json=body), 400)
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "url,body,path",
    [
        (
            "/v1/xref/lookup",
            {"keys": [{"entity": "customer", "source": "crm", "source_id": "a\u0000b"}]},
            "$.keys[0].source_id",
        ),
        (
            "/v1/xref/lookup",
            {"keys": [{"entity": "customer", "source": "c\u0000rm", "source_id": "1"}]},
            "$.keys[0].source",
        ),
        (
            "/v1/xref/translate",
            {
                "items": [
                    {"entity": "customer", "source": "crm", "source_id": "\u0000", "target": "erp"}
                ]
            },
            "$.items[0].source_id",
        ),
    ],
)
async def test_a_nul_character_in_a_lookup_body_is_a_422_naming_it(
    client: AsyncTestClient, url: str, body: Any, path: str
) -> None:
    assert_problem(await client.post(url, json=body), 422, path)


async def test_a_nul_character_in_a_registered_id_or_a_header_is_refused(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    golden_id = (await client.put("/v1/sources/crm/customer/1", json=GOOD)).json()["golden_id"]
    before = await snapshot(db)
    registered = await client.put(
        f"/v1/xref/customer/{golden_id}/erp", json={"source_id": "E\u00001"}
    )
    assert_problem(registered, 422, "$.source_id")
    keyed = await client.put(
        "/v1/sources/crm/customer/2", json=GOOD, headers={"Idempotency-Key": "k\x00"}
    )
    assert_problem(keyed, 400)
    assert await snapshot(db) == before


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """A JSON array nested `depth` levels deep around `inner`."""
    return b"[" * depth + inner + b"]" * depth


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize(
    "method,url,body",
    [
        ("PUT", "/v1/sources/crm/customer/1", b'{"attributes": {"name": ' + nested(10_000) + b"}}"),
        ("PUT", "/v1/sources/crm/customer/1", deep_object(10_000)),
        ("PUT", "/v1/sources/crm/customer/1", nested(10_000)),
        ("POST", "/v1/sources/crm/customer/batch", nested(10_000)),
        (
            "POST",
            "/v1/sources/crm/customer/batch",
            b'[{"source_id": "A", "attributes": {"name": "Acme"}}, '
            + b'{"source_id": "B", "attributes": '
            + deep_object(10_000)
            + b"}]",
        ),
        ("POST", "/v1/xref/lookup", b'{"keys": ' + nested(10_000) + b"}"),
        ("POST", "/v1/xref/translate", deep_object(10_000)),
        ("POST", "/v1/reviews/decisions", nested(10_000)),
        # Over the hub's limit (schemas/strict_json.py MAX_DEPTH), far under recursion's.
        ("PUT", "/v1/sources/crm/customer/1", b'{"attributes": {"name": ' + nested(65) + b"}}"),
        ("PUT", "/v1/golden/customer/cus_x/pins/name", b'{"value": ' + nested(100) + b"}"),
    ],
)
async def test_json_nested_too_deeply_is_a_400(
    client: AsyncTestClient, db: AsyncConnection, method: str, url: str, body: bytes
) -> None:
    # msgspec raised RecursionError while deserializing: a 500.
    await client.put("/v1/sources/crm/customer/1", json=GOOD)
    before = await snapshot(db)
    response = await client.request(
        method, url, content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 400)
    assert "nested too deeply" in problem["detail"]
    assert await snapshot(db) == before


async def test_json_nested_within_the_limit_is_read(client: AsyncTestClient) -> None:
    # 64 levels: the body, the attributes and 62 arrays around the name (a 422: not a str).
    body = b'{"attributes": {"name": ' + nested(62, b'"Acme"') + b"}}"
    response = await client.put(
        "/v1/sources/crm/customer/1", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "$.attributes.name")


OVERFLOWING = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]


@pytest.mark.parametrize("updated", OVERFLOWING)
async def test_a_source_time_out_of_range_in_utc_is_a_422(
    client: AsyncTestClient, db: AsyncConnection, updated: str
) -> None:
    # Converting it to UTC overflowed (OverflowError, or asyncpg's DataError): a 500.
    before = await snapshot(db)
    response = await client.put(
        "/v1/sources/crm/customer/1", json={**GOOD, "source_updated_at": updated}
    )
    assert_problem(response, 422, "$.source_updated_at")
    batch = await client.post(
        "/v1/sources/crm/customer/batch",
        json=[
            {"source_id": "A", **GOOD, "source_updated_at": "2026-01-01T00:00:00+14:00"},
            {"source_id": "B", "attributes": {"name": "Globex"}, "source_updated_at": updated},
        ],
    )
    assert batch_results(batch) == [(200, None), (422, "$[1].source_updated_at")]
    assert before["source_record"] == []


@pytest.mark.parametrize("as_of", OVERFLOWING)
async def test_an_as_of_out_of_range_in_utc_is_a_422(client: AsyncTestClient, as_of: str) -> None:
    golden_id = (await client.put("/v1/sources/crm/customer/1", json=GOOD)).json()["golden_id"]
    response = await client.get(f"/v1/golden/customer/{golden_id}", params={"as_of": as_of})
    assert_problem(response, 422, "query:as_of")


@pytest.mark.parametrize(
    "sid", ["a%FFb", "a%FEb", "a%C0b", "a%C0%AFb", "a%ED%A0%80b", "a%F4%90%80%80"]
)
async def test_a_path_not_utf8_once_percent_decoded_is_a_400(
    client: AsyncTestClient, db: AsyncConnection, sid: str
) -> None:
    # The server's decoding replaced each with U+FFFD: three ids wrote one record a\ufffdb.
    await client.put("/v1/sources/hcm/worker/W-1", json={"attributes": {"family_name": "Doe"}})
    before = await snapshot(db)
    for method, url, body in (
        ("PUT", f"/v1/sources/hcm/worker/{sid}", {"attributes": {"family_name": "Doe"}}),
        ("DELETE", f"/v1/sources/hcm/worker/{sid}", None),
        ("GET", f"/v1/xref/worker/hcm/{sid}", None),
        ("GET", f"/v1/search/golden?q={sid}", None),
    ):
        problem = assert_problem(await client.request(method, url, json=body), 400)
        assert "UTF-8" in problem["detail"]
    assert await snapshot(db) == before


async def test_a_path_in_percent_encoded_utf8_names_its_record(client: AsyncTestClient) -> None:
    put = await client.put(
        "/v1/sources/hcm/worker/M%C3%BCller", json={"attributes": {"family_name": "Müller"}}
    )
    assert put.status_code == 200, put.text
    xref = await client.get("/v1/xref/worker/hcm/M%C3%BCller")
    assert xref.status_code == 200, xref.text
    assert [x["source_id"] for x in xref.json()["xrefs"]] == ["Müller"]


async def test_a_source_id_holding_a_slash_is_addressable_through_every_door(
    client: AsyncTestClient,
) -> None:
    # "INV/2024/001" percent-encoded as one segment; the path was decoded before routing,
    # so PUT, DELETE and GET answered 404 and only POST /v1/xref/lookup found the record.
    sid, path = "INV/2024/001", "INV%2F2024%2F001"
    batch = await client.post(
        "/v1/sources/erp/customer/batch",
        json=[{"source_id": sid, "attributes": {"name": "Acme Consulting GmbH"}}],
    )
    assert batch_results(batch) == [(200, None)]
    golden_id = batch.json()["results"][0]["golden_id"]

    updated = await client.put(
        f"/v1/sources/erp/customer/{path}", json={"attributes": {"name": "Acme Consulting AG"}}
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["golden_id"], updated.json()["outcome"]) == (golden_id, "linked")

    lower_hex = path.replace("%2F", "%2f")
    for url in (f"/v1/xref/customer/erp/{path}", f"/v1/xref/customer/erp/{lower_hex}"):
        xref = await client.get(url)
        assert xref.status_code == 200, xref.text
        assert xref.json()["golden_id"] == golden_id
        assert ["erp", sid] in [[x["source"], x["source_id"]] for x in xref.json()["xrefs"]]
    # Its answer is cached now (mdm/api/fast_lookup.py), under a key holding its slashes:
    # a path with real slashes is still no route.
    assert (await client.get(f"/v1/xref/customer/erp/{sid}")).status_code == 404
    looked_up = await client.post(
        "/v1/xref/lookup",
        json={"keys": [{"entity": "customer", "source": "erp", "source_id": sid}]},
    )
    assert looked_up.json()["results"][0]["golden_id"] == golden_id

    # A subscriber registers its own id holding slashes, then translates through it.
    registered = await client.put(f"/v1/xref/customer/{golden_id}/psa", json={"source_id": "C/7"})
    assert registered.status_code == 200, registered.text
    translated = await client.get("/v1/xref/customer/psa/C%2F7/in/erp")
    assert translated.status_code == 200, translated.text
    assert translated.json()["target_id"] == sid
    back = await client.get(f"/v1/xref/customer/erp/{path}/in/psa")
    assert back.json()["target_id"] == "C/7"

    # A steward ignores the record's value and takes it back, naming the id in the path.
    ignored = await client.put(
        f"/v1/golden/customer/{golden_id}/ignores",
        json={"attribute": "name", "source": "erp", "source_id": sid},
    )
    assert ignored.status_code == 200, ignored.text
    unignored = await client.delete(f"/v1/golden/customer/{golden_id}/ignores/erp/{path}/name")
    assert unignored.status_code == 200, unignored.text
    assert unignored.json()["changed"] is True

    deleted = await client.delete(f"/v1/sources/erp/customer/{path}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["outcome"] == "deleted"
    # The record is gone, and a path whose slashes are real is another (unknown) path.
    assert (await client.get(f"/v1/xref/customer/erp/{sid}")).status_code == 404
    assert (await client.put(f"/v1/sources/erp/customer/{sid}", json=GOOD)).status_code == 404


async def test_a_source_id_holding_a_slash_and_a_percent_sign_keeps_both(
    client: AsyncTestClient,
) -> None:
    # The router sees escaped segments (mdm/api/edge.py); "%2F" typed by a client as
    # text is "%252F" on the wire, and stays that text.
    for path, sid in (("a%2F%252F", "a/%2F"), ("a%252F", "a%2F")):
        put = await client.put(f"/v1/sources/erp/customer/{path}", json=GOOD)
        assert put.status_code == 200, put.text
        xref = await client.get(f"/v1/xref/customer/erp/{path}")
        assert sid in [x["source_id"] for x in xref.json()["xrefs"]], (path, xref.text)


def _through_uvicorn(base: str, key: str) -> list[tuple[int, str]]:
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as http:
        answers = [
            http.put("/v1/sources/erp/customer/INV%2F1", json=GOOD),
            http.get("/v1/xref/customer/erp/INV%2F1"),
            http.get("/v1/xref/customer/erp/INV%2F1/in/erp"),
            http.delete("/v1/sources/erp/customer/INV%2F1"),
            http.put("/v1/sources/erp/customer/a%FFb", json=GOOD),
            http.get("/v1/search/golden?q=a%FFb"),
        ]
    return [(a.status_code, a.text) for a in answers]


async def test_uvicorn_routes_on_the_raw_path_too(
    client: AsyncTestClient, settings: Settings
) -> None:
    # The test client and uvicorn fill scope["raw_path"] differently (with and
    # without the query string); the edge reads both.
    assert settings.auth.admin_key
    with serving(settings) as base:
        answers = await asyncio.to_thread(_through_uvicorn, base, settings.auth.admin_key)
    assert [status for status, _ in answers] == [200, 200, 200, 200, 400, 400], answers
    assert '"source_id":"INV/1"' in answers[1][1]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"],
)
async def test_a_body_not_sent_as_json_is_a_415(
    client: AsyncTestClient, db: AsyncConnection, content_type: str | None
) -> None:
    # It was taken for JSON whatever its Content-Type said.
    before = await snapshot(db)
    headers = {"content-type": content_type} if content_type else {}
    body = b'{"attributes": {"name": "Acme Consulting GmbH"}}'
    for method, url in (("PUT", "/v1/sources/crm/customer/1"), ("POST", "/v1/xref/lookup")):
        response = await client.request(method, url, content=body, headers=headers)
        assert_problem(response, 415)
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ],
)
async def test_a_body_sent_as_json_is_read(client: AsyncTestClient, content_type: str) -> None:
    response = await client.put(
        "/v1/sources/crm/customer/1",
        content=b'{"attributes": {"name": "Acme Consulting GmbH"}}',
        headers={"content-type": content_type},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "method,url,body,path",
    [
        (
            "PUT",
            "/v1/sources/crm/customer/1",
            b'{"attributes": {"name": "A", "name": "B"}}',
            "$.attributes.name",
        ),
        (
            "PUT",
            "/v1/sources/crm/customer/1",
            b'{"attributes": {"name": "A"}, "attributes": {}}',
            "$.attributes",
        ),
        (
            "POST",
            "/v1/sources/crm/customer/batch",
            b'[{"source_id": "A", "attributes": {"name": "A"}},'
            b' {"source_id": "B", "source_id": "C", "attributes": {"name": "B"}}]',
            "$[1].source_id",
        ),
        (
            "POST",
            "/v1/xref/lookup",
            b'{"keys": [{"entity": "customer", "source": "crm", "source_id": "1",'
            b' "source": "erp"}]}',
            "$.keys[0].source",
        ),
        ("POST", "/v1/xref/lookup", b'{"keys": [], "k\\u0065ys": []}', "$.keys"),
    ],
)
async def test_a_key_twice_in_an_object_is_a_400_naming_it(
    client: AsyncTestClient, db: AsyncConnection, method: str, url: str, body: bytes, path: str
) -> None:
    # The last one silently won.
    before = await snapshot(db)
    response = await client.request(
        method, url, content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, path)
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "attributes,path",
    [
        ({"name": "Acme\u202eHbmG"}, "$.attributes.name"),  # right-to-left override
        ({"name": "Acme\u2066 GmbH"}, "$.attributes.name"),
        ({"name": "Acme\u200f"}, "$.attributes.name"),
        ({"name": "Acme\tGmbH"}, "$.attributes.name"),
        ({"name": "Acme\nGmbH"}, "$.attributes.name"),
        ({"name": "Acme GmbH\n"}, "$.attributes.name"),
        ({"name": "Acme\x1b[31m"}, "$.attributes.name"),
        ({"name": "Acme\x7f"}, "$.attributes.name"),
        ({"name": "Acme\x85"}, "$.attributes.name"),
        ({"name": "Acme", "legal_name": "Acme\x07"}, "$.attributes.legal_name"),
        ({"name": "Acme", "tax_id": "DE\u200e136695976"}, "$.attributes.tax_id"),
        ({"name": "Acme", "parent_ref": "P\t1"}, "$.attributes.parent_ref"),
        ({"name": "Acme", "parent_ref": " "}, "$.attributes.parent_ref"),
        ({"name": "Acme", "address": {"line1": "Main St\x0b1"}}, "$.attributes.address.line1"),
    ],
)
async def test_control_and_bidi_characters_in_names_and_ids_are_a_422(
    client: AsyncTestClient, attributes: dict[str, Any], path: str
) -> None:
    response = await client.put("/v1/sources/crm/customer/1", json={"attributes": attributes})
    problem = assert_problem(response, 422, path)
    assert "control character" in problem["errors"][0]["message"], problem


async def test_free_text_keeps_line_breaks_tabs_and_bidi_marks(client: AsyncTestClient) -> None:
    # An address line in Hebrew with a house number needs its direction marks.
    address = {
        "line1": "\u05e8\u05d7\u05d5\u05d1 \u05d4\u05e8\u05e6\u05dc\u200f 12",
        "line2": "Hof 2\r\n\tEG",
    }
    response = await client.put(
        "/v1/sources/crm/customer/1",
        json={"attributes": {"name": "Acme Consulting GmbH", "address": address}},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("sid", ["", " ", "  ", "\u3000", "a\tb", "a\nb", "a\x1fb", "a\u202eb"])
async def test_a_blank_source_id_or_one_with_control_characters_is_a_422(
    client: AsyncTestClient, db: AsyncConnection, sid: str
) -> None:
    batch = await client.post(
        "/v1/sources/crm/customer/batch",
        json=[
            {"source_id": sid, "attributes": {"name": "Acme Consulting GmbH"}},
            {"source_id": "B", "attributes": {"name": "Globex"}},
        ],
    )
    assert batch_results(batch) == [(422, "$[0].source_id"), (200, None)]
    if sid:  # an empty path segment is another route
        encoded = sid.encode().hex()
        path = "".join(f"%{encoded[i : i + 2]}" for i in range(0, len(encoded), 2))
        put = await client.put(f"/v1/sources/crm/customer/{path}", json=GOOD)
        assert_problem(put, 422, "path:source_id")
        xref = await client.get(f"/v1/xref/customer/crm/{path}")
        assert_problem(xref, 422, "path:source_id")
    lookup = await client.post(
        "/v1/xref/lookup",
        json={"keys": [{"entity": "customer", "source": "crm", "source_id": sid}]},
    )
    assert_problem(lookup, 422, "$.keys[0].source_id")
    stored = (await db.execute(text("SELECT source_id FROM source_record"))).scalars().all()
    assert stored == ["B"]


async def test_a_batch_item_that_is_not_an_object_fails_alone(client: AsyncTestClient) -> None:
    # The body was typed a list of objects: one number failed the whole batch (path "$").
    response = await client.post(
        "/v1/sources/crm/customer/batch",
        json=[{"source_id": "A", "attributes": {"name": "Acme"}}, 5, None, [], "B"],
    )
    assert batch_results(response) == [(200, None)] + [(422, f"$[{i}]") for i in range(1, 5)]
