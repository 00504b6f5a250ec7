"""The hub's exception root. The API maps each class to an HTTP status once."""

from __future__ import annotations

from dataclasses import dataclass


class MdmError(Exception):
    """Base of every error the hub raises on purpose."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FieldProblem:
    path: str
    message: str


class ValidationFailed(MdmError):
    status = 422
    title = "Validation failed"

    def __init__(self, detail: str, errors: list[FieldProblem]) -> None:
        super().__init__(detail)
        self.errors = errors


class NotFound(MdmError):
    status = 404
    title = "Not found"


class UnknownSource(NotFound):
    title = "Unknown source system"


class UnknownEntity(NotFound):
    title = "Unknown entity type"


class WriteForbidden(MdmError):
    status = 403
    title = "Write not allowed"


class SensitiveSearchForbidden(ValidationFailed):
    """A search by sensitive values from a caller without the grant (docs/security.md).

    A ValidationFailed so that the problem body names the refused fields.
    """

    status = 403
    title = "Searching by sensitive values needs the grant"


class IdempotencyConflict(MdmError):
    status = 422
    title = "Idempotency-Key reused with a different request"


class Conflict(MdmError):
    status = 409
    title = "Conflict with the current state"
