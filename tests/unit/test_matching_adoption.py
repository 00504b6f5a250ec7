"""matching.adoption: when a fitted model may replace the one in force."""

from __future__ import annotations

import msgspec

from matching.adoption import MIN_LINKS, Tally, band, judge, report, tally
from matching.model import MatchModel, default_model
from matching.prepare import prepare
from matching.scoring import score_cluster


def plausible() -> MatchModel:
    return msgspec.structs.replace(default_model("worker"), prior=1e-4)


def test_a_plausible_model_linking_about_as_much_is_adopted() -> None:
    verdict = judge(plausible(), True, Tally(100, 30, 900), Tally(120, 20, 890))
    assert verdict.adopt and verdict.reasons == ()


def test_a_model_whose_em_did_not_converge_is_refused() -> None:
    verdict = judge(plausible(), False, Tally(100, 30, 900), Tally(100, 30, 900))
    assert not verdict.adopt and verdict.reasons == ("EM did not converge",)


def test_a_prior_outside_the_sane_range_is_refused() -> None:
    for prior in (1e-12, 0.3):
        model = msgspec.structs.replace(plausible(), prior=prior)
        verdict = judge(model, True, Tally(10, 0, 0), Tally(10, 0, 0))
        assert not verdict.adopt and "prior" in verdict.reasons[0]


def test_agreement_weighing_against_a_match_is_refused() -> None:
    model = plausible()
    given = model.fields[0]
    exact = msgspec.structs.replace(given.levels[0], m=0.01, u=0.02)
    fields = (msgspec.structs.replace(given, levels=(exact, *given.levels[1:])), *model.fields[1:])
    verdict = judge(msgspec.structs.replace(model, fields=fields), True, Tally(5), Tally(5))
    assert not verdict.adopt
    assert verdict.reasons == ("given_name: agreeing (exact) has m 0.01 <= u 0.02",)


def test_links_more_than_doubled_or_halved_are_refused_once_the_sample_counts() -> None:
    model = plausible()
    assert not judge(model, True, Tally(MIN_LINKS), Tally(2 * MIN_LINKS + 1)).adopt
    assert not judge(model, True, Tally(2 * MIN_LINKS + 1), Tally(MIN_LINKS)).adopt
    assert judge(model, True, Tally(MIN_LINKS), Tally(2 * MIN_LINKS)).adopt
    # Too few links either way to tell a change from noise.
    assert judge(model, True, Tally(3), Tally(MIN_LINKS - 1)).adopt
    assert not judge(model, True, Tally(0), Tally(MIN_LINKS)).adopt


def test_pairs_are_counted_in_the_band_the_matcher_puts_them() -> None:
    model = default_model("worker")
    ada = {"given_name": "Ada", "family_name": "Lovelace", "date_of_birth": "1950-01-10"}
    same = prepare(model, "worker", ada)
    typo = prepare(model, "worker", {**ada, "family_name": "Lovelacee"})
    other = prepare(
        model,
        "worker",
        {"given_name": "Alan", "family_name": "Turing", "date_of_birth": "1954-06-07"},
    )
    pairs = [(same, [typo]), (same, [other]), (typo, [same])]
    counted = tally(model, None, pairs)
    assert counted == Tally(link=2, review=0, apart=1)
    assert band(model, score_cluster(model, same, [other], None)) == "apart"


def test_the_stored_report_says_the_decision_and_why() -> None:
    refused = judge(plausible(), False, Tally(1), Tally(1))
    assert report(refused, False, Tally(1), Tally(1))["decision"] == "refused"
    assert report(refused, True, Tally(1), Tally(1))["decision"] == "forced"
    stored = report(judge(plausible(), True, Tally(1), Tally(2)), False, Tally(1), Tally(2))
    assert stored == {
        "decision": "adopted",
        "reasons": [],
        "current": {"link": 1, "review": 0, "apart": 0},
        "fitted": {"link": 2, "review": 0, "apart": 0},
    }


def test_retraining_is_due_once_the_held_records_grew_by_the_factor() -> None:
    from mdm.services.adoption import due

    assert not due(None, 999, 2.0, 1_000) and due(None, 1_000, 2.0, 1_000)  # packaged model
    assert not due(600, 1_199, 2.0, 1_000) and due(600, 1_200, 2.0, 1_000)
    assert due(0, 2, 2.0, 1_000)  # fitted when nothing was held
