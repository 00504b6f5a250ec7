"""A seeded generator of professional-services master data with a known truth.

Two datasets, both in bench/datasets.py's shape (docs/match_data.md describes
every variation and its rate):

- workers(seed): people of a consulting firm as HCM, ERP (payroll and vendors)
  and PSA (resources) hold them: nicknames, swapped given and family names,
  typos, missing birth dates, old e-mail addresses, surnames changed after a
  marriage (with the employee number, birth date or national id kept), moved
  addresses, "Jr" / "Sr" / "II" / "III" at the end of some family names;
  hard negatives: namesakes (some born the same year), siblings and twins at
  one address, fathers and sons of one name.
- companies(seed): the firm's customers as CRM, ERP and PSA hold them: legal
  suffix variants (Acme Corp / ACME Corporation / Acme Corp. Ltd), "&"/"and",
  "International"/"Intl", initialisms, typos, moved addresses, missing tax
  ids, shared generic e-mail addresses; companies typed by hand into CRM and
  PSA with only a name and a street address (typos in short words, "Svcs",
  missing or reordered words, no street number, "St" for "Street"), "N/A" or
  "Unknown" for a name, branch offices (the same customer at other addresses);
  hard negatives: subsidiaries of one group in several countries (Acme
  Germany GmbH, Acme UK Ltd: one brand and website, different tax ids),
  same-named companies in other countries, and generic names ("Global
  Solutions") in several cities.

Everything is drawn from one `random.Random(seed)` and one Faker seeded with
the same seed, so a seed gives the same records for a given Faker version
(Dataset.fingerprint() tells); the workers' household national ids and
generational suffixes come from generators of their own seeded from the same
seed, so that every other value is the same with or without them. Tax ids
are valid for their country (python-stdnum checks each), as are national ids
where stdnum knows them.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

import phonenumbers
from faker import Faker
from stdnum import luhn
from stdnum.de import idnr as de_idnr
from stdnum.de import vat as de_vat
from stdnum.gb import vat as gb_vat
from stdnum.nl import bsn as nl_bsn
from stdnum.nl import btw as nl_btw
from stdnum.us import ein as us_ein
from stdnum.us import ssn as us_ssn

from bench.datasets import Dataset, Key, _notes_for

__all__ = ["CompanyConfig", "WorkerConfig", "companies", "workers"]

LOCALES = {"US": "en_US", "GB": "en_GB", "DE": "de_DE", "NL": "nl_NL", "FR": "fr_FR"}

# Formal given name -> nicknames people go by (the generator's own table; the
# hub ships its own, so the benchmark does not grade the hub on its own list).
NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Will", "Billy"), "Robert": ("Bob", "Rob", "Bobby"),
    "Elizabeth": ("Liz", "Beth", "Betty", "Eliza"), "Margaret": ("Maggie", "Peggy", "Meg"),
    "James": ("Jim", "Jimmy"), "Richard": ("Rick", "Dick", "Rich"),
    "Katherine": ("Kate", "Kathy", "Katie"), "Jennifer": ("Jen", "Jenny"),
    "Michael": ("Mike", "Mick"), "Thomas": ("Tom", "Tommy"), "Joseph": ("Joe", "Joey"),
    "Charles": ("Charlie", "Chuck"), "Christopher": ("Chris",), "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",), "Anthony": ("Tony",), "Steven": ("Steve",),
    "Andrew": ("Andy", "Drew"), "Edward": ("Ed", "Ted", "Eddie"),
    "Patricia": ("Pat", "Patty", "Trish"), "Susan": ("Sue", "Susie"),
    "Deborah": ("Deb", "Debbie"), "Rebecca": ("Becky",), "Alexander": ("Alex", "Sandy"),
    "Nicholas": ("Nick",), "Benjamin": ("Ben",), "Samuel": ("Sam",), "Jonathan": ("Jon",),
    "Timothy": ("Tim",), "Kenneth": ("Ken",), "Ronald": ("Ron",), "Gregory": ("Greg",),
    "Jacqueline": ("Jackie",), "Victoria": ("Vicky", "Tori"), "Catherine": ("Cathy", "Kate"),
    "Johannes": ("Hans", "Jan"), "Wilhelm": ("Willi",), "Friedrich": ("Fritz",),
    "Alexandra": ("Sasha", "Alex"), "Stephanie": ("Steph",), "Abigail": ("Abby",),
    "Christine": ("Chris", "Tina"), "Theodore": ("Ted", "Theo"), "Frederick": ("Fred",),
    "Lawrence": ("Larry",), "Gerald": ("Jerry",), "Peter": ("Pete",), "Barbara": ("Barb",),
    "Josephine": ("Jo", "Josie"), "Susanne": ("Susi",), "Cornelis": ("Kees",),
    "Hendrik": ("Henk",), "Wilhelmina": ("Mina", "Willemijn"), "Maximilian": ("Max",),
}  # fmt: skip

FIRM_DOMAIN = "meridian-partners.com"
LEGACY_DOMAIN = "harbourconsulting.co.uk"  # the firm acquired Harbour: old addresses remain
FREEMAIL = ("gmail.com", "outlook.com", "yahoo.com", "gmx.de", "hotmail.co.uk", "ziggo.nl")
FEMALE_FORMAL_NAMES = frozenset(
    "Elizabeth Margaret Katherine Jennifer Patricia Susan Deborah Rebecca Jacqueline Victoria "
    "Catherine Alexandra Stephanie Abigail Christine Barbara Josephine Susanne Wilhelmina".split()
)
LATEST_BIRTH_YEAR = 2002  # people are born 1958 to 2002
# Generational suffixes in the US and Britain as (senior, junior) spellings (Germany:
# "sen." and "jun."), and alone (a "Jr" whose father is not in the data); how often a
# record writes the suffix, by source.
GENERATIONS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("Sr", "Sr."), ("Jr", "Jr.")),
    ((), ("II",)),
    (("II",), ("III",)),
    ((), ("Jr", "Jr.")),
)
ALONE_SUFFIXES: tuple[tuple[str, ...], ...] = (("Jr", "Jr."), ("II",), ("III",), ("Sr", "Sr."))
SUFFIX_WRITTEN = {"hcm": 0.6, "erp": 0.45, "psa": 0.3}


# --- shared helpers ------------------------------------------------------------


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _slug(text: str) -> str:
    return "".join(c for c in _ascii(text).lower() if c.isalnum())


_KEYBOARD = "qwertyuiopasdfghjklzxcvbnm"


def typo(rng: random.Random, text: str) -> str:
    """One keying error in a letter of `text`: substitution, deletion, insertion or swap."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if len(letters) < 3:
        return text
    i = rng.choice(letters[1:])  # people rarely mistype the first letter
    op = rng.random()
    if op < 0.35:
        j = _KEYBOARD.find(text[i].lower())
        near = _KEYBOARD[max(j - 1, 0) : j + 2].replace(text[i].lower(), "") if j >= 0 else ""
        new = rng.choice(near or _KEYBOARD)
        new = new.upper() if text[i].isupper() else new
        return text[:i] + new + text[i + 1 :]
    if op < 0.6:
        return text[:i] + text[i + 1 :]
    if op < 0.8:
        return text[:i] + text[i] + text[i:]
    if i + 1 < len(text) and text[i + 1].isalpha():
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + text[i + 1 :]


def digit_typo(rng: random.Random, text: str) -> str:
    """One keying error in a digit of `text`: a wrong digit or two neighbours swapped."""
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    i = rng.choice(digits)
    nxt = next((j for j in digits if j > i), None)
    if nxt is not None and text[nxt] != text[i] and rng.random() < 0.5:
        chars = list(text)
        chars[i], chars[nxt] = chars[nxt], chars[i]
        return "".join(chars)
    wrong = rng.choice([d for d in string.digits if d != text[i]])
    return text[:i] + wrong + text[i + 1 :]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _until_valid(rng: random.Random, make: Any, is_valid: Any) -> str:
    for _ in range(100_000):
        candidate = make(rng)
        if is_valid(candidate):
            return str(candidate)
    raise RuntimeError("no valid number found")  # pragma: no cover - would be a bug


def phone_number(rng: random.Random, country: str, kind: str) -> str:
    """A number phonenumbers holds valid for `country`, in E.164."""
    number_type = (
        phonenumbers.PhoneNumberType.MOBILE
        if kind == "mobile"
        else phonenumbers.PhoneNumberType.FIXED_LINE
    )
    example = phonenumbers.example_number_for_type(country, number_type)
    national = str(example.national_number)
    keep = max(len(national) - 6, 1)
    for _ in range(1000):
        candidate = national[:keep] + _digits(rng, len(national) - keep)
        parsed = phonenumbers.parse(f"+{example.country_code}{candidate}")
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def phone_as_written(rng: random.Random, e164: str) -> str:
    """The number as a source system happens to hold it: E.164, international or national."""
    parsed = phonenumbers.parse(e164)
    style = rng.choice(
        (
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.NATIONAL,
        )
    )
    return phonenumbers.format_number(parsed, style)


# Country as the different systems write it; the hub standardizes all of them.
_COUNTRY_SPELLINGS = {
    "US": ("US", "USA", "United States"),
    "GB": ("GB", "UK", "United Kingdom"),
    "DE": ("DE", "Germany", "Deutschland"),
    "NL": ("NL", "Netherlands", "The Netherlands"),
    "FR": ("FR", "France"),
}


def _address(fake: Faker, country: str) -> dict[str, str]:
    local = fake[LOCALES[country]]
    address = {
        "line1": local.street_address().replace("\n", ", "),
        "city": local.city(),
        "postal_code": local.postcode(),
        "country": country,
    }
    if country == "US":
        address["region"] = local.state_abbr()
    return address


def _address_as_written(rng: random.Random, address: dict[str, str]) -> dict[str, str]:
    written = dict(address)
    written["country"] = rng.choice(_COUNTRY_SPELLINGS[address["country"]])
    return written


def _assign_ids(
    rng: random.Random, records: list[dict[str, Any]], prefixes: dict[str, str]
) -> None:
    """Shuffle the records and give each a source id unique within its source."""
    rng.shuffle(records)
    counts = Counter(r["source"] for r in records)
    pools = {s: iter(rng.sample(range(100_000, 1_000_000), n)) for s, n in counts.items()}
    for record in records:
        record["source_id"] = f"{prefixes[record['source']]}{next(pools[record['source']])}"


def _build(
    name: str,
    entity: Any,
    records: list[dict[str, Any]],
    truth_of: list[str],
    stats: Counter[str],
) -> Dataset:
    truth: dict[Key, str] = {}
    for record, true_id in zip(records, truth_of, strict=True):
        truth[(record["source"], record["source_id"])] = true_id
    for record in records:
        del record["_truth"]
    notes = [
        "variations: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())),
        *_notes_for(records),
    ]
    return Dataset(name, entity, records, truth, notes=notes)


# --- workers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Sizes and rates of the worker data (probabilities per person or per record)."""

    people: int = 5000
    contractor_share: float = 0.12  # in PSA and ERP (as vendors), not in HCM
    in_psa: float = 0.85
    in_erp: float = 0.60
    psa_duplicate: float = 0.025  # a second PSA resource for the same person
    erp_duplicate: float = 0.015  # an employee and a vendor record in ERP
    formal_name_with_nickname: float = 0.45  # people named from the nickname table
    married: float = 0.05  # surname changed; HCM has the new one
    namesake: float = 0.04  # a different person with the same given and family name
    namesake_same_year: float = 0.5  # ... of whom born in the same year
    sibling: float = 0.01  # same family name and address, other given name
    twin: float = 0.3  # ... of whom also the same birth date
    junior: float = 0.005  # same full name and address, a generation younger
    # National ids drawn apart from the rest (their own seeded generator), so that
    # every other value is the same with or without them:
    housemate_id: float = 0.3  # a sibling's or junior's HCM/ERP record with the housemate's id
    second_id: float = 0.01  # an HCM/ERP record with another valid id of the same person
    typo_hcm: float = 0.02  # per name field
    typo_other: float = 0.07
    swapped_names: float = 0.03  # given and family name swapped (ERP and PSA)
    upper_case_erp: float = 0.2
    dob_transposed: float = 0.015  # day and month swapped, or one digit off
    # Generational suffixes, drawn apart from the rest like national ids: a junior
    # and the senior of his household, and a few US and GB people with no namesake
    # in the firm, have "Jr", "Sr", "II" or "III" at the end of the family name in
    # some of their records (SUFFIX_WRITTEN gives the rate per source).
    suffix_alone: float = 0.015


@dataclass
class _Person:
    pid: str
    country: str
    given: str
    middle: str | None
    family: str
    maiden: str | None
    dob: dt.date
    national_id: str | None
    employee_number: str | None
    email: str
    old_email: str
    personal_email: str
    phone: str
    address: dict[str, str]
    old_address: dict[str, str]
    housemate: _Person | None = None  # the earlier person of the household (hard negatives)
    suffix: tuple[str, ...] = ()  # the ways records write a generational suffix: ("Jr", "Jr.")
    female: bool = False


def _national_id(rng: random.Random, country: str) -> str | None:
    if country == "US":
        ssn = _until_valid(rng, lambda r: _digits(r, 9), us_ssn.is_valid)
        return f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}"
    if country == "GB":  # National Insurance number: format only (stdnum has no check)
        letters = "ABCEGHJKLMNPRSTWXYZ"
        return rng.choice(letters) + rng.choice(letters) + _digits(rng, 6) + rng.choice("ABCD")
    if country == "DE":
        return _until_valid(rng, lambda r: str(r.randint(1, 9)) + _digits(r, 10), de_idnr.is_valid)
    if country == "NL":
        return _until_valid(rng, lambda r: _digits(r, 9), nl_bsn.is_valid)
    return None


class _Workers:
    def __init__(self, seed: int, config: WorkerConfig) -> None:
        self.rng = random.Random(seed)
        self.id_rng = random.Random(f"national ids {seed}")
        self.suffix_rng = random.Random(f"generational suffixes {seed}")
        self.generations: set[str] = set()  # pids of juniors and their seniors
        self.fake = Faker(list(LOCALES.values()))
        self.fake.seed_instance(seed)
        self.config = config
        self.stats: Counter[str] = Counter()
        self.used_locals: Counter[str] = Counter()
        self.people: list[_Person] = []

    def _work_email(self, given: str, family: str, domain: str = FIRM_DOMAIN) -> str:
        local = f"{_slug(given)}.{_slug(family)}"
        self.used_locals[local] += 1
        n = self.used_locals[local]
        return f"{local}{n if n > 1 else ''}@{domain}"

    def person(self, i: int, country: str | None = None) -> _Person:
        rng, config = self.rng, self.config
        country = country or rng.choices(("US", "GB", "DE", "NL"), (0.35, 0.3, 0.2, 0.15))[0]
        local = self.fake[LOCALES[country]]
        female = rng.random() < 0.5
        if rng.random() < config.formal_name_with_nickname:
            given = rng.choice(list(NICKNAMES))
            female = given in FEMALE_FORMAL_NAMES
        else:
            given = local.first_name_female() if female else local.first_name_male()
        family = local.last_name()
        dob = dt.date(1958, 1, 1) + dt.timedelta(days=rng.randrange(365 * 45))
        maiden = None
        if rng.random() < config.married:
            maiden, family = family, local.last_name()
            self.stats["married (new surname in HCM)"] += 1
        address = _address(self.fake, country)
        pid = f"P{i:05d}"
        return _Person(
            pid=pid,
            country=country,
            given=given,
            middle=(local.first_name() if rng.random() < 0.25 else None),
            family=family,
            maiden=maiden,
            dob=dob,
            national_id=_national_id(rng, country),
            employee_number=f"E{100000 + i:06d}",
            email=self._work_email(given, family),
            old_email=self._work_email(given, maiden or family, LEGACY_DOMAIN),
            personal_email=(
                f"{_slug(given)[:1]}{_slug(maiden or family)}{dob.year % 100:02d}"
                f"@{rng.choice(FREEMAIL)}"
            ),
            phone=phone_number(rng, country, "mobile"),
            address=address,
            old_address=_address(self.fake, country),
            female=female,
        )

    def hard_negative(self, i: int, other: _Person) -> _Person:
        """A different person made to look like `other`."""
        rng, config = self.rng, self.config
        person = self.person(i, other.country)
        kind = rng.random()
        share = config.namesake + config.sibling + config.junior
        if kind < config.namesake / share:
            person.given, person.family, person.maiden = other.given, other.family, None
            if rng.random() < config.namesake_same_year:
                start = dt.date(other.dob.year, 1, 1)
                day = start + dt.timedelta(days=rng.randrange(365))
                person.dob = day if day != other.dob else day + dt.timedelta(days=1)
                self.stats["hard negative: namesake born the same year"] += 1
            else:
                self.stats["hard negative: namesake"] += 1
        elif kind < (config.namesake + config.sibling) / share:
            person.family, person.maiden = other.family, None
            person.address = dict(other.address)
            person.housemate = other
            if rng.random() < config.twin:
                person.dob = other.dob
                self.stats["hard negative: twin (same birth date and address)"] += 1
            else:
                self.stats["hard negative: sibling at the same address"] += 1
        else:
            person.given, person.family, person.maiden = other.given, other.family, None
            person.address = dict(other.address)
            person.housemate = other
            years = rng.randint(24, 34)
            person.female = other.female
            self.stats["hard negative: junior (same name and address)"] += 1
            if other.dob.year + years <= LATEST_BIRTH_YEAR:
                person.dob = other.dob.replace(year=other.dob.year + years, day=1)
                self._generations(other, person)
            else:  # `other` is too young to have a grown-up child: `person` is the senior
                person.dob = other.dob.replace(year=other.dob.year - years, day=1)
                self._generations(person, other)
        person.email = self._work_email(person.given, person.family)
        person.old_email = self._work_email(person.given, person.family, LEGACY_DOMAIN)
        return person

    def _generations(self, senior: _Person, junior: _Person) -> None:
        """How the records of a senior and a junior of one name write their suffixes."""
        self.generations |= {senior.pid, junior.pid}
        if senior.female or senior.country not in ("US", "GB", "DE"):
            return  # a mother and daughter of one name, or a country without the habit
        if junior.suffix:  # the junior already writes one: the senior writes none
            return
        if senior.suffix:  # the senior is a "Jr" or a "II" himself
            junior.suffix = ("III",)
            return
        if senior.country == "DE":
            senior.suffix, junior.suffix = ("sen.",), ("jun.",)
            return
        senior.suffix, junior.suffix = self.suffix_rng.choices(GENERATIONS, (6, 1.5, 1.5, 1))[0]

    def _write_suffixes(self, records: list[dict[str, Any]]) -> None:
        """Append the person's generational suffix to the family name field of some records.

        A record whose names were swapped gets it after the given name, where that
        record holds the family name.
        """
        rng, stats = self.suffix_rng, self.stats
        people = {p.pid: p for p in self.people}
        for record in records:
            swapped = record.pop("_swapped", False)
            person = people[record["_truth"]]
            if not person.suffix or rng.random() >= SUFFIX_WRITTEN[record["source"]]:
                continue
            field = "given_name" if swapped else "family_name"
            name = record["attributes"][field]
            suffix = rng.choice(person.suffix)
            record["attributes"][field] = f"{name} {suffix.upper() if name.isupper() else suffix}"
            if person.pid in self.generations:
                stats["generational suffix written (junior or senior of one household)"] += 1
            else:
                stats["generational suffix written (no junior or senior in the data)"] += 1

    def _name(self, value: str, rate: float) -> str:
        if self.rng.random() < rate:
            self.stats["typo in a name"] += 1
            return typo(self.rng, value)
        return value

    def _dob(self, dob: dt.date) -> str:
        if self.rng.random() < self.config.dob_transposed:
            self.stats["birth date with day/month swapped or one field off"] += 1
            if dob.day <= 12 and dob.day != dob.month:
                return dob.replace(month=dob.day, day=dob.month).isoformat()
            return (dob + dt.timedelta(days=self.rng.choice((-1, 1)))).isoformat()
        return dob.isoformat()

    def record(self, person: _Person, source: str, contractor: bool) -> dict[str, Any]:
        rng, config, stats = self.rng, self.config, self.stats
        rate = config.typo_hcm if source == "hcm" else config.typo_other
        given, family = person.given, person.family
        nicknames = NICKNAMES.get(given, ())
        if source != "hcm" and nicknames and rng.random() < (0.4 if source == "psa" else 0.1):
            given = rng.choice(nicknames)
            stats["nickname"] += 1
        kept_maiden = False
        if person.maiden and source != "hcm" and rng.random() < (0.6 if source == "psa" else 0.4):
            family, kept_maiden = person.maiden, True
            stats["old (maiden) surname kept"] += 1
        attributes: dict[str, Any] = {
            "given_name": self._name(given, rate),
            "family_name": self._name(family, rate),
        }
        swapped = False
        if source != "hcm" and rng.random() < config.swapped_names:
            attributes["given_name"], attributes["family_name"] = (
                attributes["family_name"],
                attributes["given_name"],
            )
            stats["given and family name swapped"] += 1
            swapped = True
        if source == "erp" and rng.random() < config.upper_case_erp:
            attributes = {k: v.upper() for k, v in attributes.items()}
        if source == "hcm" and person.middle and rng.random() < 0.7:
            attributes["middle_name"] = person.middle
        dob_rate = {"hcm": 0.97, "erp": 0.55, "psa": 0.10}[source]
        if rng.random() < dob_rate:
            attributes["date_of_birth"] = self._dob(person.dob)
        else:
            stats["birth date missing"] += 1
        id_rate = {"hcm": 0.92, "erp": 0.75, "psa": 0.0}[source]
        if person.national_id and rng.random() < id_rate:
            nid = person.national_id
            if source == "erp" and rng.random() < 0.02:
                nid = digit_typo(rng, nid)
                stats["national id mistyped"] += 1
            attributes["national_id"] = self._other_id(person, nid)
        number_rate = {"hcm": 1.0, "erp": 0.8, "psa": 0.45}[source]
        if not contractor and rng.random() < number_rate:
            number = person.employee_number or ""
            attributes["employee_number"] = number.lower() if rng.random() < 0.1 else number
        attributes.update(self._contact(person, source, kept_maiden))
        return {"source": source, "entity": "worker", "attributes": attributes, "_swapped": swapped}

    def _other_id(self, person: _Person, nid: str) -> str:
        """`nid`, or (drawn from `id_rng`) the housemate's id or a second id of the person."""
        draw = self.id_rng.random()
        mate = person.housemate
        if mate is not None and mate.national_id and draw < self.config.housemate_id:
            self.stats["hard negative: national id of the housemate"] += 1
            return mate.national_id
        if draw > 1 - self.config.second_id:
            second = _national_id(self.id_rng, person.country)
            if second and second != nid:
                self.stats["a second national id of the same person"] += 1
                return second
        return nid

    def _contact(self, person: _Person, source: str, kept_maiden: bool) -> dict[str, Any]:
        rng, stats = self.rng, self.stats
        out: dict[str, Any] = {}
        draw = rng.random()
        if source == "hcm":
            out["email"] = person.email
        elif kept_maiden and draw < 0.6:
            out["email"] = person.old_email
            stats["old e-mail address"] += 1
        elif source == "psa":
            if draw < 0.75:
                out["email"] = person.email
            elif draw < 0.9:
                out["email"] = person.old_email
                stats["old e-mail address"] += 1
        elif draw < 0.45:
            out["email"] = person.email
        elif draw < 0.65:
            out["email"] = person.old_email
            stats["old e-mail address"] += 1
        elif draw < 0.85:
            out["email"] = person.personal_email
            stats["personal e-mail address"] += 1
        if rng.random() < {"hcm": 0.75, "erp": 0.4, "psa": 0.5}[source]:
            out["phone"] = phone_as_written(rng, person.phone)
        draw = rng.random()
        if source == "psa":
            if draw < 0.7:
                out["address"] = {"city": person.address["city"], "country": person.country}
        elif source == "erp" and draw < 0.3:
            out["address"] = _address_as_written(rng, person.old_address)
            stats["moved address (old one kept)"] += 1
        elif draw < 0.93:
            out["address"] = _address_as_written(rng, person.address)
        return out

    def generate(self) -> Dataset:
        rng, config = self.rng, self.config
        records: list[dict[str, Any]] = []
        share_negative = config.namesake + config.sibling + config.junior
        for i in range(config.people):
            if self.people and rng.random() < share_negative:
                person = self.hard_negative(i, rng.choice(self.people))
            else:
                person = self.person(i)
                if (
                    person.country in ("US", "GB")
                    and not person.female
                    and self.suffix_rng.random() < config.suffix_alone
                ):
                    person.suffix = self.suffix_rng.choices(ALONE_SUFFIXES, (5, 2, 2, 1))[0]
                    self.stats["people with a generational suffix (no junior or senior)"] += 1
            self.people.append(person)
            contractor = rng.random() < config.contractor_share
            sources = [] if contractor else ["hcm"]
            if rng.random() < (0.95 if contractor else config.in_psa):
                sources.append("psa")
                if rng.random() < config.psa_duplicate:
                    sources.append("psa")
                    self.stats["second record in the same source"] += 1
            if rng.random() < (0.9 if contractor else config.in_erp):
                sources.append("erp")
                if rng.random() < config.erp_duplicate:
                    sources.append("erp")
                    self.stats["second record in the same source"] += 1
            if not sources:
                sources = ["psa"]
            for source in sources:
                record = self.record(person, source, contractor)
                record["_truth"] = person.pid
                records.append(record)
        self._write_suffixes(records)
        _assign_ids(rng, records, {"hcm": "W", "erp": "V", "psa": "R-"})
        truth_of = [r["_truth"] for r in records]
        return _build("ps_workers", "worker", records, truth_of, self.stats)


def workers(seed: int = 0, config: WorkerConfig | None = None) -> Dataset:
    """Worker records from HCM, ERP and PSA, ~2.4 per person (12,000 for 5,000 people)."""
    return _Workers(seed, config or WorkerConfig()).generate()


# --- companies -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompanyConfig:
    """Sizes and rates of the customer data (probabilities per company or per record)."""

    companies: int = 2000
    in_crm: float = 0.95
    in_erp: float = 0.75
    in_psa: float = 0.65
    crm_duplicate: float = 0.06  # two sales reps created the same account
    erp_duplicate: float = 0.02
    subsidiary: float = 0.07  # a group's company in another country
    same_name_abroad: float = 0.04  # an unrelated company of the same name elsewhere
    generic_name: float = 0.03  # "Global Solutions": another one in another city
    typo: float = 0.05
    moved: float = 0.15  # an ERP or PSA record with the old address
    tax_id_in_erp: float = 0.85
    tax_id_in_crm: float = 0.3
    shared_email: float = 0.04  # an outsourced accounts-payable address of many clients
    # Typed by people: a company whose CRM and PSA records hold only a name and a
    # street address (no tax id, D-U-N-S, website, e-mail or phone), keyed by hand.
    name_and_address_only: float = 0.3
    typed_typo: float = 0.3  # per typed record: a keying error in a word of the name
    typed_second_typo: float = 0.25  # ... of which a second one
    typed_abbreviation: float = 0.5  # per abbreviable word: "Intl", "Svcs", "Mfg" ...
    typed_word_missing: float = 0.1
    typed_words_reordered: float = 0.1  # "Holmes & Baker", "Northwind Consulting Intl"
    typed_lower_case: float = 0.1
    street_number_missing: float = 0.15  # per typed record
    street_type_abbreviated: float = 0.4  # per typed record; 0.1 elsewhere
    placeholder_name: float = 0.01  # per record: "N/A", "Unknown", "TBD", "-"
    branch: float = 0.06  # companies with two or three sites, one legal entity


# Legal form -> how records write it; "" is the name with no suffix.
LEGAL_FORMS: dict[str, dict[str, tuple[str, ...]]] = {
    "US": {
        "Corporation": ("Corporation", "Corp", "Corp.", "CORP", "Corp. Ltd", ""),
        "Inc.": ("Inc.", "Inc", "Incorporated", ""),
        "LLC": ("LLC", "L.L.C.", ""),
    },
    "GB": {"Limited": ("Limited", "Ltd", "Ltd.", "LTD", ""), "PLC": ("PLC", "plc", "")},
    "DE": {"GmbH": ("GmbH", "G.m.b.H.", "GMBH", ""), "AG": ("AG", "")},
    "FR": {"SAS": ("SAS", "S.A.S.", ""), "SA": ("SA", "S.A.", "")},
    "NL": {"B.V.": ("B.V.", "BV", "B.V", ""), "N.V.": ("N.V.", "NV", "")},
}
_COUNTRY_WORD = {"US": "USA", "GB": "UK", "DE": "Germany", "FR": "France", "NL": "Netherlands"}
INDUSTRIES = (
    "Consulting", "Logistics", "Software", "Engineering", "Healthcare", "Energy", "Media",
    "Analytics", "Manufacturing", "Retail", "Capital", "Foods", "Pharma", "Telecom",
)  # fmt: skip
_PREFIXES = (
    "North", "Blue", "Silver", "Red", "Green", "Oak", "Summit", "Bright", "Clear", "Iron",
    "Stone", "River", "Lake", "Sun", "Star", "Eagle", "Falcon", "Pine", "Maple", "Harbor",
    "West", "East", "Cedar", "Granite", "Crystal", "Golden", "Swift", "Nova", "Vector",
)  # fmt: skip
_SUFFIXES = (
    "wind", "peak", "stone", "field", "bridge", "gate", "point", "wood", "way", "line",
    "well", "light", "view", "ridge", "crest", "hill", "haven", "brook", "core", "wave",
)  # fmt: skip
_ADJECTIVES = (
    "Advanced", "Global", "United", "General", "Integrated", "Applied", "Strategic",
    "Premier", "Allied", "Consolidated", "Pacific", "Atlantic", "Continental",
)  # fmt: skip
_NOUNS = (
    "Business", "Data", "Energy", "Health", "Media", "Micro", "Network", "Power",
    "Research", "Software", "Systems", "Technology", "Freight", "Medical",
)  # fmt: skip
_TAILS = ("Machines", "Solutions", "Services", "Partners", "Group", "Holdings", "Industries")
SHARED_EMAILS = (
    "invoices@ap-outsource.com",
    "accounts.payable@sharedservices-hub.com",
    "ap@finance-bpo.co.uk",
    "rechnungen@buchhaltung-service.de",
)
GENERIC_CORES = ("Global Solutions", "United Services", "General Consulting", "Prime Partners")
# How people shorten words of a company name when they type it.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "International": ("Intl", "Int'l", "Intl."), "Services": ("Svcs", "Svcs.", "Servs"),
    "Solutions": ("Solns", "Sol."), "Technology": ("Tech",), "Manufacturing": ("Mfg", "Mfg."),
    "Engineering": ("Eng", "Engg."), "Consulting": ("Consult.", "Cnsltg"), "Systems": ("Sys",),
    "Partners": ("Ptnrs",), "Group": ("Grp",), "Holdings": ("Hldgs",), "Industries": ("Inds",),
    "Healthcare": ("Health Care", "Hlthcare"), "Logistics": ("Log.",), "Software": ("SW",),
    "Analytics": ("Anlytcs",), "Capital": ("Cap.",), "Business": ("Bus.",),
    "Network": ("Ntwk",), "Medical": ("Med.",), "Research": ("Rsrch",),
    "Advanced": ("Adv.",), "General": ("Gen.",), "Consolidated": ("Consol.",),
    "Continental": ("Cont.",), "&": ("and", "+"), "and": ("&",),
}  # fmt: skip
PLACEHOLDER_NAMES = ("N/A", "n/a", "Unknown", "UNKNOWN", "TBD", "-", "?", "tbc")
# Street types as written out -> as people abbreviate them (whole words; French
# "avenue" too), and the endings of German and Dutch compound street names.
STREET_TYPES: dict[str, str] = {
    "Street": "St", "Road": "Rd", "Avenue": "Ave", "Drive": "Dr", "Lane": "Ln",
    "Boulevard": "Blvd", "Court": "Ct", "Place": "Pl", "Square": "Sq", "Terrace": "Ter",
    "Parkway": "Pkwy", "Parkways": "Pkwys", "Highway": "Hwy", "Mountain": "Mtn",
    "Mountains": "Mtns", "Heights": "Hts", "Crescent": "Cres", "Suite": "Ste",
    "Apt.": "Apt", "avenue": "av.", "boulevard": "bd",
}  # fmt: skip
STREET_ENDINGS: dict[str, str] = {"straße": "str.", "Straße": "Str.", "straat": "str."}


def tax_id(rng: random.Random, country: str) -> str:
    """A valid tax id of `country`, in its national (unprefixed) compact form."""
    if country == "DE":
        return _until_valid(rng, lambda r: str(r.randint(1, 9)) + _digits(r, 8), _de_ok)
    if country == "GB":
        return _until_valid(rng, lambda r: str(r.randint(1, 9)) + _digits(r, 8), _gb_ok)
    if country == "FR":
        body = str(rng.randint(1, 9)) + _digits(rng, 7)
        siren = body + luhn.calc_check_digit(body)
        return f"{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"
    if country == "NL":
        bsn = _until_valid(rng, lambda r: _digits(r, 9), nl_bsn.is_valid)
        number = f"{bsn}B{rng.randint(1, 99):02d}"
        if not nl_btw.is_valid(number):  # pragma: no cover - a bsn makes a valid btw
            raise RuntimeError(number)
        return number
    return _until_valid(rng, lambda r: _digits(r, 9), us_ein.is_valid)


def _de_ok(number: str) -> bool:
    return de_vat.is_valid("DE" + number)


def _gb_ok(number: str) -> bool:
    return gb_vat.is_valid("GB" + number)


_CONNECTIVES = ("&", "and", "+")


def _reordered(words: list[str]) -> list[str]:
    """ "Baker & Holmes" -> "Holmes & Baker"; three words or more: the last two swapped."""
    inner = [i for i, w in enumerate(words) if w in _CONNECTIVES and 0 < i < len(words) - 1]
    if inner:
        k = inner[0]
        return [*words[k + 1 :], words[k], *words[:k]]
    if len(words) >= 3:
        return [*words[:-2], words[-1], words[-2]]
    return words


def _street_type_abbreviated(line1: str) -> str:
    """ "Wood Street" -> "Wood St", "Schaafstraße 1" -> "Schaafstr. 1" (unchanged if neither)."""
    tokens = line1.split(" ")
    for i, token in enumerate(tokens):
        bare = token.rstrip(",")
        if bare in STREET_TYPES:
            tokens[i] = STREET_TYPES[bare] + token[len(bare) :]
            continue
        for ending, short in STREET_ENDINGS.items():
            if bare.endswith(ending):
                tokens[i] = bare[: -len(ending)] + short + token[len(bare) :]
                break
    return " ".join(tokens)


_LEADING_NUMBER = re.compile(r"^\d+[A-Za-z]?,?\s+(?=\D)")
_TRAILING_NUMBER = re.compile(r"(?<=\D)\s+\d+[A-Za-z]?(?:[-/]\d+[A-Za-z]?)?$")


def _without_street_number(line1: str) -> str:
    """The street line without its house number: "141 Hodges Mountains", "Lolahof 7"."""
    bare = _LEADING_NUMBER.sub("", line1, count=1)
    if bare == line1:
        bare = _TRAILING_NUMBER.sub("", line1, count=1)
    return bare.strip() or line1


def _tax_id_as_written(rng: random.Random, number: str, country: str) -> str:
    if country == "US":
        return f"{number[:2]}-{number[2:]}" if rng.random() < 0.7 else number
    if rng.random() < 0.5:
        return number
    prefix = {"DE": "DE", "GB": "GB", "FR": "FR", "NL": "NL"}[country]
    if rng.random() < 0.5:
        return f"{prefix}{number}"
    return f"{prefix} {number[:3]} {number[3:6]} {number[6:]}"


@dataclass
class _Company:
    cid: str
    country: str
    core: str  # brand words, e.g. "Northwind Consulting"
    legal_form: str
    tax_id: str
    duns: str | None
    domain: str
    phone: str
    address: dict[str, str]
    old_address: dict[str, str]
    industry: str
    initialism: str | None
    typed: bool = False  # CRM and PSA hold only a name and a street address, keyed by hand


@dataclass(frozen=True, slots=True)
class _Site:
    """A branch office: another address and phone number of the same company."""

    address: dict[str, str]
    phone: str


class _Companies:
    def __init__(self, seed: int, config: CompanyConfig) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker(list(LOCALES.values()))
        self.fake.seed_instance(seed)
        self.config = config
        self.stats: Counter[str] = Counter()
        self.companies: list[_Company] = []
        self.used_domains: Counter[str] = Counter()

    def _core(self, country: str) -> tuple[str, str, str | None]:
        rng = self.rng
        industry = rng.choice(INDUSTRIES)
        style = rng.random()
        initialism = None
        if style < 0.3:
            core = f"{self.fake[LOCALES[country]].last_name()} {industry}"
        elif style < 0.45:
            a, b = (self.fake[LOCALES[country]].last_name() for _ in range(2))
            core = f"{a} & {b}"
        elif style < 0.75:
            core = f"{rng.choice(_PREFIXES)}{rng.choice(_SUFFIXES)} {industry}"
        elif style < 0.87:
            core = f"{rng.choice(_PREFIXES)}{rng.choice(_SUFFIXES)} International {industry}"
        else:
            words = (rng.choice(_ADJECTIVES), rng.choice(_NOUNS), rng.choice(_TAILS))
            core = " ".join(words)
            initialism = "".join(w[0] for w in words)
        return core, industry, initialism

    def _domain(self, core: str, country: str) -> str:
        tld = {"US": "com", "GB": "co.uk", "DE": "de", "FR": "fr", "NL": "nl"}[country]
        base = _slug(core.replace("&", "and"))[:24]
        self.used_domains[base] += 1
        n = self.used_domains[base]
        return f"{base}{n if n > 1 else ''}.{tld}"

    def company(self, i: int, country: str | None = None, core: str | None = None) -> _Company:
        rng = self.rng
        country = country or rng.choices(("US", "GB", "DE", "FR", "NL"), (35, 25, 20, 10, 10))[0]
        new_core, industry, initialism = self._core(country)
        if core is not None:
            initialism = None
        core = core or new_core
        return _Company(
            cid=f"C{i:05d}",
            country=country,
            core=core,
            legal_form=rng.choice(list(LEGAL_FORMS[country])),
            tax_id=tax_id(rng, country),
            duns=_digits(rng, 9) if rng.random() < 0.4 else None,
            domain=self._domain(core, country),
            phone=phone_number(rng, country, "fixed"),
            address=_address(self.fake, country),
            old_address=_address(self.fake, country),
            industry=industry,
            initialism=initialism,
        )

    def hard_negative(self, i: int, other: _Company) -> _Company:
        rng, config = self.rng, self.config
        share = config.subsidiary + config.same_name_abroad + config.generic_name
        kind = rng.random() * share
        abroad = rng.choice([c for c in LEGAL_FORMS if c != other.country])
        if kind < config.subsidiary:
            company = self.company(i, abroad, f"{other.core} {_COUNTRY_WORD[abroad]}")
            if rng.random() < 0.6:
                company.domain = other.domain  # one group website
            self.stats["hard negative: subsidiary in another country"] += 1
        elif kind < config.subsidiary + config.same_name_abroad:
            company = self.company(i, abroad, other.core)
            self.stats["hard negative: same name in another country"] += 1
        else:
            company = self.company(i, other.country, rng.choice(GENERIC_CORES))
            self.stats["hard negative: generic name in another city"] += 1
        return company

    def _core_as_written(self, company: _Company) -> str:
        rng, stats = self.rng, self.stats
        core = company.core
        if company.initialism and rng.random() < 0.3:
            core = company.initialism
            stats["initialism"] += 1
        elif " International " in core and rng.random() < 0.5:
            core = core.replace(" International ", rng.choice((" Intl ", " Int'l ", " Intl. ")))
            stats["International abbreviated"] += 1
        if "&" in core and rng.random() < 0.3:
            core = core.replace("&", "and")
            stats["& written as and"] += 1
        return core

    def name(self, company: _Company, source: str) -> str:
        """The company's name as one record writes it."""
        rng, stats = self.rng, self.stats
        core = self._core_as_written(company)
        variants = LEGAL_FORMS[company.country][company.legal_form]
        if source == "erp" or rng.random() < 0.5:
            suffix = variants[0] if rng.random() < 0.5 else rng.choice(variants)
        else:
            suffix = rng.choice(variants)
        if suffix != variants[0]:
            stats["legal suffix variant or missing"] += 1
        name = f"{core} {suffix}".strip()
        if rng.random() < 0.03:
            name = f"The {name}"
            stats["'The' prefix"] += 1
        if rng.random() < self.config.typo:
            name = typo(rng, name)
            stats["typo in the name"] += 1
        if source == "erp" and rng.random() < 0.2:
            name = name.upper()
        return name

    def typed_name(self, company: _Company) -> str:
        """The name as a person keys it into CRM or PSA: abbreviated, shortened, mistyped."""
        rng, config, stats = self.rng, self.config, self.stats
        words = self._core_as_written(company).split()
        abbreviated = False
        for i, word in enumerate(words):
            if word in ABBREVIATIONS and rng.random() < config.typed_abbreviation:
                words[i] = rng.choice(ABBREVIATIONS[word])
                abbreviated = True
        if abbreviated:
            stats["typed: word abbreviated (Intl, Svcs, and/&, Mfg ...)"] += 1
        if len(words) >= 2 and rng.random() < config.typed_word_missing:
            del words[rng.randrange(1, len(words))]
            while words and words[-1] in _CONNECTIVES:
                words.pop()
            stats["typed: a word of the name missing"] += 1
        if rng.random() < config.typed_words_reordered:
            reordered = _reordered(words)
            if reordered != words:
                words = reordered
                stats["typed: words of the name reordered"] += 1
        typos = 0
        if rng.random() < config.typed_typo:
            typos = 2 if rng.random() < config.typed_second_typo else 1
        for _ in range(typos):
            candidates = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 3]
            if not candidates:
                break
            # mostly the brand word, the one that tells the company apart
            i = candidates[0] if rng.random() < 0.6 else rng.choice(candidates)
            if len(words[i]) <= 6:
                stats["typed: typo in a short word (6 letters or fewer)"] += 1
            words[i] = typo(rng, words[i])
            stats["typed: typo in a word of the name"] += 1
        suffix = rng.choice(LEGAL_FORMS[company.country][company.legal_form])
        name = " ".join([*words, suffix]).strip()
        if rng.random() < config.typed_lower_case:
            name = name.lower()
            stats["typed: name in lower case"] += 1
        return name

    def _street(self, address: dict[str, str], typed: bool) -> dict[str, str]:
        """`address` with, sometimes, an abbreviated street type or no street number."""
        rng, config, stats = self.rng, self.config, self.stats
        line1 = address.get("line1")
        if not line1:
            return address
        rate = config.street_type_abbreviated if typed else config.street_type_abbreviated / 4
        if rng.random() < rate:
            short = _street_type_abbreviated(line1)
            if short != line1:
                line1 = short
                stats["street type abbreviated (Street/St, Straße/Str.)"] += 1
        if typed and rng.random() < config.street_number_missing:
            bare = _without_street_number(line1)
            if bare != line1:
                line1 = bare
                stats["typed: street number missing"] += 1
        return {**address, "line1": line1}

    def _typed_record(self, company: _Company, source: str, site: _Site | None) -> dict[str, Any]:
        """A CRM or PSA record holding only a name and a street address."""
        rng, config, stats = self.rng, self.config, self.stats
        stats["name and street address only (records)"] += 1
        if site is None and source != "crm" and rng.random() < config.moved:
            address = _address_as_written(rng, company.old_address)
            stats["moved address (old one kept)"] += 1
        else:
            address = _address_as_written(rng, site.address if site else company.address)
        address = self._street(address, typed=True)
        if rng.random() < 0.2:
            del address["postal_code"]
            stats["typed: postal code missing"] += 1
        return {"name": self.typed_name(company), "address": address}

    def record(self, company: _Company, source: str, site: _Site | None = None) -> dict[str, Any]:
        rng, config, stats = self.rng, self.config, self.stats
        if company.typed and source != "erp":
            attributes = self._typed_record(company, source, site)
        else:
            attributes = self._full_record(company, source, site)
        if site is not None and rng.random() < 0.25:
            city = site.address["city"]
            attributes["name"] += rng.choice((f" ({city})", f" - {city}", f" {city}"))
            stats["branch office: the site's city in the name"] += 1
        if rng.random() < config.placeholder_name:
            attributes["name"] = rng.choice(PLACEHOLDER_NAMES)
            stats["placeholder for the name (N/A, Unknown, TBD, -)"] += 1
        return {"source": source, "entity": "customer", "attributes": attributes}

    def _full_record(self, company: _Company, source: str, site: _Site | None) -> dict[str, Any]:
        """A record as a system fills it in: identifiers and contacts at each source's rates."""
        rng, config, stats = self.rng, self.config, self.stats
        address = site.address if site else company.address
        attributes: dict[str, Any] = {"name": self.name(company, source)}
        if source == "erp" and rng.random() < 0.6:
            variants = LEGAL_FORMS[company.country][company.legal_form]
            attributes["legal_name"] = f"{company.core} {variants[0]}"
        tax_rate = {"erp": config.tax_id_in_erp, "crm": config.tax_id_in_crm, "psa": 0.1}[source]
        if rng.random() < tax_rate:
            attributes["tax_id"] = _tax_id_as_written(rng, company.tax_id, company.country)
            if source == "erp" or rng.random() < 0.5:
                attributes["tax_country"] = company.country
        else:
            stats["tax id missing"] += 1
        if company.duns and source == "erp" and rng.random() < 0.6:
            attributes["duns"] = company.duns
        if rng.random() < {"crm": 0.8, "erp": 0.2, "psa": 0.3}[source]:
            attributes["website"] = rng.choice(
                (f"www.{company.domain}", f"https://www.{company.domain}/", company.domain)
            )
        draw = rng.random()
        if draw < config.shared_email:
            attributes["email"] = rng.choice(SHARED_EMAILS)
            stats["shared generic e-mail address"] += 1
        elif draw < {"crm": 0.25, "erp": 0.65, "psa": 0.4}[source]:
            box = rng.choice(
                ("info", "accounts", "ap", "invoices") if source != "psa" else ("info",)
            )
            attributes["email"] = f"{box}@{company.domain}"
        if rng.random() < {"crm": 0.7, "erp": 0.35, "psa": 0.2}[source]:
            attributes["phone"] = phone_as_written(rng, site.phone if site else company.phone)
        draw = rng.random()
        if site is None and source != "crm" and draw < config.moved:
            written = _address_as_written(rng, company.old_address)
            attributes["address"] = self._street(written, typed=False)
            stats["moved address (old one kept)"] += 1
        elif source == "psa" and draw < 0.6:
            attributes["address"] = {
                "city": address["city"],
                "country": rng.choice(_COUNTRY_SPELLINGS[company.country]),
            }
        elif draw < 0.95:
            attributes["address"] = self._street(_address_as_written(rng, address), typed=False)
        if source == "crm":
            if rng.random() < 0.8:
                attributes["industry"] = company.industry
            attributes["status"] = rng.choices(("active", "prospect", "inactive"), (7, 2, 1))[0]
        return attributes

    def branches(self, company: _Company) -> list[dict[str, Any]]:
        """The records of one or two branch offices of `company`: the same customer."""
        rng = self.rng
        self.stats["branch office: companies with two or three sites"] += 1
        records = []
        for _ in range(rng.choice((1, 1, 2))):
            site = _Site(
                _address(self.fake, company.country), phone_number(rng, company.country, "fixed")
            )
            sources = [
                s for s, rate in (("crm", 0.8), ("erp", 0.4), ("psa", 0.4)) if rng.random() < rate
            ]
            for source in sources or ["crm"]:
                record = self.record(company, source, site)
                record["_truth"] = company.cid
                records.append(record)
                self.stats["branch office: records with the branch's address"] += 1
        return records

    def generate(self) -> Dataset:
        rng, config = self.rng, self.config
        records: list[dict[str, Any]] = []
        share_negative = config.subsidiary + config.same_name_abroad + config.generic_name
        for i in range(config.companies):
            if self.companies and rng.random() < share_negative:
                company = self.hard_negative(i, rng.choice(self.companies))
            else:
                company = self.company(i)
            if rng.random() < config.name_and_address_only:
                company.typed = True
                self.stats["companies typed by hand in CRM and PSA (name and address only)"] += 1
            self.companies.append(company)
            sources = []
            for source, rate, duplicate in (
                ("crm", config.in_crm, config.crm_duplicate),
                ("erp", config.in_erp, config.erp_duplicate),
                ("psa", config.in_psa, 0.0),
            ):
                if rng.random() < rate:
                    sources.append(source)
                    if rng.random() < duplicate:
                        sources.append(source)
                        self.stats["second record in the same source"] += 1
            for source in sources or ["crm"]:
                record = self.record(company, source)
                record["_truth"] = company.cid
                records.append(record)
            if rng.random() < config.branch:
                records += self.branches(company)
        _assign_ids(rng, records, {"crm": "ACC-", "erp": "K", "psa": "CL"})
        truth_of = [r["_truth"] for r in records]
        return _build("ps_companies", "customer", records, truth_of, self.stats)


def companies(seed: int = 0, config: CompanyConfig | None = None) -> Dataset:
    """Customer records from CRM, ERP and PSA, ~2.6 per company (5,200 for 2,000)."""
    return _Companies(seed, config or CompanyConfig()).generate()
