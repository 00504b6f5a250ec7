"""The litestar application: routes, error mapping, metrics, OpenAPI."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from mdm.api.golden import GoldenController, XrefController
from mdm.api.lifecycle import LifecycleController
from mdm.api.matching import MATCH_ROUTES, MatchingController
from mdm.api.ops import health
from mdm.api.overrides import OverridesController
from mdm.api.problems import EXCEPTION_HANDLERS
from mdm.api.relationships import ROUTES as RELATIONSHIP_ROUTES
from mdm.api.sources import ROUTES as SOURCE_ROUTES
from mdm.api.xref_register import register as register_xref
from mdm.bootstrap import Hub
from mdm.domain.sources import SourceCatalog
from mdm.settings import Settings
from publishers.relay import Relay


def _provide_hub(state: State) -> Hub:
    hub: Hub = state.hub
    return hub


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def create_app(settings: Settings, catalog: SourceCatalog | None = None) -> Litestar:
    """Build the hub's ASGI app; the database and NATS URLs must already be resolved."""
    hub = Hub.from_settings(settings, catalog)

    relays: list[Relay] = []

    async def on_startup(app: Litestar) -> None:
        app.state.hub = hub
        await hub.start()
        # The relay runs in every hub process unless MDM_RELAY=0; several at once
        # keep per-golden-record order (publishers/relay.py).
        if settings.relay.enabled:
            relay = Relay(hub.engine, hub.nats, settings.relay)
            relays.append(relay)
            await relay.start()

    async def on_shutdown(app: Litestar) -> None:
        while relays:
            await relays.pop().stop()  # drain: the round in hand is published and marked
        await hub.stop()

    prometheus = PrometheusConfig(
        app_name="mdm",
        prefix="mdm",
        group_path=True,
        exclude=["/metrics", "/health"],
    )
    return Litestar(
        route_handlers=[
            *SOURCE_ROUTES,
            GoldenController,
            LifecycleController,
            OverridesController,
            MatchingController,
            *MATCH_ROUTES,
            XrefController,
            register_xref,
            *RELATIONSHIP_ROUTES,
            health,
            MetricsController,
        ],
        dependencies={"hub": Provide(_provide_hub, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[prometheus.middleware],
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=OpenAPIConfig(
            title="MDM hub",
            version="1",
            description="Golden records, cross-references and ingestion for CRM, PSA, ERP and HCM.",
            path="/schema",
        ),
        request_max_body_size=settings.api.max_body_bytes,
        # The process configures logging once (mdm.cli); litestar must not add handlers.
        logging_config=None,
    )


def app_from_env() -> Litestar:
    """Factory for `uvicorn --factory` and multi-worker serving: settings from MDM_* only."""
    return create_app(Settings.from_env())
