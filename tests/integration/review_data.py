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
