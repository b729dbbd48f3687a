"""What a Pub/Sub, auth or network failure means for the next step: ONE closed table,
looked up by exception class, first match wins. Our own delivery errors say what they
are; anything else is a bug (`base.unexpected`: logged, retried as internal_error)."""

from __future__ import annotations

import asyncio

from google.api_core import exceptions as api
from google.auth import exceptions as auth
from google.cloud.pubsub_v1.publisher import exceptions as publisher

from outpost.destinations.base import Failure, Kind, unexpected
from outpost.errors import DeliveryError

RETRY, PERMANENT, AUTH = Kind.RETRY, Kind.PERMANENT, Kind.AUTH

EXCEPTIONS: tuple[tuple[tuple[type[BaseException], ...], Kind, str], ...] = (
    # the service account: no such key, no permission on the topic, a key Google refuses
    ((api.Unauthenticated, api.PermissionDenied, auth.RefreshError), AUTH, "auth_failed"),
    # a key that is not a service account key at all (only said when the client is built)
    ((auth.DefaultCredentialsError, auth.MalformedError), AUTH, "auth_failed"),
    # the same message fails the same way every time: dead-lettered
    ((api.NotFound,), PERMANENT, "topic_not_found"),
    ((publisher.MessageTooLargeError,), PERMANENT, "message_too_large"),
    ((api.InvalidArgument, api.FailedPrecondition), PERMANENT, "invalid_argument"),
    # Google's side or the network: retried on the schedule
    ((api.ResourceExhausted, api.TooManyRequests), RETRY, "throttled"),
    ((api.DeadlineExceeded, asyncio.TimeoutError), RETRY, "timeout"),
    ((auth.TransportError, OSError), RETRY, "connection_error"),
    ((api.GoogleAPICallError, api.RetryError), RETRY, "server_error"),
)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, DeliveryError):
        return Failure.of(exc)
    for classes, kind, code in EXCEPTIONS:
        if isinstance(exc, classes):
            return Failure(kind, code, f"{type(exc).__name__}: {exc}"[:500])
    return unexpected(exc)
