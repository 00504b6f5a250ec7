"""Per-field standardizers: one raw value in, one standardized value (and maybe a warning) out.

A standardizer never raises on bad data: a value it cannot standardize comes
back unchanged (or, for identifiers, compacted) with a short warning, because
a source record with one bad phone number must still be ingested.

Tax ids are stored in the compact *national* form, without a VAT country
prefix ("DE 136 695 976", "DE136695976" and "136695976" with country DE all
become "136695976"); the country travels separately (customer.tax_country,
legal_entity.country), so strong keys read "tax:DE:136695976".
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
import pycountry
from cleanco import basename, typesources
from cleanco.clean import normalized as _cleanco_normalized
from cleanco.clean import strip_punct as _cleanco_strip_punct
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.util import get_cc_module

from matching.names import is_placeholder
from matching.text import clean_text, fold

__all__ = [
    "Standardized",
    "clean_text",
    "company_key",
    "company_name",
    "country",
    "currency",
    "duns",
    "email",
    "employee_number",
    "fold",
    "infer_tax_country",
    "iso_date",
    "legal_form",
    "national_id",
    "person_name",
    "phone",
    "postal_code",
    "registration_number",
    "tax_id",
    "website",
    "website_domain",
]

INVALID = "invalid"
UNVERIFIED = "unverified"
# A name that stands for no name ("N/A", "Unknown"): kept, read as missing by matching.
PLACEHOLDER = "placeholder"


@dataclass(frozen=True, slots=True)
class Standardized:
    """A standardized value and, when the raw value was bad or unverifiable, why.

    `code` is "invalid" (the value is wrong), "unverified" (it could not be
    checked, e.g. a tax id without a country) or "placeholder" (a name that
    stands for no name, "N/A": kept, and missing for matching); it is None when
    `warning` is.
    """

    value: Any
    warning: str | None = None
    code: str | None = None


def _ok(value: Any) -> Standardized:
    return Standardized(value)


def _invalid(value: Any, message: str) -> Standardized:
    return Standardized(value, message, INVALID)


def _unverified(value: Any, message: str) -> Standardized:
    return Standardized(value, message, UNVERIFIED)


def _placeholder(value: str) -> Standardized:
    return Standardized(value, "a placeholder, not a name: not used for matching", PLACEHOLDER)


# --- names -----------------------------------------------------------------


def person_name(raw: str) -> Standardized:
    """A person's name cleaned for display; warns if it has no letter at all.

    An empty name gets no warning: whether it may be empty is the record's rule.
    """
    value = clean_text(raw)
    if value and not any(c.isalpha() for c in value):
        return _invalid(value, "name contains no letter")
    if value and is_placeholder(value, person=True):
        return _placeholder(value)
    return _ok(value)


def company_name(raw: str) -> Standardized:
    """A company name cleaned for display (legal suffix kept: it is part of the name)."""
    value = clean_text(raw)
    if value and not any(c.isalnum() for c in value):
        return _invalid(value, "company name contains no letter or digit")
    if value and is_placeholder(company_key(value)):
        return _placeholder(value)
    return _ok(value)


def _strip_legal_suffixes(name: str) -> str:
    # cleanco removes suffixes in one pass over its term list, so "Acme Corp.
    # Ltd" loses only "Ltd"; repeat until nothing changes, but never strip a
    # name down to nothing ("Company Ltd" keeps "Company").
    for _ in range(5):
        try:
            shorter = basename(name)
        except (IndexError, ValueError):  # defensive: odd Unicode can misalign cleanco
            return name
        if shorter == name or not shorter.strip(" .,&"):
            return name
        name = shorter
    return name


def _join_initials(words: list[str]) -> list[str]:
    # "I.B.M." folds to "i b m"; join runs of single characters so it meets "IBM".
    out: list[str] = []
    run = ""
    for word in words:
        if len(word) == 1:
            run += word
            continue
        if run:
            out.append(run)
            run = ""
        out.append(word)
    if run:
        out.append(run)
    return out


# Words that hand-typed company names shorten, with the word each stands for ("Maplewind
# Intl Mfg" is "Maplewind International Manufacturing"). Legal forms are cleanco's.
ABBREVIATIONS = {
    "assoc": "associates",
    "assocs": "associates",
    "bros": "brothers",
    "cnslt": "consulting",
    "cnsltg": "consulting",
    "consult": "consulting",
    "dev": "development",
    "engg": "engineering",
    "engr": "engineering",
    "engrg": "engineering",
    "fin": "financial",
    "grp": "group",
    "hldg": "holding",
    "hldgs": "holdings",
    "inds": "industries",
    "indus": "industries",
    "intl": "international",
    "mfg": "manufacturing",
    "mgmt": "management",
    "mktg": "marketing",
    "natl": "national",
    "svc": "services",
    "svcs": "services",
    "sys": "systems",
    "tech": "technology",
    "techs": "technologies",
}


def company_key(raw: str) -> str:
    """Matching key of a company name: no legal suffix, folded, "&" read as "and", the
    common shortened words written out (`ABBREVIATIONS`).

    >>> [company_key(n) for n in ("The Acme Corp.", "ACME Corporation", "Acme Corp. Ltd")]
    ['acme', 'acme', 'acme']
    >>> company_key("Maplewind Intl Mfg")
    'maplewind international manufacturing'
    """
    name = _strip_legal_suffixes(clean_text(raw))
    words = fold(name.replace("&", " and ")).split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    # "Smith & Co" loses "Co" to cleanco and would leave a dangling "and".
    if len(words) > 1 and words[-1] == "and":
        words = words[:-1]
    words = [ABBREVIATIONS.get(w, w) for w in _join_initials(words)]
    return " ".join(words) if words else fold(raw)


@functools.lru_cache(maxsize=1)
def _legal_terms() -> dict[str, frozenset[str]]:
    """cleanco's legal terms, normalised the way cleanco compares them, to their types."""
    terms: dict[str, set[str]] = {}
    for legal_type, term in typesources():
        key = " ".join(_cleanco_strip_punct(_cleanco_normalized(term)).split())
        terms.setdefault(key, set()).add(legal_type)
    return {k: frozenset(v) for k, v in terms.items()}


def legal_form(raw: str) -> str | None:
    """The legal form cleanco reads from the name's suffix ("Acme Ltd" -> "Limited").

    None when there is no suffix or the suffix is ambiguous (cleanco lists
    "S.A." both as a corporation and as a limited liability company).
    """
    name = clean_text(raw)
    try:
        base = basename(name)
    except (IndexError, ValueError):
        return None
    if base == name or not base:
        return None
    suffix = name[len(base) :] if name.startswith(base) else ""
    key = " ".join(_cleanco_strip_punct(_cleanco_normalized(suffix)).split())
    legal_types = _legal_terms().get(key, frozenset())
    return next(iter(legal_types)) if len(legal_types) == 1 else None


# --- contact data ------------------------------------------------------------

# Pragmatic, not RFC 5322: one "@", something before it, a dotted domain with
# no empty labels, no whitespace anywhere.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


def email(raw: str) -> Standardized:
    """An e-mail address stripped and lower-cased; warns if it is not address-shaped."""
    value = raw.strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :]
    if not _EMAIL.fullmatch(value):
        return _invalid(raw, "not a valid e-mail address")
    return _ok(value)


def phone(raw: str, country: str | None) -> Standardized:
    """A phone number in E.164; `country` (ISO alpha-2) reads numbers without a "+".

    Numbers that cannot be read, or that phonenumbers says are not valid for
    their region, keep their raw form and get a warning.
    """
    text = raw.strip()
    region = country.strip().upper() if country else None
    if not text:
        return _ok(text)
    if not region:
        # "00" is the international prefix in most of the world; without a
        # region phonenumbers only understands "+".
        if text.startswith("00"):
            text = "+" + text[2:]
        if not text.startswith("+"):
            return _unverified(raw, "phone number not verified: no country to read it in")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return _invalid(raw, "not a valid phone number")
    if not phonenumbers.is_valid_number(number):
        return _invalid(raw, "not a valid phone number")
    return _ok(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def website(raw: str) -> Standardized:
    """A web address with lower-case scheme and host and no trailing slash.

    An address given without a scheme keeps having none ("www.acme.com").
    """
    text = raw.strip()
    if not text:
        return _ok(text)
    host = _host(text)
    if host is None:
        return _invalid(raw, "not a valid web address")
    has_scheme = "://" in text
    parts = urlsplit(text if has_scheme else f"//{text}")
    netloc = parts.netloc.lower()
    value = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))
    if not has_scheme:
        value = value.removeprefix("//")
    return _ok(value.rstrip("/"))


def _host(text: str) -> str | None:
    text = text.strip()
    try:
        host = urlsplit(text if "://" in text else f"//{text}").hostname
    except ValueError:  # e.g. an unbalanced "[" read as an IPv6 literal
        return None
    if not host:
        return None
    host = host.rstrip(".")
    labels = host.split(".")
    if len(labels) < 2 or not all(labels) or any(c.isspace() for c in host):
        return None
    return host


def website_domain(raw: str) -> str | None:
    """The host of a web address, lower case and without "www.", for matching."""
    host = _host(raw)
    if host is None:
        return None
    return re.sub(r"^www\d*\.", "", host)


# --- countries and currencies -----------------------------------------------

# Names people use that pycountry does not know (keys are `fold`ed).
_COUNTRY_ALIASES = {
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "u s": "US",
    "u s a": "US",
    "america": "US",
    "united states of america": "US",
    "holland": "NL",
    "the netherlands": "NL",
    "nederland": "NL",
    "deutschland": "DE",
    "osterreich": "AT",
    "schweiz": "CH",
    "suisse": "CH",
    "svizzera": "CH",
    "espana": "ES",
    "italia": "IT",
    "belgie": "BE",
    "belgique": "BE",
    "polska": "PL",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "suomi": "FI",
    "russia": "RU",
    "turkey": "TR",
    "ivory coast": "CI",
    "macedonia": "MK",
    "swaziland": "SZ",
    "burma": "MM",
    "uae": "AE",
    "el": "GR",  # Greece's VAT prefix, often typed as its country code
}


@functools.lru_cache(maxsize=4096)
def _country_code(text: str) -> str | None:
    # pycountry's lookup scans every country on a miss, so cache by input.
    alias = _COUNTRY_ALIASES.get(fold(text))
    if alias:
        return alias
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return None


def country(raw: str) -> Standardized:
    """An ISO 3166-1 alpha-2 code from a code (alpha-2/alpha-3/numeric) or a name."""
    text = clean_text(raw)
    if not text:
        return _ok(text)
    code = _country_code(text)
    if code is None:
        return _invalid(raw, "unknown country")
    return _ok(code)


_CURRENCY_SYMBOLS = {"€": "EUR", "£": "GBP"}


@functools.lru_cache(maxsize=512)
def _is_currency(code: str) -> bool:
    return pycountry.currencies.get(alpha_3=code) is not None


def currency(raw: str) -> Standardized:
    """An ISO 4217 currency code, upper case."""
    text = raw.strip()
    if not text:
        return _ok(text)
    code = _CURRENCY_SYMBOLS.get(text, text.upper())
    if len(code) != 3 or not code.isascii() or not _is_currency(code):
        return _invalid(raw, "unknown currency")
    return _ok(code)


# --- identifiers -------------------------------------------------------------

# stdnum module names (via get_cc_module) that hold tax or business numbers,
# tried in order: "vat" first, as most countries alias their VAT module to it.
_TAX_MODULES = (
    "vat", "tin", "ein", "abn", "bn", "gstin", "pan", "uen", "cnpj", "cpf", "rfc",
    "cuit", "nif", "cif", "nit", "ruc", "rut", "orgnr", "utr", "stnr",
)  # fmt: skip

# stdnum module names for personal national identifiers.
_NATIONAL_ID_MODULES = (
    "personalid", "ssn", "idnr", "bsn", "nir", "sin", "dni", "nie", "cpr", "hetu",
    "pesel", "cnp", "egn", "oib", "amka", "pps", "ik", "emso", "rc", "fodselsnummer",
    "personnummer", "kennitala", "nric", "aadhaar", "curp", "rrn", "codicefiscale",
    "asmens", "tckimlik", "cpf", "nik", "cnic", "ric", "ci", "cedula",
)  # fmt: skip

# VAT prefixes that are not the ISO code of their country.
_VAT_PREFIX_COUNTRY = {"EL": "GR", "XI": "GB"}

_SEPARATORS = re.compile(r"[\s.\-\u2010-\u2015]+")


def _compact(raw: str) -> str:
    return _SEPARATORS.sub("", raw).upper()


@functools.lru_cache(maxsize=512)
def _modules(cc: str, names: tuple[str, ...]) -> tuple[Any, ...]:
    found: list[Any] = []
    for name in names:
        module = get_cc_module(cc, name)
        # Aliases ("vat" and "tva" in France) point at one module: try it once.
        if module is not None and module not in found:
            found.append(module)
    return tuple(found)


def _validate(modules: tuple[Any, ...], number: str) -> str | None:
    """The compact form from the first module that accepts `number`, else None."""
    for module in modules:
        try:
            return str(module.validate(number))
        except ValidationError:
            continue
        except Exception:
            # Validators are fed arbitrary source text; one choking on it
            # (rather than raising ValidationError) must not fail an ingest.
            continue
    return None


def _alpha2(country_: str | None) -> str | None:
    if not country_ or not country_.strip():
        return None
    return _country_code(clean_text(country_))


def _vat_prefix_country(compact: str) -> str | None:
    """The country of an EU (or UK) VAT prefix at the start of `compact`, if any."""
    prefix = compact[:2]
    if prefix in _VAT_PREFIX_COUNTRY:
        return _VAT_PREFIX_COUNTRY[prefix]
    if prefix == "GB" or (prefix.lower() in eu_vat.MEMBER_STATES and prefix.isalpha()):
        return prefix
    return None


def infer_tax_country(raw: str) -> str | None:
    """The country (ISO alpha-2) of a tax id that is a valid prefixed EU or UK VAT number.

    >>> infer_tax_country("DE 136 695 976"), infer_tax_country("136695976")
    ('DE', None)
    """
    compact = _compact(raw)
    cc = _vat_prefix_country(compact)
    if cc is None:
        return None
    # The UK left the EU VAT system, so stdnum.eu.vat no longer knows "GB".
    if cc == "GB" and compact.startswith("GB"):
        return cc if _validate(_modules("gb", ("vat",)), compact) else None
    try:
        return cc if eu_vat.is_valid(compact) else None
    except Exception:  # see _validate: odd input must not fail an ingest
        return None


def tax_id(raw: str, country: str | None) -> Standardized:
    """A tax id compacted and validated for `country` (inferred from a VAT prefix if None).

    Valid numbers come back in stdnum's compact national form, without the
    VAT country prefix. Invalid ones come back upper case without spaces,
    dots or dashes, with a warning.
    """
    compact = _compact(raw)
    if not compact:
        return _ok(compact)
    cc = _alpha2(country) or infer_tax_country(compact)
    if cc is None:
        prefixed = _vat_prefix_country(compact)
        if prefixed is not None:
            return _invalid(compact, f"not a valid {prefixed} VAT number")
        return _unverified(compact, "tax id not validated: country unknown")
    valid = _validate(_modules(cc.lower(), _TAX_MODULES), compact)
    if valid is not None:
        return _ok(valid)
    other = infer_tax_country(compact)
    if other is not None and other != cc:
        return _invalid(compact, f"tax id is a {other} VAT number, not a {cc} one")
    return _invalid(compact, f"not a valid {cc} tax id")


def duns(raw: str) -> Standardized:
    """A D-U-N-S number as its 9 digits."""
    digits = "".join(c for c in raw if c.isdigit() and c.isascii())
    if not raw.strip():
        return _ok("")
    if len(digits) != 9:
        return _invalid(raw, "a D-U-N-S number has 9 digits")
    return _ok(digits)


def registration_number(raw: str) -> Standardized:
    """A company registration number, upper case without spaces (not validated)."""
    return _ok("".join(raw.split()).upper())


def national_id(raw: str, country: str | None) -> Standardized:
    """A national identifier compacted, and validated when stdnum knows `country`'s ids.

    Numbers that cannot be checked (no country, or no stdnum module for it)
    are kept compact without a warning; only numbers that fail a check warn.
    """
    compact = _compact(raw)
    cc = _alpha2(country)
    if not compact or cc is None:
        return _ok(compact)
    modules = _modules(cc.lower(), _NATIONAL_ID_MODULES)
    if not modules:
        return _ok(compact)
    valid = _validate(modules, compact)
    if valid is None:
        return _invalid(compact, f"not a valid {cc} national id")
    return _ok(valid)


def employee_number(raw: str) -> Standardized:
    """An employee number, upper case without spaces."""
    return _ok("".join(raw.split()).upper())


def postal_code(raw: str, country: str | None = None) -> Standardized:
    """A postal code, upper case with single spaces (`country` is for future checks)."""
    del country  # accepted so callers need not change when per-country checks arrive
    return _ok(" ".join(raw.split()).upper())


def iso_date(raw: str) -> Standardized:
    """An ISO 8601 calendar date (YYYY-MM-DD); anything else is kept with a warning."""
    text = raw.strip()
    if not text:
        return _ok(text)
    try:
        return _ok(dt.date.fromisoformat(text).isoformat())
    except ValueError:
        return _invalid(raw, "not an ISO date (YYYY-MM-DD)")
