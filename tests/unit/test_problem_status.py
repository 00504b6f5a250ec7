"""The API maps each domain error to its HTTP status; the domain knows no HTTP."""

from __future__ import annotations

import inspect

import pytest

from mdm.api.json_body import MalformedJson
from mdm.api.problems import status_of
from mdm.domain import errors
from mdm.domain.errors import (
    Conflict,
    FieldProblem,
    IdempotencyConflict,
    MdmError,
    NotFound,
    SensitiveSearchForbidden,
    UnknownEntity,
    UnknownSource,
    ValidationFailed,
    WriteForbidden,
)
from mdm.services.rematch import AlreadyRunning

PROBLEMS = [FieldProblem("$.name", "required")]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MdmError("bad"), 400),
        (ValidationFailed("bad", PROBLEMS), 422),
        (MalformedJson("a key twice", PROBLEMS), 400),
        (SensitiveSearchForbidden("no grant", PROBLEMS), 403),
        (NotFound("gone"), 404),
        (UnknownSource("nope"), 404),
        (UnknownEntity("nope"), 404),
        (WriteForbidden("read only"), 403),
        (IdempotencyConflict("reused"), 422),
        (Conflict("merged"), 409),
        (AlreadyRunning("running"), 409),
    ],
)
def test_each_domain_error_has_its_http_status(error: MdmError, status: int) -> None:
    assert status_of(error) == status


def test_the_domain_errors_carry_no_http_status() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, MdmError)]
    assert len(classes) >= 9
    assert [c.__name__ for c in classes if "status" in vars(c)] == []
