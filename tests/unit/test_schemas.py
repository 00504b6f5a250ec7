"""Wire contracts: strict inbound decoding and the exported JSON Schema."""

from __future__ import annotations

import msgspec
import pytest

from mdm.domain.sources import ENTITIES
from mdm.settings import Settings
from schemas.api import BATCH_ITEM, UPSERT_BODY
from schemas.entities import ENTITY_TYPES
from schemas.export import JSON_DIR, schema_documents


def test_entities_agree_between_schemas_and_domain() -> None:
    assert set(ENTITY_TYPES) == set(ENTITIES) == set(UPSERT_BODY) == set(BATCH_ITEM)


def test_a_full_worker_decodes() -> None:
    body = msgspec.json.decode(
        b"""{"attributes": {
        "family_name": "Okafor", "given_name": "Chidi", "date_of_birth": "1988-07-14",
        "email": "c.okafor@example.com", "employee_number": "E-1", "worker_type": "contractor",
        "status": "active", "cost_rate": {"amount": 95.5, "currency": "GBP"},
        "address": {"line1": "1 High St", "city": "Leeds", "postal_code": "LS1 1AA",
                    "country": "GB"}},
        "source_updated_at": "2026-11-01T08:00:00+01:00"}""",
        type=UPSERT_BODY["worker"],
    )
    assert body.attributes.cost_rate.currency == "GBP"
    assert body.source_updated_at.utcoffset() is not None


@pytest.mark.parametrize(
    "payload,where",
    [
        (
            b'{"attributes": {"family_name": "X", "worker_type": "intern"}}',
            "$.attributes.worker_type",
        ),
        (b'{"attributes": {"family_name": "X", "salary": 1}}', "$.attributes"),
        (b'{"attributes": {"family_name": 7}}', "$.attributes.family_name"),
        (
            b'{"attributes": {"family_name": "X", "cost_rate": {"amount": 1, "currency": "EURO"}}}',
            "$.attributes.cost_rate.currency",
        ),
        (
            b'{"attributes": {"family_name": "X"}, "source_updated_at": "2026-01-01T00:00:00"}',
            "$.source_updated_at",
        ),
    ],
)
def test_bad_worker_is_rejected_with_a_path(payload: bytes, where: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(payload, type=UPSERT_BODY["worker"])
    assert str(info.value).endswith(f"`{where}`")


def test_committed_json_schemas_are_current() -> None:
    """Connector authors read schemas/json; regenerate with `mdm schemas`."""
    for name, body in schema_documents().items():
        assert (JSON_DIR / name).read_bytes() == body, f"{name} is stale: run `mdm schemas`"


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "MDM_DATABASE_URL": "postgres://u@db:5432/mdm",
            "MDM_NATS_URL": "nats://n:4222",
            "MDM_PORT": "9000",
            "MDM_DATA_DIR": "/var/lib/mdm",
        }
    )
    assert settings.database.url == "postgresql+asyncpg://u@db:5432/mdm"
    assert settings.nats.url == "nats://n:4222"
    assert settings.api.port == 9000
    assert str(settings.data_dir) == "/var/lib/mdm"
    assert Settings.from_env({}).database.url is None
