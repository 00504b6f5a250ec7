"""What a name says besides its letters: placeholders that stand for no name, and
generational suffixes ("Jr", "III") that tell a father from his son.

A placeholder ("N/A", "Unknown", "TBD", "-") is what a form holds where nobody
typed the name. Two records agreeing on it agree on nothing, so matching reads
such a name as missing (`matching.prepare`); the standardizer keeps the value
for display and flags it (`matching.standardize`).

A generational suffix at the end of a person's name is not part of the name to
compare ("Smith Jr." and "Smith" are one family name) but it is evidence of its
own: a junior and a senior are two people (the worker model's `generation`
field, `matching.scoring.conflict`).
"""

from __future__ import annotations

from matching.text import fold

# Placeholder names, as `fold` leaves them with the spaces taken out ("n/a" -> "na").
PLACEHOLDERS = frozenset(
    """na nn none null nil unknown unbekannt inconnu desconocido sconosciuto onbekend
    tbd tba tbc test dummy xxx xxxx notavailable notapplicable noname nameunknown
    unknownname""".split()
)

# Placeholders that are also real names when written as plain letters ("Na" is a
# Korean family name): a person's name is one of them only when written with a
# stop or a slash ("N/A", "n.a.").
_PERSON_AMBIGUOUS = frozenset({"na"})

# Generational suffixes (folded) and the one spelling each stands for.
GENERATIONS = {
    "jr": "jr",
    "jnr": "jr",
    "junior": "jr",
    "sr": "sr",
    "snr": "sr",
    "senior": "sr",
    "ii": "ii",
    "2nd": "ii",
    "iii": "iii",
    "3rd": "iii",
    "iv": "iv",
    "4th": "iv",
}


def is_placeholder(raw: str, *, person: bool = False) -> bool:
    """Whether `raw` stands for no name: no letter or digit at all ("-", "?"), or a word
    that forms put where the name is missing ("N/A", "n.a.", "Unknown", "TBD", "none",
    "test").

    >>> [is_placeholder(n) for n in ("N/A", "n.a.", "Unknown", "-", "Marlow")]
    [True, True, True, True, False]
    >>> is_placeholder("Na", person=True), is_placeholder("N/A", person=True)
    (False, True)
    """
    folded = fold(raw).replace(" ", "")
    if not folded:
        return True
    if folded not in PLACEHOLDERS:
        return False
    if person and folded in _PERSON_AMBIGUOUS:
        return not raw.strip().isalpha()
    return True


def split_generation(folded: str) -> tuple[str, str | None]:
    """A folded person's name without its generational suffix, and the suffix's one
    spelling (None when it has none). A name of one word keeps it ("Junior" may be a
    name); only the last word counts.

    >>> split_generation("smith jr"), split_generation("king iii"), split_generation("ii")
    (('smith', 'jr'), ('king', 'iii'), ('ii', None))
    """
    head, _, last = folded.rpartition(" ")
    generation = GENERATIONS.get(last)
    if not head or generation is None:
        return folded, None
    return head, generation
