"""One exception tree. Each error says what happens next.

Delivery errors are raised by providers (translated from botocore at one boundary, in the
provider) and decide whether a task is retried or dead-lettered. Domain errors say what
went wrong with a request, never which HTTP status answers it: `surface.STATUS` is the one
closed table from domain error class to status, used by both HTTP surfaces.
"""

from __future__ import annotations

from typing import Any


class OutpostError(Exception):
    """Base of every error this package raises on purpose."""


class DeliveryError(OutpostError):
    """A send failed. `code` is a stable label stored on the attempt."""

    retryable: bool = True

    def __init__(self, code: str, message: str = "", response: dict[str, Any] | None = None):
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.response = response or {}


class RetryableError(DeliveryError):
    """Retry on the schedule (throttling, 5xx, timeouts, connection errors, auth)."""

    retryable = True


class PermanentError(DeliveryError):
    """Never retried: the same request would fail the same way. Goes to dead letters."""

    retryable = False


class DomainError(OutpostError):
    """What went wrong with something asked of us, in our own words: storage, the queue,
    ingest, auth and the handlers raise these and never an HTTP status. `surface.STATUS`
    is the one table that gives each concrete class its HTTP status; `message` and `data`
    become the surface's error body unchanged."""

    def __init__(self, message: str, data: Any = None):
        super().__init__(message)
        self.message = message
        self.data = data


class Invalid(DomainError):
    """The request cannot be read or does not fit: malformed JSON, a cursor we never
    gave, a field that contradicts what is stored."""


class ValidationFailed(DomainError):
    """A body or query failed validation; `data` lists every problem."""

    def __init__(self, problems: list[str]):
        super().__init__("validation error", problems)


class LimitReached(DomainError):
    """A configured cap would be exceeded (MAX_DESTINATIONS_PER_TENANT)."""


class Unauthenticated(DomainError):
    """We do not know who is calling: no, a wrong or an expired credential."""


class Forbidden(DomainError):
    """We know the caller, and this is not theirs to do."""


class NotFound(DomainError):
    def __init__(self, what: str, message: str | None = None):
        super().__init__(message or f"{what} not found")
        self.what = what


class AlreadyExists(DomainError):
    """Something with this id is already there."""


class Conflict(DomainError):
    """The request is ambiguous as things stand (e.g. an event id several tenants use)."""


class PreconditionFailed(DomainError):
    """The resource changed since the caller read it (etag mismatch)."""


class TooLarge(DomainError):
    """The request body is larger than we accept."""


class RateLimited(DomainError):
    """Over a rate limit: nothing was accepted; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1, data: Any = None):
        super().__init__(message, data)
        self.retry_after = retry_after


class NotConfigured(DomainError):
    """The feature asked for is off in this deployment."""


class Unavailable(DomainError):
    """A service we depend on (Redis) failed: nothing was done, retry later."""
