"""Comparators: a pair of prepared field features in, the first comparison level that holds out.

A field of a match model names a comparator ("person_name", "date", ...) and
an ordered list of levels. Every level but the last is a *predicate* written
as its label: a name, optionally with a threshold ("exact",
"jaro_winkler>=0.92", "levenshtein<=1", "last_digits>=7"). The last level is
always "else". `compile_levels` turns the labels into predicate functions once;
`level_of` then walks them for one pair. A field missing on either side is a
"null" outcome (`NULL`, weight 0) and is decided before any predicate runs.

Predicates read the features `matching.prepare` stored for the field (see
that module for their keys): "v" is always the value compared; the others
(phonetic code, nickname group, date parts, e-mail parts ...) were computed
once per record so that comparing is cheap.

String similarity is rapidfuzz's, called with `processor=None` (the features
are already folded) and a `score_cutoff` equal to the level's threshold, so
rapidfuzz can stop early. Phonetic codes (NYSIIS, jellyfish) and nickname
groups (the `nicknames` package's hand-curated table) are computed in
`matching.prepare`. The "address" comparator compares street lines, postal
code and city as one field, since they are not independent evidence; its
outcome is null when the two addresses share no part to compare. Streets are
compared without their house numbers; the same address needs the same house
number (or none on either side): a number missing on one side, or two different
numbers, make the same street (a street holds many homes and offices).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein

Features = Mapping[str, Any]
Predicate = Callable[[Features, Features], bool]

NULL = -1
ELSE = "else"

# Threshold of the cross comparisons of "swapped" when its label gives none.
SWAP_SIMILARITY = 0.92
# A company name's first word is compared on its own (level "first_token") when both
# have at least this many letters: shorter ones ("abc", "ses") are too often shared.
FIRST_TOKEN_MIN = 5

# Levels at which two values agree without belonging to one holder: e-mail
# addresses of one company's domain are its staff's, not one person's. An
# identifier agreeing only at such a level does not say who a record is
# (matching.scoring.conflict).
SHARED_LEVELS = frozenset({"same_domain", "other_mailbox"})
# Levels at which an identifier says that the two records are two holders: another
# mailbox at one firm's own domain (a firm gives each person one, and numbers a
# namesake's: "anna.berg" and "anna.berg2"). The record is then another entity unless
# another identifier agrees (matching.scoring.conflict).
APART_LEVELS = frozenset({"other_mailbox"})

# E-mail domains shared by unrelated people: a shared one is no evidence, and two
# mailboxes there are no firm's.
FREE_MAIL = frozenset(
    """gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr hotmail.com hotmail.co.uk
    hotmail.fr outlook.com live.com msn.com aol.com icloud.com me.com mac.com gmx.de gmx.net
    gmx.com web.de t-online.de protonmail.com proton.me mail.com yandex.ru mail.ru qq.com
    163.com 126.com orange.fr free.fr laposte.net libero.it btinternet.com""".split()
)


class LevelError(ValueError):
    """A level label that the comparator does not understand."""


@dataclass(frozen=True, slots=True)
class ParsedLevel:
    name: str
    op: str | None = None
    threshold: float | None = None


def parse_level(label: str) -> ParsedLevel:
    """Split "jaro_winkler>=0.92" into its name, operator and threshold."""
    for op in (">=", "<="):
        if op in label:
            name, _, raw = label.partition(op)
            try:
                threshold = float(raw)
            except ValueError:
                raise LevelError(f"level {label!r}: {raw!r} is not a number") from None
            if threshold != threshold or threshold in (float("inf"), float("-inf")):
                raise LevelError(f"level {label!r}: threshold must be finite")
            return ParsedLevel(name.strip(), op, threshold)
    return ParsedLevel(label.strip())


# --- predicates on the compared value "v" (every comparator has them) ---------


def _exact(a: Features, b: Features) -> bool:
    return bool(a["v"] == b["v"])


def _jaro_winkler(t: float) -> Predicate:
    def holds(a: Features, b: Features) -> bool:
        return JaroWinkler.similarity(a["v"], b["v"], processor=None, score_cutoff=t) >= t

    return holds


def _levenshtein(k: float) -> Predicate:
    cutoff = int(k)

    def holds(a: Features, b: Features) -> bool:
        return Levenshtein.distance(a["v"], b["v"], processor=None, score_cutoff=cutoff) <= cutoff

    return holds


def _damerau(k: float) -> Predicate:
    # rapidfuzz's OSA: Levenshtein plus adjacent transpositions, each edit costing 1.
    cutoff = int(k)

    def holds(a: Features, b: Features) -> bool:
        return OSA.distance(a["v"], b["v"], processor=None, score_cutoff=cutoff) <= cutoff

    return holds


def _token_set(t: float) -> Predicate:
    def holds(a: Features, b: Features) -> bool:
        return fuzz.token_set_ratio(a["v"], b["v"], processor=None, score_cutoff=t) >= t

    return holds


# --- person names ------------------------------------------------------------------


def _phonetic(a: Features, b: Features) -> bool:
    code = a.get("ph")
    return bool(code) and code == b.get("ph")


def _nickname(a: Features, b: Features) -> bool:
    # "nk" is the name's nickname group: itself and the names it is a nickname of.
    group = a.get("nk")
    other = b.get("nk")
    if not group or not other:
        return False
    return any(name in other for name in group)


def _nickname_typo(a: Features, b: Features) -> bool:
    # "nt" is the nickname group of the known names a mistyped name is one edit from
    # ("rchard" -> richard, dick): it meets the other side's group ("rick").
    # Both mistyped ("jerr" / "gerals"): their groups meet.
    for x, y in ((a, b), (b, a)):
        near = x.get("nt")
        if not near:
            continue
        other = y.get("nk") or ()
        if any(name in other for name in near) or any(name in y.get("nt", ()) for name in near):
            return True
    return False


def _initial(a: Features, b: Features) -> bool:
    x, y = a["v"], b["v"]
    if len(x) != 1 and len(y) != 1:
        return False
    return x[0] == y[0]


def _swapped(t: float) -> Predicate:
    # "alt" is the other name of the same person (the family name of a given
    # name and vice versa) or the other address line: both cross comparisons
    # must hold.
    def holds(a: Features, b: Features) -> bool:
        a_alt, b_alt = a.get("alt"), b.get("alt")
        if not a_alt or not b_alt:
            return False
        return (
            JaroWinkler.similarity(a["v"], b_alt, processor=None, score_cutoff=t) >= t
            and JaroWinkler.similarity(a_alt, b["v"], processor=None, score_cutoff=t) >= t
        )

    return holds


# --- company names: "keys" holds the company key of each name (name, legal name) ---


def _company_exact(a: Features, b: Features) -> bool:
    other = b["keys"]
    return any(key in other for key in a["keys"])


def _company_similarity(scorer: Any, t: float) -> Predicate:
    def holds(a: Features, b: Features) -> bool:
        for x in a["keys"]:
            for y in b["keys"]:
                if scorer(x, y, processor=None, score_cutoff=t) >= t:
                    return True
        return False

    return holds


def _first_token(a: Features, b: Features) -> bool:
    # The first word that says which company it is ("mangold" in "Mangold Health Care"),
    # the same or one typo apart ("mangpld"), when both have at least FIRST_TOKEN_MIN
    # letters: a hand-typed name often keeps only that word, or shortens the rest.
    x, y = a.get("tok"), b.get("tok")
    if not x or not y:
        return False
    first, other = x[0], y[0]
    if len(first) < FIRST_TOKEN_MIN or len(other) < FIRST_TOKEN_MIN:
        return False
    return first == other or OSA.distance(first, other, score_cutoff=1) <= 1


def _acronym(a: Features, b: Features) -> bool:
    # "ibm" against "international business machines" (whose "acr" is "ibm").
    b_acr, a_acr = b.get("acr"), a.get("acr")
    return bool((b_acr and b_acr in a["keys"]) or (a_acr and a_acr in b["keys"]))


# --- dates: "p" is [year, month, day] when the value is a valid ISO date -----------


def _day_month_swapped(a: Features, b: Features) -> bool:
    p, q = a.get("p"), b.get("p")
    if not p or not q:
        return False
    return p[0] == q[0] and p[1] == q[2] and p[2] == q[1] and p[1] != p[2]


def _one_field_off(a: Features, b: Features) -> bool:
    p, q = a.get("p"), b.get("p")
    if not p or not q:
        return False
    same = (p[0] == q[0]) + (p[1] == q[1]) + (p[2] == q[2])
    return same == 2


def _within_days(k: float) -> Predicate:
    def holds(a: Features, b: Features) -> bool:
        x, y = a.get("o"), b.get("o")
        return x is not None and y is not None and abs(x - y) <= k

    return holds


# --- e-mail, phone, postal code, domains, money ------------------------------------


def _same_local_part(a: Features, b: Features) -> bool:
    return bool(a["l"]) and a["l"] == b["l"]


def _same_domain(a: Features, b: Features) -> bool:
    return bool(a["d"]) and a["d"] == b["d"]


def _other_mailbox(a: Features, b: Features) -> bool:
    """Another local part at one domain that is no free-mail provider's: a firm's."""
    return _same_domain(a, b) and a["d"] not in FREE_MAIL and a["l"] != b["l"]


def _last_digits(k: float) -> Predicate:
    n = int(k)

    def holds(a: Features, b: Features) -> bool:
        x, y = a["v"], b["v"]
        return len(x) >= n and len(y) >= n and x[-n:] == y[-n:]

    return holds


def _prefix(k: float) -> Predicate:
    n = int(k)

    def holds(a: Features, b: Features) -> bool:
        x, y = a["v"], b["v"]
        return len(x) >= n and len(y) >= n and x[:n] == y[:n]

    return holds


def _any_shared(a: Features, b: Features) -> bool:
    other = b["all"]
    return any(x in other for x in a["all"])


def _money_exact(a: Features, b: Features) -> bool:
    return bool(a["c"] == b["c"] and a["a"] == b["a"])


def _within_pct(k: float) -> Predicate:
    def holds(a: Features, b: Features) -> bool:
        if a["c"] != b["c"]:
            return False
        x, y = a["a"], b["a"]
        big = max(abs(x), abs(y))
        return big == 0 or abs(x - y) <= big * k / 100

    return holds


# --- addresses: l1, l2 street lines, pc postal code, c city -------------------------

# Street lines this similar (Jaro-Winkler) are one street line.
STREET_SIMILARITY = 0.9
CITY_SIMILARITY = 0.9


def _similar(x: str | None, y: str | None, t: float) -> bool:
    if not x or not y:
        return False
    return x == y or JaroWinkler.similarity(x, y, processor=None, score_cutoff=t) >= t


def _street_name(f: Features) -> str | None:
    # "st": line 1 without its house number; records prepared before it had only "l1".
    if "st" in f:
        return f["st"]
    line = f.get("l1")
    if not line:
        return None
    return " ".join(w for w in line.split() if not any(c.isdigit() for c in w)) or None


def _house_number(f: Features) -> str | None:
    # The prepared number of line 1 ("hn"), else the first token with a digit of either
    # line (records prepared before "hn"; a number on line 2 when the lines are swapped).
    if f.get("hn"):
        return str(f["hn"])
    for line in (f.get("l1"), f.get("l2")):
        found = next((w for w in (line or "").split() if any(c.isdigit() for c in w)), None)
        if found:
            return found
    return None


def _street(t: float) -> Predicate:
    # The streets agree, house numbers left out (they are weighed by `_same_address`), or
    # the lines are swapped (line 1 of one is line 2 of the other).
    def holds(a: Features, b: Features) -> bool:
        if _similar(_street_name(a), _street_name(b), t):
            return True
        return _similar(a.get("l1"), b.get("l2"), t) and _similar(a.get("l2"), b.get("l1"), t)

    return holds


def _numbers_differ(a: Features, b: Features) -> bool:
    """The street lines do not hold the same house number: two different ones, or one
    on one side only (the same street, not yet the same door)."""
    return _house_number(a) != _house_number(b)


def _locality(a: Features, b: Features) -> bool:
    x, y = a.get("pc"), b.get("pc")
    if x and y and (x == y or OSA.distance(x, y, processor=None, score_cutoff=1) <= 1):
        return True
    return _similar(a.get("c"), b.get("c"), CITY_SIMILARITY)


def _same_address(threshold: float | None) -> Predicate:
    street = _street(STREET_SIMILARITY if threshold is None else threshold)

    def holds(a: Features, b: Features) -> bool:
        return street(a, b) and _locality(a, b) and not _numbers_differ(a, b)

    return holds


def _same_street(threshold: float | None) -> Predicate:
    return _street(STREET_SIMILARITY if threshold is None else threshold)


def _same_postal_code(a: Features, b: Features) -> bool:
    x = a.get("pc")
    return bool(x) and x == b.get("pc")


def _address_comparable(a: Features, b: Features) -> bool:
    # Null unless both sides hold one same part: "12 Main St" against "Berlin" says nothing.
    return bool(
        (a.get("l1") and b.get("l1"))
        or (a.get("pc") and b.get("pc"))
        or (a.get("c") and b.get("c"))
    )


# --- the registry ------------------------------------------------------------------

# A level factory takes the threshold (None when the label has none) and
# returns the predicate. `_plain` wraps predicates that take no threshold.
LevelFactory = Callable[[float | None], Predicate]


def _plain(predicate: Predicate) -> LevelFactory:
    def factory(threshold: float | None) -> Predicate:
        if threshold is not None:
            raise LevelError("takes no threshold")
        return predicate

    return factory


def _needs(op: str, build: Callable[[float], Predicate]) -> tuple[str, LevelFactory]:
    def factory(threshold: float | None) -> Predicate:
        if threshold is None:
            raise LevelError(f"needs a threshold ({op} number)")
        return build(threshold)

    return op, factory


_STRING: dict[str, tuple[str | None, LevelFactory]] = {
    "exact": (None, _plain(_exact)),
    "jaro_winkler": _needs(">=", _jaro_winkler),
    "levenshtein": _needs("<=", _levenshtein),
    "damerau_levenshtein": _needs("<=", _damerau),
    "token_set": _needs(">=", _token_set),
}


def _swapped_factory(threshold: float | None) -> Predicate:
    return _swapped(SWAP_SIMILARITY if threshold is None else threshold)


@dataclass(frozen=True, slots=True)
class Comparator:
    """A comparator's name, its level vocabulary and a one-line description.

    `comparable`, when set, decides whether two present values can be
    compared at all; when it says no, the outcome is null (weight 0).
    """

    name: str
    levels: Mapping[str, tuple[str | None, LevelFactory]]
    description: str
    comparable: Predicate | None = None


COMPARATORS: dict[str, Comparator] = {
    c.name: c
    for c in (
        Comparator("exact", {"exact": _STRING["exact"]}, "folded text, equal or not"),
        Comparator(
            "text",
            {**_STRING, "swapped": (">=", _swapped_factory)},
            "folded free text (city, address line, project name); the other line if swapped",
        ),
        Comparator(
            "identifier",
            {k: _STRING[k] for k in ("exact", "levenshtein", "damerau_levenshtein")},
            "an identifier compacted (no spaces, dots, dashes), upper case",
        ),
        Comparator(
            "person_name",
            {
                **_STRING,
                "phonetic": (None, _plain(_phonetic)),
                "nickname": (None, _plain(_nickname)),
                "nickname_typo": (None, _plain(_nickname_typo)),
                "initial": (None, _plain(_initial)),
                "swapped": (">=", _swapped_factory),
            },
            "a given or family name, folded; NYSIIS code, nickname group, the other name",
        ),
        Comparator(
            "company_name",
            {
                "exact": (None, _plain(_company_exact)),
                "jaro_winkler": _needs(
                    ">=", lambda t: _company_similarity(JaroWinkler.similarity, t)
                ),
                "token_set": _needs(">=", lambda t: _company_similarity(fuzz.token_set_ratio, t)),
                "acronym": (None, _plain(_acronym)),
                "first_token": (None, _plain(_first_token)),
            },
            "company keys (legal suffix, 'the', '&', punctuation removed) of name and legal name",
        ),
        Comparator(
            "date",
            {
                **_STRING,
                "day_month_swapped": (None, _plain(_day_month_swapped)),
                "one_field_off": (None, _plain(_one_field_off)),
                "within_days": _needs("<=", _within_days),
            },
            "an ISO date; year, month and day parts",
        ),
        Comparator(
            "email",
            {
                **_STRING,
                "same_local_part": (None, _plain(_same_local_part)),
                "other_mailbox": (None, _plain(_other_mailbox)),
                "same_domain": (None, _plain(_same_domain)),
            },
            "an e-mail address, its local part and domain",
        ),
        Comparator(
            "phone",
            {"exact": _STRING["exact"], "last_digits": _needs(">=", _last_digits)},
            "a phone number's digits",
        ),
        Comparator(
            "postal_code",
            {**_STRING, "prefix": _needs(">=", _prefix)},
            "a postal code, upper case without spaces",
        ),
        Comparator(
            "address",
            {
                "same_address": (">=", _same_address),
                "same_street": (">=", _same_street),
                "same_postal_code": (None, _plain(_same_postal_code)),
                "same_locality": (None, _plain(_locality)),
            },
            "a postal address as one comparison: street lines, postal code, city",
            _address_comparable,
        ),
        Comparator(
            "generation",
            {"exact": _STRING["exact"]},
            "a generational suffix of a person's name (jr, sr, ii, iii, iv)",
        ),
        Comparator(
            "domain",
            {"exact": (None, _plain(_any_shared))},
            "web domains of the website and e-mail (free-mail domains left out)",
        ),
        Comparator(
            "money",
            {"exact": (None, _plain(_money_exact)), "within_pct": _needs("<=", _within_pct)},
            "an amount and its currency",
        ),
    )
}


def level_predicate(comparator: str, label: str) -> Predicate:
    """The predicate of one level label of `comparator`; raises LevelError if unknown."""
    spec = COMPARATORS.get(comparator)
    if spec is None:
        raise LevelError(
            f"unknown comparator {comparator!r}; expected one of {', '.join(sorted(COMPARATORS))}"
        )
    parsed = parse_level(label)
    entry = spec.levels.get(parsed.name)
    if entry is None:
        known = ", ".join(sorted(spec.levels))
        raise LevelError(
            f"comparator {comparator!r} has no level {parsed.name!r}; it knows {known}, {ELSE}"
        )
    op, factory = entry
    if parsed.op is not None and op is None:
        raise LevelError(f"level {label!r} takes no threshold")
    if parsed.op is not None and parsed.op != op:
        raise LevelError(f"level {label!r}: use {parsed.name}{op}number")
    try:
        return factory(parsed.threshold)
    except LevelError as exc:
        raise LevelError(f"level {label!r} {exc}") from None


def compile_levels(comparator: str, labels: Sequence[str]) -> tuple[Predicate, ...]:
    """Predicates for every level but the last ("else")."""
    if not labels or labels[-1] != ELSE:
        raise LevelError(f"the last level must be {ELSE!r}")
    for label in labels[:-1]:
        if label == ELSE:
            raise LevelError(f"only the last level may be {ELSE!r}")
    return tuple(level_predicate(comparator, label) for label in labels[:-1])


def comparable_check(comparator: str) -> Predicate | None:
    """The comparator's test of whether two present values compare at all (None: always)."""
    return COMPARATORS[comparator].comparable


def level_of(
    predicates: Sequence[Predicate],
    a: Features | None,
    b: Features | None,
    comparable: Predicate | None = None,
) -> int:
    """Index of the first level whose predicate holds; the last level if none; NULL if missing."""
    if a is None or b is None:
        return NULL
    if comparable is not None and not comparable(a, b):
        return NULL
    for index, holds in enumerate(predicates):
        if holds(a, b):
            return index
    return len(predicates)
