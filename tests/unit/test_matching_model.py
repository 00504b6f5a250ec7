"""The declarative match model: defaults, JSON/TOML round trips and validation (no I/O)."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.model import (
    ENTITIES,
    PRIOR_CAP,
    PRIOR_MIN,
    BlockingRule,
    FieldComparison,
    Level,
    MatchModel,
    ModelError,
    Thresholds,
    default_model,
    rounded_size,
    upgraded,
)
from schemas.entities import ENTITY_TYPES, Address


def _data(entity: str = "worker") -> dict[str, Any]:
    return default_model(entity).to_dict()


@pytest.mark.parametrize("entity", ENTITIES)
def test_default_models_load_and_validate(entity: str) -> None:
    model = default_model(entity)
    assert model.entity == entity
    assert model.version == 1
    assert 0 < model.prior < 1
    assert 0 < model.thresholds.review <= model.thresholds.auto_link < 1
    assert model.fields and model.blocking
    model.validate()


@pytest.mark.parametrize("entity", ENTITIES)
def test_default_identifiers_are_strong_evidence_both_ways(entity: str) -> None:
    model = default_model(entity)
    identifiers = [f for f in model.fields if f.comparator == "identifier"]
    assert identifiers
    for f in identifiers:
        exact, other = f.levels[0], f.levels[-1]
        assert exact.label == "exact"
        assert exact.m / exact.u > 2**15  # agreement: at least 15 bits for a match
        if f.name != "employee_number":  # per-system numbers often differ for one person
            assert other.m / other.u < 2**-3  # disagreement: real counter-evidence


@pytest.mark.parametrize("entity", ENTITIES)
def test_default_sources_are_attributes_of_the_entity(entity: str) -> None:
    struct = ENTITY_TYPES[entity]
    for f in default_model(entity).fields:
        for path in f.source:
            head, _, rest = path.partition(".")
            assert head in struct.__struct_fields__, path
            if rest:
                assert rest in Address.__struct_fields__, path


@pytest.mark.parametrize("entity", ENTITIES)
def test_round_trip_json_and_toml(entity: str) -> None:
    model = default_model(entity)
    assert MatchModel.from_json(model.to_json()) == model
    assert MatchModel.from_toml(model.to_toml()) == model
    # The JSON is plain builtins (lists, not tuples) and TOML is real TOML.
    assert json.loads(model.to_json()) == model.to_dict()
    assert isinstance(model.to_dict()["fields"], list)
    assert tomllib.loads(model.to_toml())["entity"] == entity


_labels = st.lists(
    st.sampled_from(["exact", "jaro_winkler>=0.9", "levenshtein<=2", "token_set>=80"]),
    min_size=1,
    max_size=3,
    unique=True,
)
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@st.composite
def _models(draw: st.DrawFn) -> MatchModel:
    fields = []
    for k in range(draw(st.integers(1, 4))):
        labels = [*draw(_labels), "else"]
        m = draw(st.lists(st.floats(0.01, 1), min_size=len(labels), max_size=len(labels)))
        u = draw(st.lists(st.floats(0.01, 1), min_size=len(labels), max_size=len(labels)))
        levels = tuple(
            Level(label=label, m=a / sum(m), u=b / sum(u), tf_adjust=draw(st.booleans()))
            if label != "else"
            else Level(label=label, m=a / sum(m), u=b / sum(u))
            for label, a, b in zip(labels, m, u, strict=True)
        )
        fields.append(
            FieldComparison(name=f"f{k}", comparator="text", source=(f"a{k}",), levels=levels)
        )
    low = draw(st.floats(1e-6, 0.99))
    high = draw(st.floats(low, 0.999999))
    model = MatchModel(
        entity=draw(st.sampled_from(ENTITIES)),
        version=draw(st.integers(1, 10**6)),
        prior=draw(st.floats(1e-12, 0.5)),
        thresholds=Thresholds(auto_link=high, review=low),
        fields=tuple(fields),
        blocking=(BlockingRule(name="r", parts=("f0.v[:3]",), unordered=draw(st.booleans())),),
        description=draw(_text),
    )
    model.validate()
    return model


@settings(max_examples=60, deadline=None)
@given(_models())
def test_any_valid_model_round_trips(model: MatchModel) -> None:
    assert MatchModel.from_toml(model.to_toml()) == model
    assert MatchModel.from_json(model.to_json()) == model


def _with_level(data: dict[str, Any], field: int, level: int, **change: Any) -> dict[str, Any]:
    data["fields"][field]["levels"][level].update(change)
    return data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["fields"][0].update(comparator="soundalike"), "unknown comparator"),
        (lambda d: _with_level(d, 0, 0, m=1.0), "strictly between 0 and 1"),
        (lambda d: _with_level(d, 0, 0, u=0.0), "strictly between 0 and 1"),
        (lambda d: _with_level(d, 0, 0, m=-0.2), "strictly between 0 and 1"),
        (lambda d: _with_level(d, 0, -1, label="other"), "last level must be 'else'"),
        (lambda d: _with_level(d, 0, 0, label="else"), "'else'"),
        (lambda d: _with_level(d, 0, 1, label="soundex"), "has no level 'soundex'"),
        (lambda d: _with_level(d, 0, 2, label="jaro_winkler"), "needs a threshold"),
        (lambda d: _with_level(d, 0, 2, label="jaro_winkler<=0.9"), "use jaro_winkler>="),
        (lambda d: _with_level(d, 0, 2, label="jaro_winkler>=x"), "not a number"),
        (lambda d: _with_level(d, 0, 1, label="exact"), "appears twice"),
        (lambda d: _with_level(d, 0, 0, m=0.3), "add up to"),
        (lambda d: _with_level(d, 0, -1, tf_adjust=True), "cannot be term-frequency"),
        (lambda d: d["fields"][0].update(levels=d["fields"][0]["levels"][-1:]), "two levels"),
        (lambda d: d["fields"][0].update(source=[]), "source names no attribute"),
        (lambda d: d["fields"][1].update(name=d["fields"][0]["name"]), "appears twice"),
        (lambda d: d.update(entity="vendor"), "entity 'vendor'"),
        (lambda d: d.update(version=0), "at least 1"),
        (lambda d: d.update(prior=0.0), "prior"),
        (lambda d: d["thresholds"].update(review=0.999, auto_link=0.9), "must not be above"),
        (lambda d: d["blocking"][0].update(parts=["nofield.v"]), "names no field"),
        (lambda d: d["blocking"][0].update(parts=["family_name"]), "is not 'field.feature'"),
        (lambda d: d["blocking"][0].update(parts=[]), "names no part"),
        (lambda d: d.update(unknown=1), "unknown field"),
        (lambda d: d.update(fields=[]), "at least one field"),
    ],
)
def test_validation_names_the_problem(mutate: Any, message: str) -> None:
    data = _data()
    mutate(data)
    with pytest.raises(ModelError, match=message):
        MatchModel.validated(data)


def test_bad_documents_are_model_errors() -> None:
    with pytest.raises(ModelError, match="not JSON"):
        MatchModel.from_json("{")
    with pytest.raises(ModelError, match="not TOML"):
        MatchModel.from_toml("entity = ")
    with pytest.raises(ModelError, match="version"):
        MatchModel.from_toml(
            default_model("worker").to_toml().replace("version = 1", 'version = "1"')
        )


def test_default_model_rejects_unknown_entity() -> None:
    with pytest.raises(ValueError, match="unknown entity"):
        default_model("vendor")


def test_with_parameters_keeps_shape_and_validates() -> None:
    model = default_model("project")
    trained = model.with_parameters(version=2, prior=0.01, fields=model.fields)
    assert (trained.version, trained.prior, trained.fields) == (2, 0.01, model.fields)
    broken = msgspec.structs.replace(model.fields[0], comparator="nope")
    with pytest.raises(ModelError):
        model.with_parameters(version=2, prior=0.01, fields=(broken, *model.fields[1:]))


def test_the_prior_follows_the_store_size() -> None:
    worker = default_model("worker")
    assert worker.matches_per_record == 1.0
    # r / (N - 1), with N rounded to steps of 2^(1/8).
    assert worker.prior_at(10_000) == pytest.approx(1 / (rounded_size(10_000) - 1))
    assert abs(rounded_size(10_000) - 10_000) / 10_000 < 0.05
    assert worker.prior_at(100_000) < worker.prior_at(10_000) < worker.prior_at(2_000)
    # A small store is judged as though it held some thousand records; a huge one
    # never below the floor.
    assert worker.prior_at(0) == worker.prior_at(50) == PRIOR_CAP
    assert worker.prior_at(10**12) == PRIOR_MIN
    # Records held a few apart give one prior (and one compiled model per step).
    assert worker.prior_at(10_000) == worker.prior_at(10_020)
    sized = worker.at_size(10_000)
    assert (sized.version, sized.prior) == (worker.version, worker.prior_at(10_000))
    # A model without matches_per_record keeps its fixed prior.
    fixed = msgspec.structs.replace(worker, matches_per_record=None)
    assert fixed.prior_at(10_000) == fixed.prior == worker.prior


def test_training_measures_the_matches_per_record() -> None:
    worker = default_model("worker")
    trained = worker.with_parameters(
        version=2, prior=0.001, fields=worker.fields, matches_per_record=2.5
    )
    assert trained.matches_per_record == 2.5
    assert MatchModel.validated(trained.to_dict()).prior_at(5_001) == pytest.approx(
        2.5 / (rounded_size(5_001) - 1)
    )
    with pytest.raises(ModelError):
        msgspec.structs.replace(worker, matches_per_record=-1.0).validate()


def _older_worker_model() -> MatchModel:
    """The packaged worker model as an older release stored and fitted it: no
    `other_mailbox` e-mail level, no exclusive identifiers, fitted m on the e-mail levels."""
    data = default_model("worker").to_dict()
    email = next(f for f in data["fields"] if f["name"] == "email")
    email["levels"] = [
        {"label": "exact", "m": 0.6, "u": 1e-06},
        {"label": "same_local_part", "m": 0.1, "u": 1e-05},
        {"label": "same_domain", "m": 0.1, "u": 0.3},
        {"label": "else", "m": 0.2, "u": 0.699989},
    ]
    data["identity"]["exclusive"] = []
    data["version"] = 4
    data["prior"] = 2e-4
    return MatchModel.validated(data)


def test_an_older_model_is_upgraded_to_the_packaged_shape_keeping_its_fit() -> None:
    older, packaged = _older_worker_model(), default_model("worker")
    new = upgraded(older, packaged)
    email = next(f for f in new.fields if f.name == "email")
    packaged_email = next(f for f in packaged.fields if f.name == "email")
    assert [lv.label for lv in email.levels] == [lv.label for lv in packaged_email.levels]
    assert sum(lv.m for lv in email.levels) == pytest.approx(1.0)
    assert sum(lv.u for lv in email.levels) == pytest.approx(1.0)
    by_label = {lv.label: lv for lv in email.levels}
    # The fitted levels keep their proportions; the new one starts from the packaged m.
    assert by_label["exact"].m / by_label["else"].m == pytest.approx(0.6 / 0.2)
    added = next(lv for lv in packaged_email.levels if lv.label == "other_mailbox")
    assert by_label["other_mailbox"].m == pytest.approx(added.m / (1 + added.m))
    assert new.identity == packaged.identity
    # What the stored index and the fit depend on stays: version, prior, keys, thresholds.
    assert (new.version, new.prior, new.blocking, new.thresholds) == (
        older.version,
        older.prior,
        older.blocking,
        older.thresholds,
    )
    unchanged = [f for f in older.fields if f.name != "email"]
    assert [f for f in new.fields if f.name != "email"] == unchanged
    # The packaged model is its own upgrade.
    assert upgraded(packaged, packaged) == packaged


def test_a_field_compared_otherwise_is_not_upgraded() -> None:
    data = _older_worker_model().to_dict()
    email = next(f for f in data["fields"] if f["name"] == "email")
    email["source"] = ["email", "work_email"]
    older = MatchModel.validated(data)
    new = upgraded(older, default_model("worker"))
    assert next(f for f in new.fields if f.name == "email") == next(
        f for f in older.fields if f.name == "email"
    )
    with pytest.raises(ModelError):
        upgraded(older, default_model("customer"))
