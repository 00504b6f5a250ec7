"""The litestar application: routes, error mapping, metrics, OpenAPI."""

from __future__ import annotations

from functools import partial

from litestar import Controller, Litestar, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST

from mdm import heap
from mdm.api.access import AccessMiddleware
from mdm.api.auth import Permission, authorize, missing_credentials, requires
from mdm.api.bodies import strict_body
from mdm.api.dashboard import dashboard, search_golden
from mdm.api.edge import Edge, SlashedSegments
from mdm.api.fast_lookup import XrefFastPath, route_template
from mdm.api.golden import GoldenController, XrefController, render_xref
from mdm.api.history import HistorySampler
from mdm.api.json_body import JsonRequest
from mdm.api.lifecycle import LifecycleController
from mdm.api.matching import MATCH_ROUTES, MatchingController
from mdm.api.metrics import WRITE_GROUPS, exposition
from mdm.api.openapi import document, openapi_config
from mdm.api.ops import health, whoami
from mdm.api.overrides import OverridesController
from mdm.api.problems import EXCEPTION_HANDLERS
from mdm.api.relationships import ROUTES as RELATIONSHIP_ROUTES
from mdm.api.rematch import stop_runs
from mdm.api.retrain import Retrainer
from mdm.api.reviews import ReviewController
from mdm.api.sources import ROUTES as SOURCE_ROUTES
from mdm.api.steward import STEWARD_ROUTES
from mdm.api.struct_schemas import StructSchemas
from mdm.api.xref_register import register as register_xref
from mdm.bootstrap import Hub
from mdm.domain.sources import SourceCatalog
from mdm.settings import Settings
from mdm.watchdog import LoopWatchdog


def _provide_hub(state: State) -> Hub:
    hub: Hub = state.hub
    return hub


class MetricsController(Controller):
    """Prometheus metrics: this process's, the outbox's and the relay's (mdm/api/metrics.py)."""

    path = "/metrics"
    include_in_schema = False
    opt = requires(Permission.OPS)

    @get()
    async def get(self, hub: NamedDependency[Hub]) -> Response[bytes]:
        body = await exposition(hub.engine, hub.settings.relay)
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    settings: Settings, catalog: SourceCatalog | None = None, *, own_process: bool = False
) -> Litestar:
    """Build the hub's ASGI app; the database and NATS URLs must already be resolved.

    `own_process`: the app is all its process serves (`mdm serve`), so it may set
    the process-wide garbage collector for its long-lived heap (mdm/heap.py).
    """
    hub = Hub.from_settings(settings, catalog)

    retrainer = Retrainer(hub.engine, settings)
    sampler = HistorySampler(hub.engine, settings.dashboard)
    stall = settings.api.loop_stall_ms / 1000
    watchdog = LoopWatchdog(threshold=stall) if own_process and stall > 0 else None
    if hub.writes is not None:
        hub.writes.observers.append(lambda entity, n: WRITE_GROUPS.labels(entity).observe(n))

    async def on_startup(app: Litestar) -> None:
        app.state.hub = hub
        if problem := await missing_credentials(hub.engine, settings.auth):
            raise RuntimeError(problem)
        await hub.start()
        if watchdog is not None:
            watchdog.start()
        if own_process:
            heap.observe_pauses()
            heap.tune()
            heap.freeze_long_lived()
        await hub.start_relay()  # with MDM_RELAY=inline (mdm.bootstrap.Hub.relay)
        if settings.retrain.interval > 0:  # retraining as the held records grow
            retrainer.start()
        if settings.dashboard.sample_interval > 0:  # the dashboard's hourly history
            sampler.start()

    async def on_shutdown(app: Litestar) -> None:
        await retrainer.stop()
        await sampler.stop()
        await stop_runs(hub.engine)  # re-matching runs started here (resumable)
        await hub.stop()  # the relay first, if it runs here: it drains
        if watchdog is not None:
            await watchdog.stop()

    prometheus = PrometheusConfig(
        app_name="mdm",
        prefix="mdm",
        group_path=True,
        exclude=["/metrics", "/health"],
    )
    access = AccessMiddleware(settings.auth, hub.rules.sensitive)
    app = Litestar(
        route_handlers=[
            *SOURCE_ROUTES,
            GoldenController,
            LifecycleController,
            OverridesController,
            MatchingController,
            *MATCH_ROUTES,
            ReviewController,
            dashboard,
            search_golden,
            *STEWARD_ROUTES,
            XrefController,
            register_xref,
            *RELATIONSHIP_ROUTES,
            health,
            whoami,
            MetricsController,
        ],
        dependencies={"hub": Provide(_provide_hub, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=strict_body,  # bodies as the OpenAPI document says (mdm/api/bodies.py)
        # Every route declares its permission (opt); this one guard checks it.
        guards=[authorize],
        middleware=[SlashedSegments(), prometheus.middleware, access],
        request_class=JsonRequest,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=openapi_config(),
        plugins=[StructSchemas()],
        request_max_body_size=settings.api.max_body_bytes,
        # The process configures logging once (mdm.cli); litestar must not add handlers.
        logging_config=None,
    )
    # Every answer of every route, in /schema/openapi.json (mdm/api/openapi.py).
    document(app, hub.catalog.systems)
    # Cached xref answers go out before routing (mdm/api/fast_lookup.py); litestar's
    # handler (after the app's lifespan and scope setup) gets everything else. The
    # edge's checks (mdm/api/edge.py) come first, for both.
    hub.lookups.renderer = partial(render_xref, hub)  # what the cache's warming renders with
    app.asgi_handler = Edge(
        XrefFastPath(
            app.asgi_handler, hub, access, prometheus.prefix, route_template(app, "get_xref")
        )
    )
    return app


def app_from_env() -> Litestar:
    """Factory for `uvicorn --factory` and multi-worker serving: settings from MDM_* only."""
    return create_app(Settings.from_env(), own_process=True)
