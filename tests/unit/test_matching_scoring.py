"""Fellegi-Sunter scoring, TF adjustment, cluster scoring and the three bands (no I/O)."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from matching import standardize_record
from matching.model import MatchModel, default_model
from matching.prepare import prepare
from matching.scoring import (
    ClusterScore,
    CountedFrequencies,
    compare,
    compile_model,
    decide,
    pair_weight,
    probability,
    score_cluster,
    score_clusters,
    term_values,
)


def _model(**change: Any) -> MatchModel:
    data = {
        "entity": "worker",
        "version": 3,
        "prior": 0.01,
        "thresholds": {"auto_link": 0.9, "review": 0.5},
        "fields": [
            {
                "name": "family_name",
                "comparator": "person_name",
                "source": ["family_name"],
                "levels": [
                    {"label": "exact", "m": 0.8, "u": 0.01, "tf_adjust": True},
                    {"label": "jaro_winkler>=0.9", "m": 0.1, "u": 0.04},
                    {"label": "else", "m": 0.1, "u": 0.95},
                ],
            },
            {
                "name": "national_id",
                "comparator": "identifier",
                "source": ["national_id"],
                "levels": [
                    {"label": "exact", "m": 0.9, "u": 0.0001},
                    {"label": "else", "m": 0.1, "u": 0.9999},
                ],
            },
        ],
        "blocking": [{"name": "nid", "parts": ["national_id.v"]}],
    }
    data.update(change)
    return MatchModel.validated(data)


def _p(model: MatchModel, **attrs: Any) -> dict[str, Any]:
    attrs.setdefault("family_name", "Smith")
    return prepare(model, "worker", standardize_record("worker", attrs).values)


def test_weights_and_probability() -> None:
    model = _model()
    a = _p(model, family_name="Smith", national_id="123")
    b = _p(model, family_name="Smith", national_id="999")
    c = compare(model, a, b)
    prior = math.log2(0.01 / 0.99)
    assert c.prior_weight == pytest.approx(prior)
    assert [f.level for f in c.fields] == ["exact", "else"]
    assert c.fields[0].weight == pytest.approx(math.log2(0.8 / 0.01))
    assert c.fields[1].weight == pytest.approx(math.log2(0.1 / 0.9999))
    assert c.weight == pytest.approx(prior + c.fields[0].weight + c.fields[1].weight)
    assert c.probability == pytest.approx(2**c.weight / (1 + 2**c.weight))
    assert c.model_version == 3
    assert pair_weight(compile_model(model), a, b) == pytest.approx(c.weight)


def test_null_contributes_nothing() -> None:
    model = _model()
    c = compare(model, _p(model, national_id="123"), _p(model))
    assert c.fields[1].level == "null" and c.fields[1].weight == 0
    assert c.fields[1].left == "123" and c.fields[1].right is None


def test_explanation_is_json() -> None:
    model = default_model("worker")
    a = _p(model, given_name="Bill", family_name="Smith", date_of_birth="1980-01-02")
    b = _p(model, given_name="William", family_name="Smyth", date_of_birth="1980-02-01")
    c = compare(model, a, b)
    data = json.loads(json.dumps(c.to_dict()))
    rows = {row["field"]: row for row in data["fields"]}
    assert rows["given_name"]["level"] == "nickname"
    assert rows["date_of_birth"]["level"] == "day_month_swapped"
    assert (rows["given_name"]["left"], rows["given_name"]["right"]) == ("bill", "william")
    assert set(rows["email"]) == {
        "field", "level", "level_index", "left", "right", "weight", "tf_adjustment", "member"
    }  # fmt: skip
    assert data["weight"] == pytest.approx(
        data["prior_weight"] + sum(r["weight"] for r in data["fields"])
    )


def test_term_frequency_adjustment() -> None:
    model = _model()
    records = [_p(model, family_name=n) for n in ["Smith"] * 50 + ["Zyxwa"] + ["Other"] * 49]
    tf = CountedFrequencies.from_records(model, records)
    assert tf.frequency("family_name", "smith") == 0.5
    assert tf.frequency("family_name", "unseen") is None
    common = compare(model, records[0], records[1], tf).fields[0]
    rare = compare(model, records[50], records[50], tf).fields[0]
    plain = compare(model, records[0], records[1]).fields[0]
    # u_exact = 0.01: "smith" (0.5) counts less, "zyxwa" (0.01) the same as the average.
    assert common.tf_adjustment == pytest.approx(math.log2(0.01 / 0.5))
    assert rare.tf_adjustment == pytest.approx(0.0)
    assert common.weight < rare.weight == pytest.approx(plain.weight)
    # No frequency known: no adjustment.
    x, y = _p(model, family_name="Brandnew"), _p(model, family_name="Brandnew")
    assert compare(model, x, y, tf).fields[0].tf_adjustment == 0
    assert term_values(model, records[0]) == {"family_name": "smith"}


def test_fuzzy_tf_level_uses_the_more_frequent_value() -> None:
    data = _model().to_dict()
    data["fields"][0]["levels"][1]["tf_adjust"] = True
    model = MatchModel.validated(data)
    tf = CountedFrequencies({"family_name": {"smith": 8, "smiht": 2}})
    c = compare(model, _p(model, family_name="Smiht"), _p(model, family_name="Smith"), tf)
    assert c.fields[0].level == "jaro_winkler>=0.9"
    assert c.fields[0].tf_adjustment == pytest.approx(math.log2(0.01 / 0.8))


@given(st.floats(-2000, 2000))
def test_probability_is_logistic_and_never_overflows(weight: float) -> None:
    p = probability(weight)
    assert 0.0 <= p <= 1.0
    if abs(weight) < 50:
        assert p == pytest.approx(2**weight / (1 + 2**weight))


# --- clusters ------------------------------------------------------------------------


def test_field_best_takes_each_fields_best_member() -> None:
    model = default_model("worker")
    incoming = _p(model, given_name="Anna", family_name="Berger",
                  date_of_birth="1980-03-07", email="anna@acme.com")  # fmt: skip
    hcm = _p(model, given_name="Anna", family_name="Berger", date_of_birth="1980-03-07")
    crm = _p(model, given_name="A", family_name="Berger", email="anna@acme.com")
    best = score_cluster(model, incoming, [hcm, crm])
    rows = {f.field: f for f in best.fields}
    assert rows["given_name"].level == "exact" and rows["given_name"].member == 0
    assert rows["email"].level == "exact" and rows["email"].member == 1
    assert rows["date_of_birth"].member == 0
    # Evidence spread over the members adds up; one pairwise comparison sees only part.
    pairwise = score_cluster(model, incoming, [hcm, crm], rule="pairwise_best")
    assert best.weight > pairwise.weight
    pairs = [compare(model, incoming, m).weight for m in (hcm, crm)]
    assert pairwise.weight == pytest.approx(max(pairs))
    assert best.best_member == pairwise.best_member == pairs.index(max(pairs))


def test_identifier_disagreeing_with_every_member_counts_against() -> None:
    # (The e-mail: a national id or an employee number that disagrees outright makes
    # the member another person, matching.scoring.conflict, and its evidence is left out.)
    model = default_model("worker")
    incoming = _p(model, given_name="Anna", family_name="Berger", email="anna@acme.example")
    members = [
        _p(model, given_name="Anna", family_name="Berger", email="ab1970@globex.example"),
        _p(model, given_name="Anna", family_name="Berger"),
    ]
    rows = {f.field: f for f in score_cluster(model, incoming, members).fields}
    assert rows["email"].level == "else" and rows["email"].weight < -1
    # Agreeing with one member's identifier is agreement.
    members.append(_p(model, family_name="Berger", email="anna@acme.example"))
    rows = {f.field: f for f in score_cluster(model, incoming, members).fields}
    assert rows["email"].level == "exact"


def test_agreeing_with_one_of_many_values_counts_less() -> None:
    model = default_model("worker")
    incoming = _p(model, family_name="Berger", address={"city": "Berlin"})
    one = [_p(model, family_name="Berger", address={"city": "Berlin"})]
    four = one + [
        _p(model, family_name="Berger", address={"city": c}) for c in ("Paris", "Rome", "Oslo")
    ]
    city_one = {f.field: f for f in score_cluster(model, incoming, one).fields}["address"]
    city_four = {f.field: f for f in score_cluster(model, incoming, four).fields}["address"]
    assert city_one.level == city_four.level == "same_locality"
    assert city_four.weight == pytest.approx(city_one.weight - 2)  # log2(4 distinct cities)


def test_score_clusters_scores_two_golden_records_on_their_own_evidence() -> None:
    model = default_model("worker")
    psa = [_p(model, given_name="Anna", family_name="Berger", employee_number="E1")]
    erp = [_p(model, given_name="Anna", family_name="Berger", national_id="X9")]
    hcm = _p(model, given_name="Anna", family_name="Berger", national_id="X9", employee_number="E1")
    # Before the full record joins ERP's golden record, the two share only a name.
    assert score_clusters(model, psa, erp).probability < model.thresholds.auto_link
    both = score_clusters(model, psa, [*erp, hcm])
    assert both.probability >= model.thresholds.auto_link
    assert both.best_member == 1
    rows = {f.field: f for f in both.fields}
    assert rows["employee_number"].level == "exact" and rows["employee_number"].member == 1
    with pytest.raises(ValueError, match="at least one member"):
        score_clusters(model, [], erp)


def test_cluster_scoring_needs_members_and_a_known_rule() -> None:
    model = _model()
    with pytest.raises(ValueError, match="at least one member"):
        score_cluster(model, _p(model), [])
    with pytest.raises(ValueError, match="unknown cluster rule"):
        score_cluster(model, _p(model), [_p(model)], rule="average")  # type: ignore[arg-type]


def test_cluster_score_is_json() -> None:
    model = default_model("worker")
    s = score_cluster(model, _p(model, given_name="Anna"), [_p(model), _p(model, given_name="A")])
    assert json.loads(json.dumps(s.to_dict()))["rule"] == "field_best"
    assert msgspec.json.decode(msgspec.json.encode(s), type=ClusterScore) == s


# --- decisions -----------------------------------------------------------------------


def _score(p: float) -> ClusterScore:
    weight = math.log2(p / (1 - p))
    return ClusterScore(
        weight=weight,
        probability=p,
        prior_weight=0.0,
        fields=(),
        model_version=1,
        rule="field_best",
        best_member=0,
    )


def test_decide_link_review_new() -> None:
    model = _model()  # auto_link 0.9, review 0.5
    link = decide(model, {"g1": _score(0.95), "g2": _score(0.6), "g3": _score(0.1)})
    assert (link.outcome, link.golden_id) == ("link", "g1")
    assert [c.golden_id for c in link.candidates] == ["g1", "g2"]

    chain = decide(model, {"g1": _score(0.95), "g2": _score(0.99)})
    assert (chain.outcome, chain.golden_id) == ("review", "g2")  # never a silent chain merge
    assert [c.golden_id for c in chain.candidates] == ["g2", "g1"]

    band = decide(model, {"g1": _score(0.7), "g2": _score(0.2)})
    assert (band.outcome, band.golden_id) == ("review", "g1")
    assert [c.golden_id for c in band.candidates] == ["g1"]

    new = decide(model, {"g1": _score(0.3)})
    assert (new.outcome, new.golden_id, new.candidates) == ("new", None, ())
    assert decide(model, {}).outcome == "new"
    assert json.loads(json.dumps(link.to_dict()))["outcome"] == "link"


def test_thresholds_are_inclusive() -> None:
    model = _model()
    assert decide(model, {"g": _score(0.9)}).outcome == "link"
    assert decide(model, {"g": _score(0.5)}).outcome == "review"


def test_compiled_model_is_cached_per_object() -> None:
    model = _model()
    assert compile_model(model) is compile_model(model)
    other = MatchModel.from_json(model.to_json())
    assert compile_model(other) is not compile_model(model)
