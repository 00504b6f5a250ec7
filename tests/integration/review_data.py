"""Worker pairs that each open exactly one review task: the same full name, one birth date
and one town (the other record has neither)."""

from __future__ import annotations

from typing import Any

_GIVEN = [
    "Katarzyna",
    "Bartholomew",
    "Ingrid",
    "Oluwaseun",
    "Radomir",
    "Esperanza",
    "Thaddeus",
    "Marisol",
    "Wendelin",
    "Zofia",
]
_SYLLABLES = [
    "wie",
    "czo",
    "lind",
    "qvist",
    "brau",
    "mo",
    "tek",
    "han",
    "sor",
    "vel",
    "dur",
    "pik",
    "fen",
    "gar",
    "lux",
]
_CITIES = [("Freiburg", "79098"), ("Kassel", "34117"), ("Rostock", "18055"), ("Bamberg", "96047")]


def family_name(i: int) -> str:
    n = len(_SYLLABLES)
    parts = [
        _SYLLABLES[(i * 7) % n],
        _SYLLABLES[(i // n * 4 + 3) % n],
        _SYLLABLES[(i * 11 + 5) % n],
    ]
    return "".join(parts).capitalize() + "-" + _SYLLABLES[(i * 13 + 2) % n].capitalize() + "berg"


def pair(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(HCM's record with a birth date and a town, PSA's with the country only): the same
    full name is enough to ask, not to link, in a store of some thousand records or fewer
    (the prior at its cap, matching.model.PRIOR_CAP)."""
    city, postal = _CITIES[i % len(_CITIES)]
    base = {"given_name": _GIVEN[i % len(_GIVEN)], "family_name": family_name(i)}
    hcm = {
        **base,
        "date_of_birth": f"19{50 + i % 45}-0{1 + i % 9}-1{i % 9}",
        "address": {"city": city, "postal_code": postal, "country": "DE"},
    }
    return hcm, {**base, "address": {"country": "DE"}}


def batches(n: int, start: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Batch bodies for HCM and PSA holding `n` pairs."""
    hcm, psa = [], []
    for i in range(start, start + n):
        a, b = pair(i)
        hcm.append({"source_id": f"H-{i}", "attributes": a})
        psa.append({"source_id": f"P-{i}", "attributes": b})
    return hcm, psa


# Two pairs whose review tasks show structured values: a worker known to HCM and PSA
# with two addresses on one street and two employee numbers (digits swapped), and a
# project known to PSA and ERP with two start dates and two contract values.
# (source, entity, source_id, attributes), in the order to ingest them.
LETTER_RECORDS: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "hcm",
        "worker",
        "H-3",
        {
            "given_name": "Ingrid",
            "family_name": "Lindbrau",
            "date_of_birth": "1984-03-12",
            "employee_number": "E-10442",
            "hire_date": "2019-04-01",
            "address": {
                "line1": "5 Beaumont Close",
                "city": "St Ives",
                "postal_code": "TR26 1AB",
                "country": "GB",
            },
        },
    ),
    (
        "psa",
        "worker",
        "P-3",
        {
            "given_name": "Ingrid",
            "family_name": "Lindbrau",
            "employee_number": "E-10424",
            "hire_date": "2019-04-15",
            "address": {"line1": "7 Beaumont Close", "city": "St Ives", "country": "GB"},
        },
    ),
    (
        "psa",
        "project",
        "PR-4",
        {
            "name": "Supply chain audit",
            "start_date": "2026-06-01",
            "contract_value": {"amount": "250000", "currency": "EUR"},
        },
    ),
    (
        "erp",
        "project",
        "PR-6",
        {
            "name": "Supply chain audit",
            "start_date": "2026-06-15",
            "contract_value": {"amount": "245000.50", "currency": "EUR"},
        },
    ),
]
