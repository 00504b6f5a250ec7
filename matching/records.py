"""Record-level standardization and the strong keys that link records across systems.

Input and output are JSON builtins (the hub stores the output as JSONB).
Attributes the hub does not know are passed through untouched, so a source
can send extra data without losing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from matching import standardize as s
from matching.text import clean_text

ENTITIES = ("customer", "worker", "project", "legal_entity")

REQUIRED: Mapping[str, str] = {
    "customer": "name",
    "legal_entity": "name",
    "project": "name",
    "worker": "family_name",
}


@dataclass(frozen=True, slots=True)
class Issue:
    """A data-quality finding on one attribute; `path` is dotted ("address.country")."""

    path: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class StandardizedRecord:
    """Standardized attribute values, with warnings (kept) and errors (rejecting the record)."""

    values: dict[str, Any]
    warnings: tuple[Issue, ...]
    errors: tuple[Issue, ...]


def _text(raw: str) -> s.Standardized:
    return s.Standardized(clean_text(raw))


# Standardizers that need no context; keyed by the attribute's kind.
_SIMPLE: dict[str, Callable[[str], s.Standardized]] = {
    "text": _text,
    "person": s.person_name,
    "company": s.company_name,
    "email": s.email,
    "website": s.website,
    "duns": s.duns,
    "registration": s.registration_number,
    "employee_number": s.employee_number,
    "country": s.country,
    "currency": s.currency,
    "date": s.iso_date,
}

# Attribute -> kind. Attributes not listed (refs, enums such as status) pass through.
# "tax_id", "phone", "national_id", "address" and "money" need context or
# structure and are handled by _Standardizer.
_FIELDS: dict[str, dict[str, str]] = {
    "customer": {
        "name": "company",
        "legal_name": "company",
        "tax_id": "tax_id",
        "tax_country": "country",
        "duns": "duns",
        "website": "website",
        "email": "email",
        "phone": "phone",
        "address": "address",
        "industry": "text",
    },
    "worker": {
        "family_name": "person",
        "given_name": "person",
        "middle_name": "person",
        "date_of_birth": "date",
        "email": "email",
        "phone": "phone",
        "national_id": "national_id",
        "employee_number": "employee_number",
        "address": "address",
        "job_title": "text",
        "cost_center": "text",
        "cost_rate": "money",
        "hire_date": "date",
        "termination_date": "date",
    },
    "legal_entity": {
        "name": "company",
        "registration_number": "registration",
        "tax_id": "tax_id",
        "country": "country",
        "base_currency": "currency",
        "address": "address",
    },
    "project": {
        "name": "text",
        "code": "text",
        "contract_value": "money",
        "start_date": "date",
        "end_date": "date",
    },
}

_ADDRESS_TEXT = ("line1", "line2", "city", "region")


class _Standardizer:
    """Collects values and issues for one record; one instance per call."""

    def __init__(self, entity: str, attributes: Mapping[str, Any]) -> None:
        self.entity = entity
        self.attributes = attributes
        self.values: dict[str, Any] = dict(attributes)
        self.warnings: list[Issue] = []
        self.errors: list[Issue] = []

    def warn(self, path: str, std: s.Standardized) -> None:
        if std.warning is not None:
            self.warnings.append(Issue(path, std.code or s.INVALID, std.warning))

    def text_of(self, path: str, raw: Any) -> str | None:
        """`raw` as text, or None (with a warning unless it is null) if it is not text."""
        if isinstance(raw, str):
            return raw
        # Identifiers and postal codes often arrive as JSON numbers.
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return str(raw)
        if raw is not None:
            self.warnings.append(Issue(path, "type", "expected text"))
        return None

    def field(self, path: str, raw: Any, standardizer: Callable[[str], s.Standardized]) -> Any:
        """Standardize one text value; returns the value to store."""
        text = self.text_of(path, raw)
        if text is None:
            return raw
        std = standardizer(text)
        self.warn(path, std)
        return std.value

    def valid(self, path: str, value: Any) -> str | None:
        """`value` if it is a non-empty string that got no warning at `path`."""
        if not isinstance(value, str) or not value:
            return None
        if any(w.path == path for w in self.warnings):
            return None
        return value

    def address(self) -> str | None:
        """Standardize the address in place; returns its country code if valid."""
        raw = self.attributes.get("address")
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.warnings.append(Issue("address", "type", "expected an object"))
            return None
        out = dict(raw)
        country = None
        if "country" in raw:
            out["country"] = self.field("address.country", raw["country"], s.country)
            country = self.valid("address.country", out["country"])
        for key in _ADDRESS_TEXT:
            if key in raw:
                out[key] = self.field(f"address.{key}", raw[key], _text)
        if "postal_code" in raw:
            out["postal_code"] = self.field(
                "address.postal_code", raw["postal_code"], lambda t: s.postal_code(t, country)
            )
        self.values["address"] = out
        return country

    def money(self, name: str) -> None:
        raw = self.attributes[name]
        if raw is None:
            return
        if not isinstance(raw, Mapping):
            self.warnings.append(Issue(name, "type", "expected an object"))
            return
        out = dict(raw)
        if "currency" in raw:
            out["currency"] = self.field(f"{name}.currency", raw["currency"], s.currency)
        amount = raw.get("amount")
        if isinstance(amount, str):
            out["amount"] = amount.strip()
            # Amounts stay strings (exact decimals); only check they parse.
            try:
                ok = Decimal(out["amount"]).is_finite()
            except InvalidOperation:
                ok = False
            if not ok:
                self.warnings.append(Issue(f"{name}.amount", s.INVALID, "not a decimal amount"))
        elif amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int | float)
        ):
            self.warnings.append(Issue(f"{name}.amount", "type", "expected a decimal amount"))
        self.values[name] = out

    def tax_id(self, country: str | None, fallback: str | None, fill: str | None) -> None:
        """Standardize tax_id for `country`, else the VAT prefix's country, else `fallback`.

        If `fill` names a missing country attribute, store there the country
        the tax id was validated for.
        """
        text = self.text_of("tax_id", self.attributes["tax_id"])
        if text is None:
            return
        cc = country or s.infer_tax_country(text) or fallback
        std = s.tax_id(text, cc)
        self.values["tax_id"] = std.value
        self.warn("tax_id", std)
        if fill and std.warning is None and cc and not self.attributes.get(fill):
            self.values[fill] = cc

    def run(self) -> StandardizedRecord:
        fields = _FIELDS[self.entity]
        attrs = self.attributes
        address_country = self.address() if "address" in fields else None
        for name, kind in fields.items():
            if name not in attrs or kind == "address":
                continue
            if kind in _SIMPLE:
                self.values[name] = self.field(name, attrs[name], _SIMPLE[kind])
            elif kind == "money":
                self.money(name)
            elif kind == "phone":
                self.values[name] = self.field(
                    name, attrs[name], lambda t: s.phone(t, address_country)
                )
            elif kind == "national_id":
                self.values[name] = self.field(
                    name, attrs[name], lambda t: s.national_id(t, address_country)
                )
        if "tax_id" in attrs:
            if self.entity == "customer":
                cc = self.valid("tax_country", self.values.get("tax_country"))
                self.tax_id(cc, fallback=address_country, fill="tax_country")
            else:
                cc = self.valid("country", self.values.get("country"))
                self.tax_id(cc, fallback=None, fill=None)
        self.require()
        return StandardizedRecord(self.values, tuple(self.warnings), tuple(self.errors))

    def require(self) -> None:
        # Presence is the schema's job; here a present value must not be blank.
        if self.entity == "worker":
            self.require_a_name()
            return
        name = REQUIRED[self.entity]
        if name not in self.attributes:
            return
        if self.blank(name):
            self.errors.append(Issue(name, "required", f"{name} must not be empty"))

    def blank(self, name: str) -> bool:
        value = self.values.get(name)
        return value is None or (isinstance(value, str) and not value)

    def require_a_name(self) -> None:
        """A worker needs a family or a given name; without a family name it is flagged."""
        if self.blank("family_name") and self.blank("given_name"):
            self.errors.append(
                Issue("family_name", "required", "a worker needs a family_name or a given_name")
            )
        elif self.blank("family_name"):
            self.warnings.append(
                Issue("family_name", "missing", "no family name: kept, for a steward to complete")
            )


def standardize_record(entity: str, attributes: Mapping[str, Any]) -> StandardizedRecord:
    """Standardize every known attribute of an `entity` record.

    Invalid optional values keep their raw value and add a warning; a blank
    required attribute (customer/legal_entity/project name, worker
    family_name) adds an error. Raises ValueError for an unknown entity.
    """
    if entity not in _FIELDS:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    return _Standardizer(entity, attributes).run()


def strong_keys(
    entity: str, values: Mapping[str, Any], warnings: Iterable[Issue] = ()
) -> list[str]:
    """Deterministic identifier keys ("tax:DE:136695976") linking records of one entity.

    Built from standardized `values` only where the attribute got no warning,
    so an invalid tax id never links two records. Sorted, without duplicates.
    """
    if entity not in _FIELDS:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    warned = {w.path for w in warnings}

    def get(path: str) -> str | None:
        node: Any = values
        for part in path.split("."):
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        if not isinstance(node, str) or path in warned:
            return None
        return node.strip() or None

    keys: set[str] = set()
    if entity == "customer":
        # Not e-mail: customer mailboxes are often shared (billing@agency).
        tax, cc = get("tax_id"), get("tax_country")
        if tax and cc:
            keys.add(f"tax:{cc}:{tax}")
        if duns := get("duns"):
            keys.add(f"duns:{duns}")
    elif entity == "legal_entity":
        cc = get("country")
        if cc and (tax := get("tax_id")):
            keys.add(f"tax:{cc}:{tax}")
        if cc and (reg := get("registration_number")):
            keys.add(f"reg:{cc}:{reg}")
    elif entity == "worker":
        if mail := get("email"):
            keys.add(f"email:{mail}")
        if nid := get("national_id"):
            keys.add(f"nid:{get('address.country') or '??'}:{nid}")
        if emp := get("employee_number"):
            keys.add(f"emp:{emp}")
    elif entity == "project" and (code := get("code")):
        keys.add(f"code:{''.join(code.split()).upper()}")
    return sorted(keys)
