"""The OpenAPI document as the contract: every body the hub accepts and every answer it gives.

litestar documents a route's success answer, its parameters and its body's
types; this module adds what litestar cannot know, in one place, when the app
is built (`create_app` calls `openapi_config`, passes the `StructSchemas`
plugin of mdm/api/struct_schemas.py and calls `document`):

- the problems (RFC 9457, application/problem+json) a route can answer, from
  what every route shares (its permission, path parameters and body:
  `_problems`), plus the route's own, declared on its decorator as
  `responses={409: problem("...")}`; nothing else (litestar's default 400 for
  a validation error is not what the hub answers: that is a 422);
- request bodies as the hub decodes them (`StructSchemas`): unknown fields
  refused, and the rules msgspec's metadata holds, as in the exported JSON
  Schema (schemas/export.py);
- the headers of those answers (Retry-After, Location, the RateLimit-* fields of
  mdm/api/rate_limit.py), that a public route
  needs no credentials, and parameters' bounds as declared (litestar writes
  them as floats).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from litestar import Litestar, Router
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.params import ParameterKwarg
from litestar.routes import HTTPRoute

from mdm.api.auth import PERMISSION_KEY, Permission, requires
from mdm.api.problems import PROBLEM_JSON
from mdm.api.struct_schemas import set_values
from schemas.api import Problem


def openapi_config() -> OpenAPIConfig:
    """The document's frame: title, security schemes, and where it is served (/schema)."""
    return OpenAPIConfig(
        title="MDM hub",
        version="1",
        description="Golden records, cross-references and ingestion for CRM, PSA, ERP and HCM.",
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="apiKey",
                    name="X-API-Key",
                    security_scheme_in="header",
                    description="An API key (`mdm keys create`, docs/security.md)",
                ),
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="An OAuth2 client-credentials token",
                ),
            }
        ),
        security=[{"apiKey": []}, {"bearer": []}],
        # /schema is an HTML page; tools read /schema/openapi.json.
        openapi_router=Router(
            path="/schema",
            route_handlers=[],
            opt=requires(Permission.OPS),
            include_in_schema=False,
        ),
    )


def problem(description: str) -> ResponseSpec:
    """A route's answer with an RFC 9457 problem body: `responses={409: problem("...")}`."""
    return ResponseSpec(
        data_container=Problem,
        description=description,
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )


def moved(description: str) -> ResponseSpec:
    """A route's redirect (no body; `document` declares its Location header)."""
    return ResponseSpec(data_container=None, description=description)


#: The problems routes share, by status.
_SHARED = {
    400: "The body is not well-formed JSON (or nests too deep, or repeats a key), "
    "or the path is not UTF-8",
    401: "No credentials, or credentials the hub does not accept",
    403: "The caller's role or source system may not do this",
    404: "Not found (the problem's detail says what)",
    413: "The body is larger than the hub accepts (MDM_MAX_BODY_BYTES)",
    415: "The body is not JSON (Content-Type application/json or +json)",
    422: "The request does not match this document (`errors` has the field paths)",
    429: "Rate limit exceeded for this client; Retry-After says when to retry",
    503: "The database is not reachable; nothing was changed, Retry-After says when to retry",
}

#: An `entity` query parameter naming no entity type is a 404, as in a path.
UNKNOWN_ENTITY = {404: problem("Unknown entity type (the problem's detail lists the known ones)")}

_RETRY_AFTER = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
    description="Seconds to wait before retrying",
    required=True,
)
#: The rate-limit fields (mdm/api/rate_limit.py) of the bucket a request drew on: on
#: every answer of a limited route while limits are on, and always on a 429.
_RATE_LIMIT = {
    "RateLimit-Limit": "Requests the caller's read or write bucket holds (its burst)",
    "RateLimit-Remaining": "Whole requests left in that bucket after this one",
    "RateLimit-Reset": "Seconds until that bucket is full again, rounded up",
}


def _rate_limit_headers(required: bool) -> dict[str, OpenAPIHeader | Reference]:
    return {
        name: OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER, minimum=0),
            description=description,
            required=required,
        )
        for name, description in _RATE_LIMIT.items()
    }


_LOCATION = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING),
    description="Where the resource is now",
    required=True,
)


def _problems(route: HTTPRoute, handler: HTTPRouteHandler) -> dict[int, ResponseSpec]:
    """The problems a route can answer because of what it shares with others."""
    permission = handler.opt.get(PERMISSION_KEY)  # none: refused to all (mdm/api/auth.py)
    fields = set(handler.parsed_fn_signature.parameters)
    body = "data" in fields
    path = bool(route.path_parameters)
    # query and header parameters: what is neither the body, the request, injected nor the path
    others = (
        fields
        - {"data", "request"}
        - set(handler.resolve_dependencies())
        - set(route.path_parameters)
    )
    statuses: set[int] = set()
    if permission is not Permission.PUBLIC:
        statuses |= {401, 429, 503}  # the credentials, the rate limit and the key's lookup
        if permission is not Permission.AUTHENTICATED:
            statuses.add(403)
    if body:
        statuses |= {400, 413, 415, 422}
    if path:
        statuses |= {400, 404, 422}
    if others:
        statuses.add(422)
    return {status: problem(_SHARED[status]) for status in sorted(statuses)}


def _documented(app: Litestar) -> Iterator[tuple[HTTPRoute, HTTPRouteHandler]]:
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if handler.resolve_include_in_schema():
                    yield route, handler


def document(app: Litestar, sources: Collection[str] = ()) -> None:
    """Declare every answer of every documented route in the app's OpenAPI document,
    and the source systems (`sources`, the catalog's) a source's write may name.

    Call once, after the app is built and before it serves: it builds the
    document (litestar keeps it and renders it at /schema/openapi.json; a route
    registered later would make litestar build it again, without this).
    """
    handlers = list(_documented(app))
    for route, handler in handlers:
        handler.responses = {**_problems(route, handler), **(handler.responses or {})}
    openapi = app.openapi_schema
    for route, handler in handlers:
        item = openapi.paths[route.path_format] if openapi.paths else None
        for method in handler.http_methods:
            operation: Operation | None = getattr(item, method.lower(), None)
            if operation is not None:
                _declare(operation, handler)
                _parameter_bounds(operation, handler)
                if sources and route.path.startswith("/v1/sources/"):
                    _source_systems(operation, sources)


def _source_systems(operation: Operation, sources: Collection[str]) -> None:
    """A source writes only as a system of the catalog (mdm/defaults/sources.toml): any
    other name is a 404, so the document lists the names."""
    for parameter in operation.parameters or []:
        if isinstance(parameter, Parameter) and parameter.name == "source":
            if isinstance(parameter.schema, Schema):
                parameter.schema.enum = sorted(sources)


def _declare(operation: Operation, handler: HTTPRouteHandler) -> None:
    """Keep only the answers the route gives; name their headers; mark a public route."""
    declared = handler.responses or {}
    success = str(handler.status_code)
    limited = handler.opt.get(PERMISSION_KEY) is not Permission.PUBLIC
    kept: dict[str, OpenAPIResponse | Reference] = {}
    for status, response in (operation.responses or {}).items():
        if status != success and (not status.isdigit() or int(status) not in declared):
            continue  # litestar's own guess (a 400 for a validation error)
        if isinstance(response, OpenAPIResponse):
            spec = declared.get(int(status))
            headers: dict[str, OpenAPIHeader | Reference] = {}
            if status.startswith("3"):
                headers["Location"] = _LOCATION
            elif status in ("429", "503") and spec is not None and spec.media_type == PROBLEM_JSON:
                headers["Retry-After"] = _RETRY_AFTER
            if limited:
                headers |= _rate_limit_headers(required=status == "429")
            if headers:
                response.headers = {**(response.headers or {}), **headers}
        kept[status] = response
    operation.responses = kept
    if handler.opt.get(PERMISSION_KEY) is Permission.PUBLIC:
        operation.security = []  # no credentials needed


def _parameter_bounds(operation: Operation, handler: HTTPRouteHandler) -> None:
    """Numeric bounds of parameters as declared (litestar writes them as floats)."""
    fields = handler.parsed_fn_signature.parameters
    for parameter in operation.parameters or []:
        if not isinstance(parameter, Parameter) or not isinstance(parameter.schema, Schema):
            continue
        field = fields.get(parameter.name)
        kwarg = field.kwarg_definition if field is not None else None
        if isinstance(kwarg, ParameterKwarg):
            set_values(
                parameter.schema,
                minimum=kwarg.ge,
                maximum=kwarg.le,
                exclusive_minimum=kwarg.gt,
                exclusive_maximum=kwarg.lt,
            )
