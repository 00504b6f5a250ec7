"""The hub's peers in the accuracy benchmark: Splink 5 and two recordlinkage classifiers.

Each gets the same records as the hub and returns a cluster id per
(source, source_id). Splink and ECM are unsupervised: they never see the truth.
Only `SplinkRun.sweep`, scored afterwards by bench/match_quality.py, uses the
truth, to find the threshold that would have been best (an oracle figure).
LogisticRegression is a supervised ceiling: it is trained on half of the truth
(`run_logistic`).

All peers get the same prepared columns (`prepare`): the raw attributes put
through the hub's own standardizers (matching.standardize: accents, case and
punctuation folded, legal suffixes removed from company names, e-mail lower
case, phones in E.164, tax ids compacted, countries as ISO codes). That is
what a careful Splink user does before linking, and it means any difference
in the results comes from matching, not from cleaning.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.datasets import Dataset, Key
from bench.evaluate import clusters_from_pairs
from matching import standardize as std
from matching.text import fold

COLUMNS: dict[str, tuple[str, ...]] = {
    "worker": (
        "given_name", "family_name", "full_name", "date_of_birth", "national_id",
        "employee_number", "email", "email_user", "phone", "line1", "city",
        "postal_code", "country",
    ),
    "customer": (
        "name", "name4", "tax_id", "duns", "website", "email", "phone", "line1", "city",
        "postal_code", "country",
    ),
}  # fmt: skip


# --- shared preparation ------------------------------------------------------------


def _value(result: std.Standardized) -> str | None:
    value = result.value
    return value if isinstance(value, str) and value else None


def _folded(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    return fold(raw) or None


def prepare(records: Sequence[Mapping[str, Any]], entity: str) -> list[dict[str, str | None]]:
    """One flat row of standardized columns per record; `unique_id` is "source:source_id"."""
    rows = []
    for record in records:
        a = record["attributes"]
        address = a.get("address") or {}
        country = _value(std.country(address["country"])) if address.get("country") else None
        row: dict[str, str | None] = {
            "unique_id": f"{record['source']}:{record['source_id']}",
            "source": record["source"],
            "email": _value(std.email(a["email"])) if a.get("email") else None,
            "phone": _value(std.phone(a["phone"], country)) if a.get("phone") else None,
            "line1": _folded(address.get("line1")),
            "city": _folded(address.get("city")),
            "postal_code": (
                _value(std.postal_code(address["postal_code"]))
                if address.get("postal_code")
                else None
            ),
            "country": country,
        }
        if entity == "worker":
            given, family = _folded(a.get("given_name")), _folded(a.get("family_name"))
            dob = a.get("date_of_birth")
            nid = a.get("national_id")
            number = a.get("employee_number")
            row |= {
                "given_name": given,
                "family_name": family,
                "full_name": f"{given} {family}" if given and family else None,
                "date_of_birth": _value(std.iso_date(dob)) if dob else None,
                "national_id": _value(std.national_id(nid, country)) if nid else None,
                "employee_number": _value(std.employee_number(number)) if number else None,
                "email_user": row["email"].split("@")[0] if row["email"] else None,
            }
        else:
            name = std.company_key(a["name"]) or None
            tax_country = a.get("tax_country") or country
            tax = a.get("tax_id")
            row |= {
                "name": name,
                "name4": name[:4] if name else None,
                "tax_id": _value(std.tax_id(tax, tax_country)) if tax else None,
                "duns": _value(std.duns(a["duns"])) if a.get("duns") else None,
                "website": std.website_domain(a["website"]) if a.get("website") else None,
            }
        rows.append(row)
    return rows


def present_columns(rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Columns with a value in at least 1% of rows (a comparison needs something to compare)."""
    counts: dict[str, int] = {}
    for row in rows:
        for column, value in row.items():
            if value is not None:
                counts[column] = counts.get(column, 0) + 1
    return {c for c, n in counts.items() if n >= max(1, len(rows) // 100)}


def _key(unique_id: str) -> Key:
    source, _, source_id = unique_id.partition(":")
    return (source, source_id)


def _dataset_keys(dataset: Dataset) -> list[Key]:
    return [(r["source"], r["source_id"]) for r in dataset.records]


# Candidate pairs: several keys per record, so that one typo or one missing
# value does not hide a match. A tuple is "same value in all these columns";
# SWAPPED is given name against family name both ways. Splink's passes can be
# broad (a single surname or birth date), because its u probabilities come
# from random pairs, not from the candidates; ECM fits m and u on the
# candidates themselves, so a pass that makes thousands of pairs agree on one
# field alone (same birth date, nothing else) pulls them into its match class:
# its passes pair two fields.
SWAPPED = "swapped names"
BLOCKING: dict[str, dict[str, tuple[tuple[str, ...] | str, ...]]] = {
    "splink": {
        "worker": (
            ("given_name", "family_name"),
            SWAPPED,
            ("family_name",),
            ("date_of_birth",),
            ("given_name", "postal_code"),
            ("national_id",),
            ("employee_number",),
            ("email_user",),
            ("phone",),
        ),
        "customer": (
            ("name",),
            ("name4",),
            ("tax_id",),
            ("duns",),
            ("website",),
            ("email",),
            ("phone",),
            ("postal_code",),
        ),
    },
    "ecm": {
        "worker": (
            ("given_name", "family_name"),
            SWAPPED,
            ("family_name", "date_of_birth"),
            ("given_name", "date_of_birth"),
            ("family_name", "postal_code"),
            ("given_name", "postal_code"),
            ("date_of_birth", "postal_code"),
            ("date_of_birth", "city"),
            ("national_id",),
            ("employee_number",),
            ("email_user",),
            ("phone",),
        ),
        "customer": (
            ("name",),
            ("name4", "city"),
            ("name4", "country"),
            ("tax_id",),
            ("duns",),
            ("website",),
            ("phone",),
            ("email", "name4"),
            ("postal_code", "name4"),
        ),
    },
}


def _blocking_keys(peer: str, entity: str, present: set[str]) -> list[tuple[str, ...] | str]:
    keys: list[tuple[str, ...] | str] = []
    for key in BLOCKING[peer][entity]:
        needed = ("given_name", "family_name") if key == SWAPPED else key
        if all(c in present for c in needed):
            keys.append(key)
    return keys


# --- Splink 5 ------------------------------------------------------------------------


@dataclass
class SplinkRun:
    """Splink's clusters at its default cut (p >= 0.5) and the pairs it scored."""

    clusters: dict[Key, Hashable]
    scored_pairs: list[tuple[Key, Key, float]]
    seconds: float
    threshold: float = 0.5
    notes: list[str] = field(default_factory=list)


def _splink_comparisons(entity: str, present: set[str]) -> list[Any]:
    import splink.comparison_library as cl

    comparisons: list[Any] = []

    def add(columns: tuple[str, ...], comparison: Any) -> None:
        if all(c in present for c in columns):
            comparisons.append(comparison)

    def tf_exact(column: str) -> Any:
        return cl.ExactMatch(column).configure(term_frequency_adjustments=True)

    if entity == "worker":
        add(
            ("given_name", "family_name", "full_name"),
            cl.ForenameSurnameComparison(
                "given_name", "family_name", forename_surname_concat_col_name="full_name"
            ),
        )
        add(("date_of_birth",), cl.DateOfBirthComparison("date_of_birth", input_is_string=True))
        add(("national_id",), cl.DamerauLevenshteinAtThresholds("national_id", [1]))
        add(("employee_number",), cl.ExactMatch("employee_number"))
        add(("email",), cl.EmailComparison("email"))
        add(("phone",), cl.ExactMatch("phone"))
        add(("line1",), cl.JaroWinklerAtThresholds("line1", [0.9, 0.7]))
        add(("city",), tf_exact("city"))
        add(("postal_code",), tf_exact("postal_code"))
    else:
        add(("name",), cl.NameComparison("name"))
        add(("tax_id",), cl.ExactMatch("tax_id"))
        add(("duns",), cl.ExactMatch("duns"))
        add(("website",), tf_exact("website"))
        add(("email",), cl.EmailComparison("email"))
        add(("phone",), cl.ExactMatch("phone"))
        add(("line1",), cl.JaroWinklerAtThresholds("line1", [0.9, 0.7]))
        add(("city",), tf_exact("city"))
        add(("postal_code",), tf_exact("postal_code"))
        add(("country",), tf_exact("country"))
    return comparisons


def _splink_blocking_rule(key: tuple[str, ...] | str) -> Any:
    from splink import block_on

    if key == SWAPPED:
        return "l.given_name = r.family_name and l.family_name = r.given_name"
    return block_on(*key)


def _splink_training(entity: str, present: set[str]) -> tuple[list[Any], list[Any]]:
    """Deterministic rules for the prior, and the EM blocking passes."""
    from splink import block_on

    if entity == "worker":
        deterministic = [("given_name", "family_name", "date_of_birth"), ("national_id",)]
        em = [("given_name", "family_name"), ("date_of_birth",), ("email_user",)]
    else:
        deterministic = [("name", "postal_code"), ("tax_id",), ("duns",)]
        em = [("name",), ("postal_code",)]
    keep = [k for k in deterministic if all(c in present for c in k)]
    passes = [k for k in em if all(c in present for c in k)][:2]
    return [block_on(*k) for k in keep], [block_on(*k) for k in passes]


def _register(db_api: Any, rows: list[dict[str, Any]], columns: Sequence[str], name: str) -> Any:
    import pyarrow as pa

    # Every column as text, so an all-empty column is not guessed as some other type.
    schema = pa.schema([(c, pa.string()) for c in ("unique_id", "source", *columns)])
    table = pa.Table.from_pylist(rows, schema=schema)
    return db_api.register(table, dataset_display_name=name)


@dataclass
class SplinkModel:
    """A trained Splink linker and what it was trained on (for the latency measurement)."""

    linker: Any
    db_api: Any
    inputs: list[Any]
    columns: list[str]
    comparisons: int


def train_splink(
    dataset: Dataset, rows: list[dict[str, Any]], seed: int = 0
) -> tuple[SplinkModel, list[str]]:
    """Splink 5, DuckDB backend, unsupervised: prior from deterministic rules,
    u by random sampling, m by EM on two blocking passes."""
    from splink import DuckDBAPI, Linker, SettingsCreator

    notes: list[str] = []
    present = present_columns(rows)
    columns = [c for c in COLUMNS[dataset.entity] if c in present]
    comparisons = _splink_comparisons(dataset.entity, present)
    rules = [_splink_blocking_rule(k) for k in _blocking_keys("splink", dataset.entity, present)]
    db_api = DuckDBAPI()
    if dataset.link_only:
        left, right = dataset.link_only
        inputs = [
            _register(db_api, [r for r in rows if r["source"] == s], columns, s)
            for s in (left, right)
        ]
        link_type = "link_only"
    else:
        inputs = [_register(db_api, rows, columns, dataset.name)]
        link_type = "dedupe_only"
    settings = SettingsCreator(
        link_type=link_type,
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(inputs if len(inputs) > 1 else inputs[0], settings, log_level=logging.WARNING)
    deterministic, em_passes = _splink_training(dataset.entity, present)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=seed)
    for blocking_rule in em_passes:
        linker.training.estimate_parameters_using_expectation_maximisation(blocking_rule)
    notes.append(
        f"{len(comparisons)} comparisons, {len(rules)} blocking rules, {link_type}, "
        f"EM passes {len(em_passes)}"
    )
    return SplinkModel(linker, db_api, inputs, columns, len(comparisons)), notes


def run_splink(dataset: Dataset, seed: int = 0, floor: float = 0.001) -> SplinkRun:
    """Train, predict, and cluster at Splink's default cut (match probability >= 0.5).

    Pairs scoring at least `floor` are kept for the threshold sweep; the
    seconds cover preparation, training, prediction and clustering.
    """
    started = time.perf_counter()
    rows = prepare(dataset.records, dataset.entity)
    model, notes = train_splink(dataset, rows, seed)
    linker = model.linker
    predictions = linker.inference.predict(threshold_match_probability=floor)
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.5
    )
    cluster_rows = clustered.as_duckdbpyrelation().select("unique_id, cluster_id").fetchall()
    seconds = time.perf_counter() - started
    clusters: dict[Key, Hashable] = {_key(uid): cluster for uid, cluster in cluster_rows}
    for key in _dataset_keys(dataset):
        clusters.setdefault(key, ("singleton", key))
    pairs = (
        predictions.as_duckdbpyrelation()
        .select("unique_id_l, unique_id_r, match_probability")
        .fetchall()
    )
    scored = [(_key(a), _key(b), float(p)) for a, b, p in pairs]
    notes.append(f"{len(scored)} scored pairs with p >= {floor}")
    return SplinkRun(clusters, scored, seconds, notes=notes)


@dataclass(frozen=True)
class Latency:
    """One-new-record matching times against a trained model, in milliseconds."""

    records: int
    existing: int
    with_match: int  # new records with a candidate at p >= 0.5 (a sanity check)
    median_ms: float
    p99_ms: float
    max_ms: float


def splink_latency(dataset: Dataset, n: int = 50, warmup: int = 5, seed: int = 0) -> Latency:
    """Splink 5's time to match one new record against the rest, record by record.

    The model is trained on all records but `n + warmup` held-out ones, whose
    term frequencies are then computed. Each held-out record is then registered
    as a one-row table and linked against the rest with
    `linker.inference.predict_between` (Splink 5's replacement for v4's
    `find_matches_to_new_records`), results fetched; the first `warmup`
    timings are discarded. p99 of 50 timings is in effect their maximum.
    """
    import random

    rows = prepare(dataset.records, dataset.entity)
    held = set(random.Random(seed).sample(range(len(rows)), n + warmup))
    existing = [r for i, r in enumerate(rows) if i not in held]
    new = [r for i, r in enumerate(rows) if i in held]
    model, _ = train_splink(dataset, existing, seed)
    linker = model.linker
    tf_columns = ("full_name", "family_name", "given_name", "email", "city", "postal_code")
    for column in tf_columns:
        if column in model.columns:
            linker.table_management.compute_tf_table(column)
    timings = []
    with_match = 0
    for i, row in enumerate(new):
        started = time.perf_counter()
        one = _register(model.db_api, [row], model.columns, f"new_record_{i}")
        found = linker.inference.predict_between(
            model.inputs, one, threshold_match_probability=0.01, warning_mode="never"
        )
        candidates = found.as_record_list()
        timings.append((time.perf_counter() - started) * 1000)
        if i >= warmup and any(c["match_probability"] >= 0.5 for c in candidates):
            with_match += 1
        found.drop_table_from_database_and_remove_from_cache()
    measured = sorted(timings[warmup:])
    p99_index = min(len(measured) - 1, max(0, round(0.99 * len(measured)) - 1))
    return Latency(
        records=len(measured),
        existing=len(existing),
        with_match=with_match,
        median_ms=statistics.median(measured),
        p99_ms=measured[p99_index],
        max_ms=measured[-1],
    )


# --- recordlinkage's ECM ---------------------------------------------------------


def _ecm_features(entity: str, present: set[str]) -> list[tuple[str, str, str | None]]:
    """(column, method, threshold): binary comparisons, as ECM requires."""
    if entity == "worker":
        wanted = [
            ("given_name", "jarowinkler", "0.85"),
            ("family_name", "jarowinkler", "0.85"),
            ("date_of_birth", "exact", None),
            ("national_id", "exact", None),
            ("employee_number", "exact", None),
            ("email", "exact", None),
            ("phone", "exact", None),
            ("line1", "jarowinkler", "0.85"),
            ("city", "exact", None),
            ("postal_code", "exact", None),
        ]
    else:
        wanted = [
            ("name", "jarowinkler", "0.85"),
            ("tax_id", "exact", None),
            ("duns", "exact", None),
            ("website", "exact", None),
            ("email", "exact", None),
            ("phone", "exact", None),
            ("line1", "jarowinkler", "0.85"),
            ("city", "exact", None),
            ("postal_code", "exact", None),
            ("country", "exact", None),
        ]
    return [w for w in wanted if w[0] in present]


@dataclass
class EcmRun:
    clusters: dict[Key, Hashable]
    seconds: float
    notes: list[str] = field(default_factory=list)


def _candidates(dataset: Dataset, blocking: str) -> tuple[Any, Any, tuple[Any, ...], set[str]]:
    """The prepared records as a frame indexed by unique_id, the candidate pairs of the
    union of `blocking`'s passes ("ecm" or "splink"), the frames to compare them in (two
    for a linkage task) and the columns present."""
    import pandas as pd
    import recordlinkage as rl

    rows = prepare(dataset.records, dataset.entity)
    present = present_columns(rows)
    frame = pd.DataFrame(rows).set_index("unique_id")
    indexer = rl.Index()
    for key in _blocking_keys(blocking, dataset.entity, present):
        if key == SWAPPED:
            indexer.block(
                left_on=["given_name", "family_name"], right_on=["family_name", "given_name"]
            )
        else:
            indexer.block(list(key))
    if dataset.link_only:
        left = frame[frame["source"] == dataset.link_only[0]]
        right = frame[frame["source"] == dataset.link_only[1]]
        frames: tuple[Any, ...] = (left, right)
    else:
        frames = (frame,)
    return frame, indexer.index(*frames), frames, present


def _compare(features_used: list[tuple[str, str, str | None]], *, binary: bool = True) -> Any:
    """recordlinkage's comparisons of `features_used`; with `binary` False, string
    similarities are kept as they are instead of cut at their threshold."""
    import recordlinkage as rl

    compare = rl.Compare(n_jobs=1)
    for column, method, threshold in features_used:
        if method == "exact":
            compare.exact(column, column, label=column)
        elif binary:
            compare.string(
                column, column, method=method, threshold=float(threshold or 0), label=column
            )
        else:
            compare.string(column, column, method=method, label=column)
    return compare


def run_ecm(dataset: Dataset, blocking: str = "ecm") -> EcmRun:
    """recordlinkage's ECM, unsupervised, over the union of several blocking passes.

    `blocking` picks the passes: "ecm" (pairs of fields) or "splink" (Splink's
    passes, single fields among them). ECM fits on the candidates, so it is
    sensitive to this choice in both directions (docs/benchmarks.md shows
    both). Features are binary (exact agreement, or Jaro-Winkler >= 0.85 on
    names and street lines), as recordlinkage's ECM requires with its "jaro"
    start; a missing value counts as disagreement (recordlinkage's default).
    Clusters are the connected components of the predicted matches.
    """
    import recordlinkage as rl

    started = time.perf_counter()
    frame, pairs, frames, present = _candidates(dataset, blocking)
    features = _compare(_ecm_features(dataset.entity, present)).compute(pairs, *frames)
    # ECM estimates m and u per feature: a feature that never (or always) agrees
    # has nothing to estimate and breaks the fit.
    varying = [c for c in features.columns if 0 < features[c].sum() < len(features)]
    features = features[varying]
    classifier = rl.ECMClassifier(binarize=None)
    matches = classifier.fit_predict(features)
    clustered = clusters_from_pairs(
        (_key(u) for u in frame.index), ((_key(a), _key(b)) for a, b in matches)
    )
    seconds = time.perf_counter() - started
    notes = [f"{len(pairs)} candidate pairs, features {', '.join(varying)}, {len(matches)} matches"]
    return EcmRun(dict(clustered), seconds, notes)


# --- recordlinkage's LogisticRegression (supervised, half the labels) ------------------


def _true_pairs_of(dataset: Dataset, entities: set[str], frames: tuple[Any, ...]) -> list[Any]:
    """Every pair of records of one of `entities`, as (left, right) unique ids of `frames`
    (for a linkage task: one record from each frame)."""
    import itertools

    members: dict[str, list[str]] = {}
    for record in dataset.records:
        entity = dataset.truth[(record["source"], record["source_id"])]
        if entity in entities:
            members.setdefault(entity, []).append(f"{record['source']}:{record['source_id']}")
    pairs = []
    if dataset.link_only:
        left, right = set(frames[0].index), set(frames[1].index)
        for ids in members.values():
            pairs += [(a, b) for a in ids if a in left for b in ids if b in right]
    else:
        for ids in members.values():
            pairs += list(itertools.combinations(ids, 2))
    return pairs


def run_logistic(dataset: Dataset, seed: int = 0) -> EcmRun:
    """recordlinkage's LogisticRegressionClassifier, a supervised ceiling for the others.

    Candidates are Splink's blocking passes, as in the second ECM row. It is
    trained on half of the truth: every pair of a seeded half of the true
    entities (matches), and a seeded half of the candidate pairs whose records
    are different entities (non-matches). The features are ECM's, with the
    Jaro-Winkler similarities of names and street lines kept as numbers rather
    than cut at 0.85. It then classifies every candidate pair of all records
    (those it trained on among them) at probability 0.5, and clusters are the
    connected components of the predicted matches, as for ECM.
    """
    import random

    import numpy as np
    import pandas as pd
    import recordlinkage as rl

    started = time.perf_counter()
    frame, pairs, frames, present = _candidates(dataset, "splink")
    compare = _compare(_ecm_features(dataset.entity, present), binary=False)
    rng = random.Random(seed)
    entities = sorted(set(dataset.truth.values()))
    labelled = set(rng.sample(entities, len(entities) // 2))
    matches = _true_pairs_of(dataset, labelled, frames)
    truth = {f"{s}:{i}": e for (s, i), e in dataset.truth.items()}
    apart = [(a, b) for a, b in pairs if truth[a] != truth[b]]
    keep = np.random.default_rng(seed).random(len(apart)) < 0.5
    non_matches = [p for p, k in zip(apart, keep, strict=True) if k]
    train = pd.MultiIndex.from_tuples(matches + non_matches)
    train_features = compare.compute(train, *frames).fillna(0)
    match_index = pd.MultiIndex.from_tuples(matches)
    classifier = rl.LogisticRegressionClassifier()
    classifier.fit(train_features, match_index)
    features = compare.compute(pairs, *frames).fillna(0)
    predicted = classifier.predict(features)
    clustered = clusters_from_pairs(
        (_key(u) for u in frame.index), ((_key(a), _key(b)) for a, b in predicted)
    )
    seconds = time.perf_counter() - started
    notes = [
        f"{len(pairs)} candidate pairs; trained on {len(matches)} matching pairs of "
        f"{len(labelled)} of {len(entities)} true entities and {len(non_matches)} "
        f"non-matching candidate pairs; {len(predicted)} matches"
    ]
    return EcmRun(dict(clustered), seconds, notes)
