"""Placeholder names, generational suffixes and deletion neighbourhoods, one function each."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rapidfuzz.distance import OSA

from matching.names import is_placeholder, split_generation
from matching.prepare import deletions


@pytest.mark.parametrize(
    "raw", ["N/A", "n/a", "n.a.", "NA", "Unknown", "TBD", "-", "--", "none", "test", "?", " "]
)
def test_placeholders(raw: str) -> None:
    assert is_placeholder(raw)


@pytest.mark.parametrize("raw", ["Marlow", "N.A. Holdings", "Testa", "Nonetheless", "X"])
def test_names(raw: str) -> None:
    assert not is_placeholder(raw)


def test_na_is_a_persons_name_unless_written_as_an_abbreviation() -> None:
    assert not is_placeholder("Na", person=True)
    assert is_placeholder("N/A", person=True)
    assert is_placeholder("n.a.", person=True)


@pytest.mark.parametrize(
    ("folded", "expected"),
    [
        ("smith jr", ("smith", "jr")),
        ("smith junior", ("smith", "jr")),
        ("smith snr", ("smith", "sr")),
        ("king ii", ("king", "ii")),
        ("king 3rd", ("king", "iii")),
        ("king iv", ("king", "iv")),
        ("junior", ("junior", None)),  # a name of one word keeps it
        ("jr smith", ("jr smith", None)),  # only the last word
        ("smith", ("smith", None)),
    ],
)
def test_split_generation(folded: str, expected: tuple[str, str | None]) -> None:
    assert split_generation(folded) == expected


@given(st.text(alphabet="abcdefgh", min_size=3, max_size=8), st.data())
def test_tokens_one_edit_apart_share_a_deletion(token: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(token) - 1))
    letter = data.draw(st.sampled_from("abcdefgh"))
    edits = [
        token[:i] + token[i + 1 :],  # dropped
        token[:i] + letter + token[i:],  # added
        token[:i] + letter + token[i + 1 :],  # replaced
    ]
    if i + 1 < len(token):
        edits.append(token[:i] + token[i + 1] + token[i] + token[i + 2 :])  # swapped
    for other in edits:
        assert OSA.distance(token, other) <= 1
        assert set(deletions(token)) & set(deletions(other))
