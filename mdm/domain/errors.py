"""The hub's exception root. Each class says what went wrong (its title); the API
maps it to an HTTP status (mdm/api/problems.py), the domain knows nothing of HTTP."""

from __future__ import annotations

from dataclasses import dataclass


class MdmError(Exception):
    """Base of every error the hub raises on purpose."""

    title = "Bad request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FieldProblem:
    path: str
    message: str


class ValidationFailed(MdmError):
    title = "Validation failed"

    def __init__(self, detail: str, errors: list[FieldProblem]) -> None:
        super().__init__(detail)
        self.errors = errors


class NotFound(MdmError):
    title = "Not found"


class UnknownSource(NotFound):
    title = "Unknown source system"


class UnknownEntity(NotFound):
    title = "Unknown entity type"


class WriteForbidden(MdmError):
    title = "Write not allowed"


class SensitiveSearchForbidden(ValidationFailed):
    """A search by sensitive values from a caller without the grant (docs/security.md).

    A ValidationFailed so that the problem body names the refused fields.
    """

    title = "Searching by sensitive values needs the grant"


class IdempotencyConflict(MdmError):
    title = "Idempotency-Key reused with a different request"


class Conflict(MdmError):
    title = "Conflict with the current state"
