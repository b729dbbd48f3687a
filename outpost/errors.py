"""One exception tree. Each error says what happens next.

Delivery errors are raised by providers (translated from botocore at one boundary, in the
provider) and decide whether a task is retried or dead-lettered. API errors become the
`{"status", "message", "data"}` body.
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


class APIError(OutpostError):
    def __init__(
        self, status: int, message: str, data: Any = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data
        self.headers = headers or {}


class NotFound(APIError):
    def __init__(self, what: str):
        super().__init__(404, f"{what} not found")


class ValidationFailed(APIError):
    def __init__(self, problems: list[str]):
        super().__init__(422, "validation error", problems)
