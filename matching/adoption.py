"""Whether a newly fitted match model may replace the one in force.

Both models score the same candidate pairs (a sample of held records, each against
the golden records the matcher would compare it with) and each pair is counted in
the band it falls in: `link` (at or above `auto_link`, no conflict), `review`
(at or above `review`) or `apart`. The fitted model is refused when it is
implausible:

- EM did not converge;
- its prior is outside [MIN_PRIOR, MAX_PRIOR]: below, EM found no matches at
  all; above, more than one pair of records in ten would be a match;
- a field's agreement level (its first) has m <= u: agreeing would count
  against a match;
- it links more than FACTOR times as many pairs as the model in force, or fewer
  than 1 / FACTOR as many, when either links at least MIN_LINKS of them (fewer
  is too few to tell a change from noise).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from matching.model import MatchModel
from matching.prepare import Prepared
from matching.scoring import ClusterScore, TermFrequencies, score_cluster

MIN_PRIOR = 1e-10
MAX_PRIOR = 0.1
FACTOR = 2.0
MIN_LINKS = 20


@dataclass(frozen=True, slots=True)
class Tally:
    """Candidate pairs per band under one model."""

    link: int = 0
    review: int = 0
    apart: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verdict:
    adopt: bool
    reasons: tuple[str, ...]  # why not, when refused


def band(model: MatchModel, score: ClusterScore) -> str:
    """link, review or apart: the band the matcher puts `score` in."""
    if score.links(model):
        return "link"
    return "review" if score.probability >= model.thresholds.review else "apart"


def tally(
    model: MatchModel,
    tf: TermFrequencies | None,
    pairs: Iterable[tuple[Prepared, Sequence[Prepared]]],
) -> Tally:
    """How `model` bands each (record, candidate golden record's members) pair."""
    counts = {"link": 0, "review": 0, "apart": 0}
    for record, members in pairs:
        counts[band(model, score_cluster(model, record, members, tf))] += 1
    return Tally(**counts)


def judge(fitted: MatchModel, converged: bool, current: Tally, candidate: Tally) -> Verdict:
    """Adopt `fitted` (whose pairs banded as `candidate`, the model in force's as `current`)?"""
    reasons = []
    if not converged:
        reasons.append("EM did not converge")
    if not MIN_PRIOR <= fitted.prior <= MAX_PRIOR:
        reasons.append(f"prior {fitted.prior:.3g} outside [{MIN_PRIOR:g}, {MAX_PRIOR:g}]")
    for f in fitted.fields:
        agree = f.levels[0]
        if agree.m <= agree.u:
            reasons.append(
                f"{f.name}: agreeing ({agree.label}) has m {agree.m:.3g} <= u {agree.u:.3g}"
            )
    before, after = current.link, candidate.link
    if max(before, after) >= MIN_LINKS:
        if after > FACTOR * before:
            reasons.append(f"links {after} pairs, more than {FACTOR:g} x the {before} now")
        elif after * FACTOR < before:
            reasons.append(f"links {after} pairs, less than 1/{FACTOR:g} of the {before} now")
    return Verdict(not reasons, tuple(reasons))


def report(verdict: Verdict, forced: bool, current: Tally, candidate: Tally) -> dict[str, Any]:
    """The check as stored with the fitted version (match_model.adoption)."""
    decision = "adopted" if verdict.adopt else ("forced" if forced else "refused")
    return {
        "decision": decision,
        "reasons": list(verdict.reasons),
        "current": current.to_dict(),
        "fitted": candidate.to_dict(),
    }
