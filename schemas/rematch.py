"""Bodies of the re-matching API: start a run, and where matching stands."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec


class RematchRunView(msgspec.Struct, kw_only=True):
    """A re-matching run: golden records compared so far out of those held at its start."""

    run_id: int
    model_version: int
    status: Literal["running", "finished", "abandoned"]
    done: int
    total: int
    merged: int
    reviews: int  # review tasks opened
    withdrawn: int  # open review tasks of an older model closed: their pair is below the band
    started_at: dt.datetime
    finished_at: dt.datetime | None


class RematchStarted(msgspec.Struct, kw_only=True):
    entity: str
    resumed: bool  # an interrupted run for the same model continues
    run: RematchRunView


class MatchStatus(msgspec.Struct, kw_only=True):
    """Where matching stands for an entity; `state` idle means nothing is left to do."""

    entity: str
    model_version: int
    fitted_at: dt.datetime
    trained_on: int | None  # records the model was fitted on; None for the packaged model
    records: int  # live source records now
    records_since_fit: int  # of them, received after the model was fitted
    state: Literal["idle", "pending", "running", "training", "training_due"]
    rematch: RematchRunView | None  # the latest run
