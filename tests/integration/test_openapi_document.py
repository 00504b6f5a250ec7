"""The OpenAPI document at /schema/openapi.json is the contract: what the hub takes and answers.

tests/integration/test_api_fuzz.py holds the hub to it, case by case; these
tests name what the document must say.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from litestar.testing import AsyncTestClient

from mdm.adapters.data_quality import RULES
from schemas.entities import NOT_BLANK
from schemas.relationships import ExceptionRule
from schemas.text import IDENTIFIER_PATTERN

METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture
async def document(client: AsyncTestClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _referenced(document: dict[str, Any], schema: Any, seen: set[str]) -> Iterator[dict[str, Any]]:
    """Every object schema in `schema`, through references, once each."""
    if isinstance(schema, list):
        for item in schema:
            yield from _referenced(document, item, seen)
    elif isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                yield from _referenced(document, document["components"]["schemas"][name], seen)
            return
        if schema.get("type") == "object" and "properties" in schema:
            yield schema
        for value in schema.values():
            yield from _referenced(document, value, seen)


async def test_every_body_the_hub_takes_refuses_unknown_fields(document: dict[str, Any]) -> None:
    bodies = 0
    for method, path, operation in operations(document):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        bodies += 1
        for schema in _referenced(document, body["schema"], set()):
            assert schema.get("additionalProperties") is False, (method, path, schema)
    assert bodies >= 20


async def test_the_rules_checked_after_decoding_are_in_the_document(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    # A worker needs a family_name or a given_name, and a name is not blank.
    assert schemas["Worker"]["anyOf"] == [
        {"required": [name], "properties": {name: {"type": "string", "pattern": NOT_BLANK}}}
        for name in ("family_name", "given_name")
    ]
    for entity in ("Customer", "Project", "LegalEntity"):
        assert schemas[entity]["properties"]["name"]["allOf"] == [{"pattern": NOT_BLANK}]
    assert not re.search(NOT_BLANK, " \t\u200b\u00a0")
    assert re.search(NOT_BLANK, " Ng ")
    # An amount is a number, or a string holding one.
    assert schemas["Money"]["properties"]["amount"]["type"] == ["number", "string"]
    # The exceptions' rules are an enum.
    (rule,) = [
        p for p in document["paths"]["/v1/exceptions"]["get"]["parameters"] if p["name"] == "rule"
    ]
    assert set(rule["schema"]["enum"]) == {*RULES, None} == {*get_args(ExceptionRule), None}


async def test_bounds_are_exact(document: dict[str, Any]) -> None:
    (task_id,) = document["paths"]["/v1/reviews/{task_id}"]["get"]["parameters"]
    assert task_id["schema"]["maximum"] == 2**63 - 1
    item = document["components"]["schemas"]["BulkDecisionItem"]["properties"]["task_id"]
    assert item["maximum"] == 2**63 - 1
    loser_ids = document["components"]["schemas"]["MergeRequest"]["properties"]["loser_ids"]
    assert loser_ids["items"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "pattern": IDENTIFIER_PATTERN,
    }
    limits = {p["name"]: p["schema"] for p in document["paths"]["/v1/reviews"]["get"]["parameters"]}
    assert limits["min_age_hours"]["minimum"] == 0


async def test_every_operation_declares_its_problems(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        problems = {s for s, r in responses.items() if r.get("content") == PROBLEM}
        parameters = {p["in"] for p in operation.get("parameters", [])}
        expected: set[str] = set()
        if path != "/health":
            expected |= {"401", "429", "503"}
        if path not in ("/health", "/v1/me"):
            expected.add("403")
        if "requestBody" in operation:
            expected |= {"400", "413", "415", "422"}
        if "path" in parameters:
            expected |= {"400", "404", "422"}
        if parameters:
            expected.add("422")
        assert expected <= problems, (method, path, sorted(expected - problems))
        # Nothing else: litestar's guess of a 400 for a validation error (a 422) is gone.
        for status, response in responses.items():
            assert (
                status.startswith(("2", "3"))
                or response.get("content") in (PROBLEM, None)
                or (path == "/health")
            ), (method, path, status)
        rate_limit = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
        if "429" in responses:
            headers = responses["429"]["headers"]
            assert headers["Retry-After"]["required"] is True
            assert all(headers[name]["required"] is True for name in rate_limit)
            # Every answer of a limited route may carry them (not when limits are off).
            for status, response in responses.items():
                assert rate_limit <= response.get("headers", {}).keys(), (method, path, status)
        else:
            for response in responses.values():
                assert not rate_limit & response.get("headers", {}).keys(), (method, path)


async def test_routes_declare_their_own_answers(document: dict[str, Any]) -> None:
    paths = document["paths"]
    moved = paths["/v1/golden/{entity}/{golden_id}"]["get"]["responses"]["301"]
    assert moved["headers"]["Location"]["required"] is True
    for path, method in [
        ("/v1/golden/{entity}/merge", "post"),
        ("/v1/golden/{entity}/{golden_id}/unmerge", "post"),
        ("/v1/golden/{entity}/{golden_id}/pins/{attribute}", "put"),
        ("/v1/xref/{entity}/{golden_id}/{source}", "put"),
        ("/v1/reviews/{task_id}/decision", "post"),
    ]:
        assert paths[path][method]["responses"]["409"]["content"] == PROBLEM, path
    for path in ("/v1/exceptions", "/v1/search/golden", "/v1/reviews"):
        assert "404" in paths[path]["get"]["responses"], path  # an unknown `entity`
    health = paths["/health"]["get"]
    assert health["security"] == []
    assert health["responses"]["503"]["content"] == health["responses"]["200"]["content"]
    # Nothing else is 409: a bulk decision answers each task's problem in its own result.
    assert "409" not in paths["/v1/reviews/decisions"]["post"]["responses"]


async def test_a_source_write_names_a_system_of_the_catalog(
    document: dict[str, Any], client: AsyncTestClient
) -> None:
    systems = sorted(client.app.state.hub.catalog.systems)
    for path, item in document["paths"].items():
        if path.startswith("/v1/sources/"):
            for operation in item.values():
                (source,) = [p for p in operation["parameters"] if p["name"] == "source"]
                assert source["schema"]["enum"] == systems, path
