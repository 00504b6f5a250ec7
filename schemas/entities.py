"""Canonical entities a professional-services firm masters.

These are wire contracts: what a source system sends about one of its records.
Every attribute but the entity's name is optional, because each system holds
only part of the picture. Inbound Structs forbid unknown fields so that a typo
in a connector is a 422, not silently lost data. Evolve only by adding
optional fields.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import msgspec.inspect
from msgspec import Meta

from schemas.text import IDENTIFIER, NAME, TEXT

# Bounded strings keep one bad record from bloating the database or the match index.
# Which characters each may hold: schemas/text.py (NAME for names and the codes a
# record is recognised by, TEXT for free text, IDENTIFIER for references).
ShortText = Annotated[str, Meta(max_length=200), TEXT]
Text = Annotated[str, Meta(max_length=500), TEXT]
# A character the hub's cleaning of names keeps (matching/text.py clean_text drops
# whitespace, control characters and invisible ones): a name without one is blank,
# and a blank name is a 422. Documented in the JSON Schema (beside NAME's pattern,
# which it checks); checked after decoding.
NOT_BLANK = r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u200b\ufeff]"
Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=300,
        description="Required, not blank.",
        extra_json_schema={"allOf": [{"pattern": NOT_BLANK}]},
    ),
    NAME,
]
NamePart = Annotated[str, Meta(max_length=200), NAME]
Ref = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="The id of the referenced record in the same source system.",
    ),
    IDENTIFIER,
]
CountryText = Annotated[
    str,
    Meta(
        min_length=2,
        max_length=60,
        description="ISO 3166-1 alpha-2 preferred; alpha-3 and English names are standardized.",
    ),
    NAME,
]
# A decimal number written as a string (a JSON number is accepted as well).
DECIMAL = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
CurrencyCode = Annotated[str, Meta(pattern="^[A-Za-z]{3}$", description="ISO 4217 code.")]

# Sensitive attributes: masked in API answers for callers without the grant, never
# carried in events, never logged (docs/security.md). The JSON Schema marks them
# with "x-sensitive": true; a hub's configuration may add more (MDM_SENSITIVE_ATTRIBUTES).
SENSITIVE = Meta(
    extra_json_schema={"x-sensitive": True},
    description="Sensitive: masked for callers without the grant; never in events or logs.",
)


class _Inbound(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every inbound struct: keyword-only, strict about unknown fields."""


class Address(_Inbound):
    line1: Text | None = None
    line2: Text | None = None
    city: ShortText | None = None
    region: ShortText | None = None
    postal_code: Annotated[str, Meta(max_length=20), NAME] | None = None
    country: CountryText | None = None


class Money(_Inbound):
    amount: Annotated[
        Decimal,
        Meta(
            description="A JSON number, or a string holding one.",
            extra_json_schema={"type": ["number", "string"], "pattern": DECIMAL},
        ),
    ]
    currency: CurrencyCode


class Customer(_Inbound):
    """A client of the firm: the account in CRM, the customer in ERP, the client in PSA."""

    name: Name
    legal_name: Annotated[str, Meta(max_length=500), NAME] | None = None
    tax_id: Annotated[str, Meta(max_length=40), NAME] | None = None
    tax_country: CountryText | None = None
    duns: Annotated[str, Meta(max_length=20), NAME] | None = None
    website: Annotated[str, Meta(max_length=500), NAME] | None = None
    email: Annotated[str, Meta(max_length=320), NAME] | None = None
    phone: Annotated[str, Meta(max_length=40), NAME] | None = None
    address: Address | None = None
    parent_ref: Ref | None = None
    industry: ShortText | None = None
    status: Literal["prospect", "active", "inactive"] | None = None


class Worker(_Inbound):
    """An employee or contractor: HCM's person, PSA's resource, ERP's vendor or employee.

    A worker needs a name: a family_name or a given_name (neither is a 422). One
    without a family name is kept with a data-quality warning rather than
    refused, so that the source's id still has a golden record and a steward
    can complete it.
    """

    # That rule in JSON Schema (schemas/export.py and the OpenAPI document add it).
    __json_schema_extra__: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {
                "required": [name],
                "properties": {name: {"type": "string", "pattern": NOT_BLANK}},
            }
            for name in ("family_name", "given_name")
        ]
    }

    family_name: Annotated[str, Meta(max_length=300), NAME] | None = None
    given_name: NamePart | None = None
    middle_name: NamePart | None = None
    date_of_birth: Annotated[dt.date, SENSITIVE] | None = None
    email: Annotated[str, Meta(max_length=320), NAME] | None = None
    phone: Annotated[str, Meta(max_length=40), NAME] | None = None
    national_id: Annotated[str, Meta(max_length=40), NAME, SENSITIVE] | None = None
    employee_number: Annotated[str, Meta(max_length=40), NAME] | None = None
    address: Address | None = None
    employer_ref: Ref | None = None
    manager_ref: Ref | None = None
    job_title: ShortText | None = None
    cost_center: ShortText | None = None
    cost_rate: Annotated[Money, SENSITIVE] | None = None
    worker_type: Literal["employee", "contractor"] | None = None
    status: Literal["active", "inactive", "terminated"] | None = None
    hire_date: dt.date | None = None
    termination_date: dt.date | None = None


class LegalEntity(_Inbound):
    """A company of the firm's own group that contracts, employs and books."""

    name: Name
    registration_number: Annotated[str, Meta(max_length=60), NAME] | None = None
    tax_id: Annotated[str, Meta(max_length=40), NAME] | None = None
    country: CountryText | None = None
    base_currency: CurrencyCode | None = None
    address: Address | None = None
    parent_ref: Ref | None = None


class Project(_Inbound):
    """An engagement delivered for a customer by one of the firm's legal entities."""

    name: Name
    code: Annotated[str, Meta(max_length=60), NAME] | None = None
    customer_ref: Ref | None = None
    legal_entity_ref: Ref | None = None
    project_manager_ref: Ref | None = None
    billing_type: Literal["fixed_fee", "time_and_materials", "milestone"] | None = None
    contract_value: Money | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    status: Literal["planned", "active", "on_hold", "completed", "cancelled"] | None = None


EntityName = Literal["customer", "worker", "project", "legal_entity"]

ENTITY_TYPES: dict[str, type[msgspec.Struct]] = {
    "customer": Customer,
    "worker": Worker,
    "project": Project,
    "legal_entity": LegalEntity,
}


def _sensitive(types: dict[str, type[msgspec.Struct]]) -> frozenset[str]:
    """Attribute names whose type carries the SENSITIVE mark, in any entity."""
    names = set()
    for struct in types.values():
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        for f in info.fields:
            variants = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
            if any(
                (getattr(v, "extra_json_schema", None) or {}).get("x-sensitive") for v in variants
            ):
                names.add(f.name)
    return frozenset(names)


#: national_id, date_of_birth, cost_rate: read from the marks above.
SENSITIVE_ATTRIBUTES: frozenset[str] = _sensitive(ENTITY_TYPES)

# The attribute a person or a human reader recognises the record by.
REQUIRED_ATTRIBUTE: dict[str, str] = {
    "customer": "name",
    "worker": "family_name",
    "project": "name",
    "legal_entity": "name",
}
