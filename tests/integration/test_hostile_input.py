"""Hostile input through every read and write endpoint: the hub's answer is a 4xx
RFC 9457 problem (or a documented success), never a 5xx, and nothing stored before
changes.

A few records are ingested once for the module and everything stored is snapshot
(tests/integration/test_bad_input.py snapshot); each case is one request, its own
test id, and compares the snapshot afterwards. The single defects, with their
exact answers, are tested in test_bad_input.py; schemathesis fuzzes the OpenAPI
document in test_api_fuzz.py. `test_the_corpus_reaches_every_endpoint` fails when
a route is added without cases here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from mdm.settings import Settings
from tests.integration.test_bad_input import snapshot
from tests.support import truncate_hub_tables

JSON = "application/json"


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: str  # <customer>, <worker> ... stand for the seeded golden ids
    route: str  # the route's path as litestar names it


@dataclass(frozen=True)
class Case:
    method: str
    url: str
    route: str
    body: bytes | None = None
    content_type: str | None = JSON
    headers: dict[str, bytes] = field(default_factory=dict)
    ok: tuple[int, ...] = ()  # documented successes (reads, and writes changing nothing)
    path: str | None = None  # the field path the problem must name
    batch_item: int | None = None  # a batch whose item this is must fail that item alone

    def __post_init__(self) -> None:
        if self.batch_item is not None:  # a batch answers 200, with each item's result
            object.__setattr__(self, "ok", (200,))


SRC = "/v1/sources/{source:str}"
GOLDEN = "/v1/golden/{entity:str}/{golden_id:str}"
XREF = "/v1/xref/{entity:str}/{source:str}/{source_id:str}"

UPSERTS = {
    "customer": Endpoint(
        "PUT", "/v1/sources/crm/customer/NEW-1", f"{SRC}/customer/{{source_id:str}}"
    ),
    "worker": Endpoint("PUT", "/v1/sources/hcm/worker/NEW-1", f"{SRC}/worker/{{source_id:str}}"),
    "project": Endpoint("PUT", "/v1/sources/psa/project/NEW-1", f"{SRC}/project/{{source_id:str}}"),
    "legal_entity": Endpoint(
        "PUT", "/v1/sources/erp/legal_entity/NEW-1", f"{SRC}/legal_entity/{{source_id:str}}"
    ),
}
BATCHES = {
    entity: Endpoint("POST", f"/v1/sources/{source}/{entity}/batch", f"{SRC}/{entity}/batch")
    for entity, source in (
        ("customer", "crm"),
        ("worker", "hcm"),
        ("project", "psa"),
        ("legal_entity", "erp"),
    )
}
MATCHES = {
    entity: Endpoint("POST", f"/v1/match/{entity}", f"/v1/match/{entity}")
    for entity in ("customer", "worker", "project", "legal_entity")
}
# Every route taking a JSON body.
BODY_ENDPOINTS: dict[str, Endpoint] = {
    **{f"upsert {e}": ep for e, ep in UPSERTS.items()},
    **{f"batch {e}": ep for e, ep in BATCHES.items()},
    **{f"match {e}": ep for e, ep in MATCHES.items()},
    "xref lookup": Endpoint("POST", "/v1/xref/lookup", "/v1/xref/lookup"),
    "xref translate": Endpoint("POST", "/v1/xref/translate", "/v1/xref/translate"),
    "xref register": Endpoint(
        "PUT",
        "/v1/xref/customer/<customer>/psa",
        "/v1/xref/{entity:str}/{golden_id:str}/{source:str}",
    ),
    "merge": Endpoint("POST", "/v1/golden/customer/merge", "/v1/golden/{entity:str}/merge"),
    "unmerge": Endpoint("POST", "/v1/golden/customer/<customer>/unmerge", f"{GOLDEN}/unmerge"),
    "pin": Endpoint(
        "PUT", "/v1/golden/customer/<customer>/pins/industry", f"{GOLDEN}/pins/{{attribute:str}}"
    ),
    "ignore": Endpoint("PUT", "/v1/golden/customer/<customer>/ignores", f"{GOLDEN}/ignores"),
    "review decision": Endpoint(
        "POST", "/v1/reviews/1/decision", "/v1/reviews/{task_id:int}/decision"
    ),
    "review assign": Endpoint("POST", "/v1/reviews/1/assign", "/v1/reviews/{task_id:int}/assign"),
    "review decisions": Endpoint("POST", "/v1/reviews/decisions", "/v1/reviews/decisions"),
    "upsert unknown entity": Endpoint(
        "PUT", "/v1/sources/crm/vendor/1", f"{SRC}/{{entity:str}}/{{source_id:str}}"
    ),
    "batch unknown entity": Endpoint(
        "POST", "/v1/sources/crm/vendor/batch", f"{SRC}/{{entity:str}}/batch"
    ),
    "match unknown entity": Endpoint("POST", "/v1/match/vendor", "/v1/match/{entity:str}"),
}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# Bodies no JSON endpoint takes: (bytes, Content-Type).
HOSTILE_BODIES: dict[str, tuple[bytes, str | None]] = {
    "empty": (b"", JSON),
    "whitespace": (b" \n\t ", JSON),
    "null": (b"null", JSON),
    "a string": (b'"attributes"', JSON),
    "a number": (b"42", JSON),
    "an array": (b"[]", JSON),
    "an array of arrays": (b"[[], [1], [[]]]", JSON),
    "an empty object": (b"{}", JSON),
    "an unknown field": (b'{"nmae": "typo"}', JSON),
    "truncated": (b'{"attributes": {"name": "Ac', JSON),
    "trailing comma": (b'{"keys": [],}', JSON),
    "single quotes": (b"{'keys': []}", JSON),
    "a comment": (b'{"keys": [] /* all */}', JSON),
    "two documents": (b"{} {}", JSON),
    "NaN": (b'{"keys": NaN}', JSON),
    "Infinity": (b'{"value": -Infinity}', JSON),
    "a number out of range": (b'{"value": 1e400}', JSON),
    "an integer of 5,000 digits": (b'{"value": ' + b"9" * 5000 + b"}", JSON),
    "a BOM": (b'\xef\xbb\xbf{"keys": []}', JSON),
    "UTF-16": ('{"keys": []}'.encode("utf-16"), JSON),
    "invalid UTF-8": (b'{"keys": "\xff\xfe"}', JSON),
    "a lone surrogate": (b'{"keys": "\\ud800"}', JSON),
    "a raw control character": (b'{"keys": "a\x01b"}', JSON),
    "NUL in a key": (b'{"\\u0000": 1}', JSON),
    "NUL in a value": (b'{"value": "\\u0000", "reason": "\\u0000"}', JSON),
    "nested 10,000 deep": (nested(10_000), JSON),
    "nested 65 deep": (b'{"value": ' + nested(64) + b"}", JSON),
    "a key twice": (b'{"keys": [], "keys": []}', JSON),
    "a key twice, escaped": (b'{"value": 1, "v\\u0061lue": 2}', JSON),
    "1 MB of string": (b'{"value": "' + b"x" * 1_000_000 + b'"}', JSON),
    "no Content-Type": (b'{"keys": []}', None),
    "text/plain": (b'{"keys": []}', "text/plain"),
    "a form": (b"keys=1", "application/x-www-form-urlencoded"),
    "multipart": (
        b'--b\r\nContent-Disposition: form-data; name="keys"\r\n\r\n[]\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
    ),
    "XML": (b"<keys/>", "application/xml"),
}


def body_cases() -> Iterator[Any]:
    for endpoint_name, ep in BODY_ENDPOINTS.items():
        # An array is a batch: it answers 200 with each item's own result.
        ok = (200,) if ep in BATCHES.values() else ()
        for body_name, (body, content_type) in HOSTILE_BODIES.items():
            yield pytest.param(
                Case(ep.method, ep.url, ep.route, body, content_type, ok=ok),
                id=f"{endpoint_name}: {body_name}",
            )
    too_large = b'{"value": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    for endpoint_name in ("batch customer", "xref lookup"):
        ep = BODY_ENDPOINTS[endpoint_name]
        yield pytest.param(
            Case(ep.method, ep.url, ep.route, too_large), id=f"{endpoint_name}: 9 MB"
        )


# Attribute values no entity takes, as (entity, attributes): each is sent to the
# entity's PUT (a 4xx) and as the second item of a batch whose first item is a stored
# record unchanged (that item alone fails).
GOOD_ATTRIBUTES = {
    "customer": {"name": "Initech GmbH"},
    "worker": {"family_name": "Lindqvist"},
    "project": {"name": "Data migration"},
    "legal_entity": {"name": "Initech Holding AG"},
}


def _with(entity: str, **values: Any) -> tuple[str, dict[str, Any]]:
    return entity, {**GOOD_ATTRIBUTES[entity], **values}


HOSTILE_ATTRIBUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "NUL in a name": _with("customer", name="Init\u0000ech"),
    "NUL in a worker's family name": _with("worker", family_name="\u0000"),
    "NUL in an address line": _with("customer", address={"line1": "Main St\u0000"}),
    "NUL in a reference": _with("project", customer_ref="C\u00009"),
    "NUL in an e-mail": _with("worker", email="a\u0000@example.com"),
    "NUL in a currency": _with("project", contract_value={"amount": 1, "currency": "E\u0000R"}),
    "an escape sequence in a name": _with("customer", name="Initech\u001b[2J"),
    "DEL in a name": _with("legal_entity", name="Initech\u007f"),
    "a C1 control in a name": _with("customer", name="Initech\u0085"),
    "a tab in a name": _with("worker", given_name="Ada\tMaria"),
    "a line break in a tax id": _with("customer", tax_id="DE136695976\n"),
    "a right-to-left override in a name": _with("customer", name="Initech \u202eHbmG"),
    "an isolate in a code": _with("project", code="P\u2066-1"),
    "a direction mark in an e-mail": _with("worker", email="ada\u200f@example.com"),
    "a blank reference": _with("worker", manager_ref="   "),
    "a vertical tab in an address": _with("legal_entity", address={"line2": "Floor\u000b2"}),
    "a name of 10,000 characters": _with("customer", name="x" * 10_000),
    "an e-mail of 1,000 characters": _with("worker", email="a" * 990 + "@example.com"),
    "a name that is a number": _with("customer", name=12),
    "a name that is null": _with("legal_entity", name=None),
    "a name that is an array": _with("project", name=["Data", "migration"]),
    "a name that is an object": _with("customer", name={"first": "Init"}),
    "a huge integer for a name": _with("customer", name=10**300),
    "a blank name": _with("customer", name="  "),
    "no name at all": ("worker", {"email": "x@example.com"}),
    "an unknown attribute": _with("customer", nmae="typo"),
    "an unknown status": _with("project", status="frozen"),
    "an address that is a string": _with("customer", address="Main St 1"),
    "an impossible date": _with("worker", hire_date="2026-02-30"),
    "a date past year 9999": _with("worker", date_of_birth="10000-01-01"),
    "a date that is a number": _with("project", start_date=20260101),
    "a datetime for a date": _with("worker", hire_date="2026-01-01T00:00:00Z"),
    "a money amount that is a list": _with(
        "project", contract_value={"amount": [1], "currency": "EUR"}
    ),
    "a currency of four letters": _with("legal_entity", base_currency="EURO"),
    "a country of one letter": _with("legal_entity", country="D"),
}

# Batch items no batch takes (the item alone fails).
HOSTILE_ITEMS: dict[str, Any] = {
    "an item that is a number": 5,
    "an item that is null": None,
    "an item that is an array": [],
    "an item that is a string": "ACC-2",
    "an item without a source id": {"attributes": GOOD_ATTRIBUTES["customer"]},
    "an empty source id": {"source_id": "", "attributes": GOOD_ATTRIBUTES["customer"]},
    "a blank source id": {"source_id": " ", "attributes": GOOD_ATTRIBUTES["customer"]},
    "a source id holding NUL": {"source_id": "a\u0000", "attributes": GOOD_ATTRIBUTES["customer"]},
    "a source id holding a line break": {
        "source_id": "a\nb",
        "attributes": GOOD_ATTRIBUTES["customer"],
    },
    "a source id of 201 characters": {
        "source_id": "x" * 201,
        "attributes": GOOD_ATTRIBUTES["customer"],
    },
    "a source id that is a number": {"source_id": 7, "attributes": GOOD_ATTRIBUTES["customer"]},
    "a source time past year 9999 in UTC": {
        "source_id": "T-1",
        "attributes": GOOD_ATTRIBUTES["customer"],
        "source_updated_at": "9999-12-31T23:59:59-14:00",
    },
    "a source time before year 1 in UTC": {
        "source_id": "T-1",
        "attributes": GOOD_ATTRIBUTES["customer"],
        "source_updated_at": "0001-01-01T00:00:00+14:00",
    },
    "a source time without an offset": {
        "source_id": "T-1",
        "attributes": GOOD_ATTRIBUTES["customer"],
        "source_updated_at": "2026-01-01T00:00:00",
    },
    "a source time that is a number": {
        "source_id": "T-1",
        "attributes": GOOD_ATTRIBUTES["customer"],
        "source_updated_at": 1767225600,
    },
    "an unknown field": {
        "source_id": "T-1",
        "attributes": GOOD_ATTRIBUTES["customer"],
        "source": "erp",
    },
}

# The first item of every batch: a seeded record, the same content (unchanged).
SEEDED_ITEM = {
    "customer": ("crm", "ACC-1", {"name": "Acme Consulting GmbH", "tax_id": "DE136695976"}),
    "worker": ("hcm", "W/1", {"family_name": "Okafor", "given_name": "Ada"}),
    "project": ("psa", "P-1", {"name": "Cloud migration", "customer_ref": "C-9"}),
    "legal_entity": ("erp", "LE-1", {"name": "Acme Holding AG", "country": "DE"}),
}


def _batch(entity: str, hostile: Any) -> bytes:
    _, sid, attributes = SEEDED_ITEM[entity]
    return json.dumps([{"source_id": sid, "attributes": attributes}, hostile]).encode()


def attribute_cases() -> Iterator[Any]:
    for name, (entity, attributes) in HOSTILE_ATTRIBUTES.items():
        put = UPSERTS[entity]
        body = json.dumps({"attributes": attributes}).encode()
        yield pytest.param(Case(put.method, put.url, put.route, body), id=f"PUT: {name}")
        batch = BATCHES[entity]
        item = {"source_id": "NEW-1", "attributes": attributes}
        yield pytest.param(
            Case(batch.method, batch.url, batch.route, _batch(entity, item), batch_item=1),
            id=f"batch: {name}",
        )
        match = MATCHES[entity]
        yield pytest.param(
            Case(match.method, match.url, match.route, body, ok=(200,)), id=f"match: {name}"
        )
    batch = BATCHES["customer"]
    for name, item in HOSTILE_ITEMS.items():
        yield pytest.param(
            Case(batch.method, batch.url, batch.route, _batch("customer", item), batch_item=1),
            id=f"batch: {name}",
        )
    items = [{"source_id": str(i), "attributes": {"name": "x"}} for i in range(1001)]
    yield pytest.param(
        Case(batch.method, batch.url, batch.route, json.dumps(items).encode()),
        id="batch: 1,001 items",
    )


# Values a schema takes but a careless store would not: sent where nothing is
# stored (a match, a lookup), so a success is fine and changes nothing.
ODD_BUT_VALID = {
    "emoji and a joiner": {"name": "Acme \U0001f468\u200d\U0001f469\u200d\U0001f467 GmbH"},
    "combining marks": {"name": "Ac\u0301me\u0308"},
    "noncharacters": {"name": "Acme\ufffe\uffff"},
    "a private-use character": {"name": "Acme\ue000"},
    "a zero-width space": {"name": "Ac\u200bme"},
    "a byte order mark": {"name": "\ufeffAcme"},
    "the replacement character": {"name": "Ac\ufffdme"},
    "a 4-byte character": {"name": "\U00010348 Acme"},
}


# Values at the edge of what the schemas take (years 1 and 9999, money that is no
# number the standardizer reads, which it flags with a warning).
EDGE_VALUES: dict[str, tuple[str, dict[str, Any]]] = {
    "years 1 and 9999": (
        "worker",
        {
            "family_name": "Okafor",
            "date_of_birth": "0001-01-01",
            "hire_date": "9999-12-31",
            "termination_date": "9999-12-31",
        },
    ),
    "a project from year 1 to 9999": (
        "project",
        {"name": "X", "start_date": "0001-01-01", "end_date": "9999-12-31"},
    ),
    "an amount of NaN": (
        "project",
        {"name": "X", "contract_value": {"amount": "NaN", "currency": "EUR"}},
    ),
    "an amount of -Infinity": (
        "project",
        {"name": "X", "contract_value": {"amount": "-Infinity", "currency": "EUR"}},
    ),
    "an amount of 1e999999": (
        "project",
        {"name": "X", "contract_value": {"amount": "1e999999", "currency": "EUR"}},
    ),
    "an amount of 1e308": (
        "project",
        {"name": "X", "contract_value": {"amount": 1e308, "currency": "EUR"}},
    ),
    "an amount of 300 digits": (
        "project",
        {"name": "X", "contract_value": {"amount": 10**300, "currency": "EUR"}},
    ),
    "a tax id of 40 digits": (
        "customer",
        {"name": "Acme", "tax_id": "DE" + "9" * 38, "tax_country": "DE"},
    ),
    "contacts that are no contacts": (
        "customer",
        {"name": "Acme", "email": "@", "phone": "+", "website": "javascript:x"},
    ),
}


def valid_cases() -> Iterator[Any]:
    for name, attributes in ODD_BUT_VALID.items():
        ep = MATCHES["customer"]
        body = json.dumps({"attributes": attributes}).encode()
        yield pytest.param(Case(ep.method, ep.url, ep.route, body, ok=(200,)), id=f"match: {name}")
        key = {"entity": "customer", "source": "crm", "source_id": attributes["name"]}
        ep = BODY_ENDPOINTS["xref lookup"]
        body = json.dumps({"keys": [key]}).encode()
        yield pytest.param(Case(ep.method, ep.url, ep.route, body, ok=(200,)), id=f"lookup: {name}")
    for name, (entity, values) in EDGE_VALUES.items():
        ep = MATCHES[entity]
        body = json.dumps({"attributes": values}).encode()
        yield pytest.param(Case(ep.method, ep.url, ep.route, body, ok=(200,)), id=f"match: {name}")


# Paths: ids no route knows, encodings no route takes.
ODD_IDS = {
    "NUL": "a%00b",
    "invalid UTF-8": "a%FFb",
    "an overlong encoding": "%C0%AF",
    "a lone surrogate": "%ED%A0%80",
    "a code point past U+10FFFF": "%F4%90%80%80",
    "a tab": "a%09b",
    "a line break": "a%0Ab",
    "a blank": "%20",
    "a right-to-left override": "a%E2%80%AEb",
    "a slash": "a%2Fb",
    "a backslash": "a%5Cb",
    "dot dot": "%2E%2E",
    "a bad escape": "a%ZZb",
    "a percent sign": "100%25",
    "an emoji": "%F0%9F%98%80",
    "10,000 characters": "x" * 10_000,
}
# A body no upsert takes (no name): an id the hub would take creates nothing.
NAMELESS = json.dumps({"attributes": {}}).encode()
PATH_ROUTES = {
    "upsert": ("PUT", "/v1/sources/crm/customer/{id}", UPSERTS["customer"].route, NAMELESS),
    "upsert in a source": (
        "PUT",
        "/v1/sources/{id}/customer/1",
        UPSERTS["customer"].route,
        NAMELESS,
    ),
    "upsert an entity": (
        "PUT",
        "/v1/sources/crm/{id}/1",
        BODY_ENDPOINTS["upsert unknown entity"].route,
        NAMELESS,
    ),
    **{
        f"delete {entity}": ("DELETE", f"/v1/sources/{source}/{entity}/{{id}}", ep.route, None)
        for entity, ep in UPSERTS.items()
        for source in [SEEDED_ITEM[entity][0]]
    },
    "delete an entity": (
        "DELETE",
        "/v1/sources/crm/{id}/1",
        BODY_ENDPOINTS["upsert unknown entity"].route,
        None,
    ),
    "xref": ("GET", "/v1/xref/customer/crm/{id}", XREF, None),
    "xref of a source": ("GET", "/v1/xref/customer/{id}/ACC-1", XREF, None),
    "xref of an entity": ("GET", "/v1/xref/{id}/crm/ACC-1", XREF, None),
    "translate": ("GET", "/v1/xref/customer/crm/{id}/in/erp", f"{XREF}/in/{{target:str}}", None),
    "translate into": (
        "GET",
        "/v1/xref/customer/crm/ACC-1/in/{id}",
        f"{XREF}/in/{{target:str}}",
        None,
    ),
    "golden": ("GET", "/v1/golden/customer/{id}", GOLDEN, None),
    "golden history": ("GET", "/v1/golden/customer/{id}/history", f"{GOLDEN}/history", None),
    "golden links": ("GET", "/v1/golden/customer/{id}/links", f"{GOLDEN}/links", None),
    "golden overrides": ("GET", "/v1/golden/worker/{id}/overrides", f"{GOLDEN}/overrides", None),
    "golden related": (
        "GET",
        "/v1/golden/customer/{id}/related?relation=parents",
        f"{GOLDEN}/related",
        None,
    ),
    "unpin": (
        "DELETE",
        "/v1/golden/customer/<customer>/pins/{id}",
        f"{GOLDEN}/pins/{{attribute:str}}",
        None,
    ),
    "unignore": (
        "DELETE",
        "/v1/golden/customer/<customer>/ignores/crm/{id}/name",
        f"{GOLDEN}/ignores/{{source:str}}/{{source_id:str}}/{{attribute:str}}",
        None,
    ),
    "register": (
        "PUT",
        "/v1/xref/customer/{id}/psa",
        BODY_ENDPOINTS["xref register"].route,
        json.dumps({"source_id": "PSA-2"}).encode(),
    ),
    "review": ("GET", "/v1/reviews/{id}", "/v1/reviews/{task_id:int}", None),
    "search": ("GET", "/v1/search/golden?q={id}", "/v1/search/golden", None),
}


def path_cases() -> Iterator[Any]:
    for route_name, (method, url, route, body) in PATH_ROUTES.items():
        for id_name, odd in ODD_IDS.items():
            # A read finds nothing (404); a search may list nothing (200).
            ok = (200,) if route_name == "search" else ()
            yield pytest.param(
                Case(method, url.replace("{id}", odd), route, body, ok=ok),
                id=f"{route_name}: {id_name}",
            )


QUERY_CASES: dict[str, tuple[str, str, tuple[int, ...]]] = {
    # name: (url, route, documented successes)
    "search: nothing": ("/v1/search/golden?q=", "/v1/search/golden", ()),
    "search: 60,000 characters": ("/v1/search/golden?q=" + "x" * 60_000, "/v1/search/golden", ()),
    "search: NUL": ("/v1/search/golden?q=%00", "/v1/search/golden", ()),
    "search: invalid UTF-8": ("/v1/search/golden?q=%C3%28", "/v1/search/golden", ()),
    "search: SQL": (
        "/v1/search/golden?q=%27%3B%20DROP%20TABLE%20golden_record%3B--",
        "/v1/search/golden",
        (200,),
    ),
    "search: LIKE wildcards": ("/v1/search/golden?q=%25_%25", "/v1/search/golden", (200,)),
    "search: an unknown entity": ("/v1/search/golden?q=a&entity=vendor", "/v1/search/golden", ()),
    "search: limit 0": ("/v1/search/golden?q=a&limit=0", "/v1/search/golden", ()),
    "search: limit huge": (
        "/v1/search/golden?q=a&limit=99999999999999999999",
        "/v1/search/golden",
        (),
    ),
    "search: limit NaN": ("/v1/search/golden?q=a&limit=NaN", "/v1/search/golden", ()),
    "search: 2,000 parameters": (
        "/v1/search/golden?q=a&" + "&".join(f"p{i}=x" for i in range(2000)),
        "/v1/search/golden",
        (200,),
    ),
    "search: q twice": ("/v1/search/golden?q=a&q=b", "/v1/search/golden", (200,)),
    "reviews: offset -1": ("/v1/reviews?offset=-1", "/v1/reviews", ()),
    "reviews: offset past bigint": ("/v1/reviews?offset=99999999999999999999", "/v1/reviews", ()),
    "reviews: probability NaN": ("/v1/reviews?min_probability=NaN", "/v1/reviews", ()),
    "reviews: probability Infinity": ("/v1/reviews?max_probability=Infinity", "/v1/reviews", ()),
    "reviews: age 1e308": ("/v1/reviews?min_age_hours=1e308", "/v1/reviews", ()),
    "reviews: unknown sort": ("/v1/reviews?sort=created_at;drop", "/v1/reviews", ()),
    "reviews: unknown status": ("/v1/reviews?status=%00", "/v1/reviews", ()),
    "reviews: assignee 201 characters": ("/v1/reviews?assignee=" + "x" * 201, "/v1/reviews", ()),
    "reviews: a bad escape": ("/v1/reviews?entity=%ZZ", "/v1/reviews", ()),
    "exceptions: unknown rule": ("/v1/exceptions?rule=nope", "/v1/exceptions", ()),
    "exceptions: golden id of 65": ("/v1/exceptions?golden_id=" + "x" * 65, "/v1/exceptions", ()),
    "exceptions: invalid UTF-8": ("/v1/exceptions?entity=%FF", "/v1/exceptions", ()),
    "pending: unknown entity": (
        "/v1/references/pending?entity=vendor",
        "/v1/references/pending",
        (),
    ),
    "pending: limit 501": ("/v1/references/pending?limit=501", "/v1/references/pending", ()),
    "golden: as_of garbage": ("/v1/golden/customer/<customer>?as_of=yesterday", GOLDEN, ()),
    "golden: as_of without offset": (
        "/v1/golden/customer/<customer>?as_of=2026-01-01T00:00:00",
        GOLDEN,
        (),
    ),
    "golden: as_of past 9999 in UTC": (
        "/v1/golden/customer/<customer>?as_of=9999-12-31T23:59:59-14:00",
        GOLDEN,
        (),
    ),
    "golden: as_of before year 1 in UTC": (
        "/v1/golden/customer/<customer>?as_of=0001-01-01T00:00:00%2B14:00",
        GOLDEN,
        (),
    ),
    "golden: as_of year 0": (
        "/v1/golden/customer/<customer>?as_of=0000-01-01T00:00:00Z",
        GOLDEN,
        (),
    ),
    "history: before_version past int": (
        "/v1/golden/customer/<customer>/history?before_version=99999999999",
        f"{GOLDEN}/history",
        (),
    ),
    "related: unknown relation": (
        "/v1/golden/customer/<customer>/related?relation=%00",
        f"{GOLDEN}/related",
        (),
    ),
    "related: depth 1,000": (
        "/v1/golden/customer/<customer>/related?relation=parents&depth=1000",
        f"{GOLDEN}/related",
        (),
    ),
    "related: no relation": ("/v1/golden/customer/<customer>/related", f"{GOLDEN}/related", ()),
    "links: NUL in the query": (
        "/v1/golden/customer/<customer>/links?x=%00",
        f"{GOLDEN}/links",
        (),
    ),
    "overrides: invalid UTF-8 in the query": (
        "/v1/golden/customer/<customer>/overrides?x=%FF",
        f"{GOLDEN}/overrides",
        (),
    ),
    "dashboard: NUL in the query": ("/v1/dashboard?x=%00", "/v1/dashboard", ()),
    "dashboard: hours 0": ("/v1/dashboard?hours=0", "/v1/dashboard", ()),
    "dashboard: hours past the kept history": ("/v1/dashboard?hours=721", "/v1/dashboard", ()),
    "dashboard: hours past int": (
        "/v1/dashboard?hours=99999999999999999999",
        "/v1/dashboard",
        (),
    ),
    "dashboard: hours not a number": ("/v1/dashboard?hours=24h", "/v1/dashboard", ()),
    "me: invalid UTF-8 in the query": ("/v1/me?%FF=1", "/v1/me", ()),
    "health: NUL in the query": ("/health?%00", "/health", ()),
    "match: limit 0": ("/v1/match/customer?limit=0", MATCHES["customer"].route, ()),
    "xref: a query string": ("/v1/xref/customer/crm/ACC-1?x=%00", XREF, ()),
}


def query_cases() -> Iterator[Any]:
    for name, (url, route, ok) in QUERY_CASES.items():
        method = "POST" if url.startswith("/v1/match/") else "GET"
        body = b'{"attributes": {"name": "Acme"}}' if method == "POST" else None
        yield pytest.param(Case(method, url, route, body, ok=ok), id=name)


REMATCH = "/v1/match/{entity:str}/rematch"
STATUS = "/v1/match/{entity:str}/status"
REMATCH_CASES: dict[str, tuple[str, str, str]] = {
    # name: (method, url, route); every one refused, so nothing is re-matched.
    "rematch: unknown entity": ("POST", "/v1/match/vendor/rematch", REMATCH),
    "rematch: NUL entity": ("POST", "/v1/match/%00/rematch", REMATCH),
    "rematch: chunk 0": ("POST", "/v1/match/customer/rematch?chunk=0", REMATCH),
    "rematch: chunk huge": (
        "POST",
        "/v1/match/customer/rematch?chunk=99999999999999999999",
        REMATCH,
    ),
    "rematch: chunk NaN": ("POST", "/v1/match/customer/rematch?chunk=NaN", REMATCH),
    "status: unknown entity": ("GET", "/v1/match/vendor/status", STATUS),
    "status: invalid UTF-8 entity": ("GET", "/v1/match/%FF/status", STATUS),
    "status: NUL in the query": ("GET", "/v1/match/customer/status?x=%00", STATUS),
}


def rematch_cases() -> Iterator[Any]:
    for name, (method, url, route) in REMATCH_CASES.items():
        yield pytest.param(Case(method, url, route, None), id=name)


UNCHANGED_PUT = json.dumps({"attributes": SEEDED_ITEM["customer"][2]}).encode()
HEADER_CASES: dict[str, tuple[dict[str, bytes], tuple[int, ...]]] = {
    "Idempotency-Key: NUL": ({"Idempotency-Key": b"k\x00"}, ()),
    "Idempotency-Key: 201 characters": ({"Idempotency-Key": b"k" * 201}, ()),
    "X-Correlation-ID: NUL": ({"X-Correlation-ID": b"\x00"}, ()),
    # Over 200 characters, the correlation id is not taken (a new one is made).
    "X-Correlation-ID: 10,000 characters": ({"X-Correlation-ID": b"c" * 10_000}, (200,)),
    "X-API-Key: NUL": ({"X-API-Key": b"mdm_\x00"}, ()),
    "X-API-Key: 10,000 characters": ({"X-API-Key": b"k" * 10_000}, ()),
    "X-API-Key: not UTF-8": ({"X-API-Key": b"mdm_\xff\xfe"}, ()),
    "Authorization: garbage": ({"X-API-Key": b"", "Authorization": b"Bearer a.b.c"}, ()),
    "Authorization: no token": ({"X-API-Key": b"", "Authorization": b"Bearer"}, ()),
    "Authorization: 10,000 characters": (
        {"X-API-Key": b"", "Authorization": b"Bearer " + b"e" * 10_000},
        (),
    ),
    "Content-Type: JSON with a charset": (
        {"Content-Type": b"application/json; charset=latin-1"},
        (200,),
    ),
    "Content-Type: NUL": ({"Content-Type": b"application/json\x00"}, ()),
}


def header_cases() -> Iterator[Any]:
    ep = UPSERTS["customer"]
    for name, (headers, ok) in HEADER_CASES.items():
        # The seeded record's own content: a success stores nothing (unchanged).
        url = "/v1/sources/crm/customer/ACC-1"
        yield pytest.param(
            Case(ep.method, url, ep.route, UNCHANGED_PUT, headers=headers, ok=ok), id=name
        )


ALL_CASES = [
    *rematch_cases(),
    *body_cases(),
    *attribute_cases(),
    *valid_cases(),
    *path_cases(),
    *query_cases(),
    *header_cases(),
]


@dataclass
class Seeded:
    ids: dict[str, str]
    stored: dict[str, Any]
    key: str


@pytest.fixture(scope="module")
async def seeded(session_client: AsyncTestClient, database_url: str, settings: Settings) -> Seeded:
    """A few records of each entity, an id registered back, a pin: then the snapshot."""
    await truncate_hub_tables(database_url)
    client = session_client
    client.app.state.hub.rules.models.forget()
    assert settings.auth.admin_key
    client.headers.clear()
    client.headers["X-API-Key"] = settings.auth.admin_key
    ids: dict[str, str] = {}
    for entity, (source, sid, attributes) in SEEDED_ITEM.items():
        path = sid.replace("/", "%2F")
        answer = await client.put(
            f"/v1/sources/{source}/{entity}/{path}", json={"attributes": attributes}
        )
        assert answer.status_code == 200, answer.text
        ids[entity] = answer.json()["golden_id"]
    linked = await client.put(
        "/v1/sources/erp/customer/C-77",
        json={"attributes": {"name": "ACME CONSULTING", "tax_id": "DE 136 695 976"}},
    )
    assert linked.json()["golden_id"] == ids["customer"], linked.text
    registered = await client.put(
        f"/v1/xref/customer/{ids['customer']}/psa", json={"source_id": "PSA/1"}
    )
    assert registered.status_code == 200, registered.text
    pinned = await client.put(
        f"/v1/golden/customer/{ids['customer']}/pins/industry", json={"value": "Consulting"}
    )
    assert pinned.status_code == 200, pinned.text
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        stored = await snapshot(conn)
    await engine.dispose()
    return Seeded(ids, stored, settings.auth.admin_key)


@pytest.mark.parametrize("case", ALL_CASES)
async def test_hostile_input_is_a_4xx_problem_and_changes_nothing(
    seeded: Seeded, session_client: AsyncTestClient, db: AsyncConnection, case: Case
) -> None:
    client = session_client
    client.headers.clear()
    client.headers["X-API-Key"] = seeded.key
    url = case.url
    for entity, golden_id in seeded.ids.items():
        url = url.replace(f"<{entity}>", golden_id)
    headers = {name.lower().encode(): value for name, value in case.headers.items()}
    if case.content_type is not None and case.body is not None:
        headers.setdefault(b"content-type", case.content_type.encode())
    response = await client.request(case.method, url, content=case.body, headers=headers)

    assert response.status_code < 500, response.text
    if response.status_code < 400:
        assert response.status_code in case.ok, response.text
    else:
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == response.status_code and problem["title"], problem
        if case.path is not None:
            assert case.path in [e["path"] for e in problem["errors"]], problem
    if case.batch_item is not None:
        results = response.json()["results"]
        assert [r["status"] for r in results][: case.batch_item] == [200] * case.batch_item
        assert results[0]["outcome"] == "unchanged"
        failed = results[case.batch_item]
        assert 400 <= failed["status"] < 500, failed
        paths = [e["path"] for e in failed["error"]["errors"]]
        assert all(p.startswith(f"$[{case.batch_item}]") for p in paths), failed
    assert await snapshot(db) == seeded.stored


def test_the_corpus_reaches_every_endpoint(session_client: AsyncTestClient) -> None:
    routes = {
        (method, route.path)
        for route in session_client.app.routes
        for handler in getattr(route, "route_handlers", ())
        for method in getattr(handler, "http_methods", ())
        if method not in {"OPTIONS", "HEAD"}
        and not route.path.startswith(("/schema", "/steward", "/metrics"))
    }
    reached = {(p.values[0].method, p.values[0].route) for p in ALL_CASES}
    assert routes - reached == set(), "routes without hostile cases"
    assert reached - routes == set(), "cases naming no route"
