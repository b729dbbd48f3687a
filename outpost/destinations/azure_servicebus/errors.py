"""What a Service Bus failure means: the one closed table from the SDK's exceptions
(azure.servicebus.exceptions) to retry, dead-letter or auth.

A missing queue or topic and a message over the entity's size limit are permanent. A
refused key or a policy without Send rights is AUTH (retried, counted toward the
consecutive-failure alerts). Busy servers, quotas, a disabled entity, timeouts and
connection or communication failures (DNS, TLS, network) are retried."""

from __future__ import annotations

from azure.servicebus import exceptions as sb

from outpost.destinations.base import Failure, Kind, unexpected
from outpost.errors import DeliveryError

# (exception class, kind, code), the first match wins: subclasses before their bases
TABLE: tuple[tuple[type[BaseException], Kind, str], ...] = (
    (sb.MessagingEntityNotFoundError, Kind.PERMANENT, "entity_not_found"),
    (sb.MessageSizeExceededError, Kind.PERMANENT, "message_too_large"),
    (sb.ServiceBusAuthenticationError, Kind.AUTH, "auth_failed"),
    (sb.ServiceBusAuthorizationError, Kind.AUTH, "access_denied"),
    (sb.MessagingEntityDisabledError, Kind.RETRY, "entity_disabled"),
    (sb.ServiceBusQuotaExceededError, Kind.RETRY, "quota_exceeded"),
    (sb.ServiceBusServerBusyError, Kind.RETRY, "server_busy"),
    (sb.OperationTimeoutError, Kind.RETRY, "timeout"),
    (sb.ServiceBusConnectionError, Kind.RETRY, "connection_error"),
    (sb.ServiceBusCommunicationError, Kind.RETRY, "communication_error"),
    (sb.ServiceBusError, Kind.RETRY, "servicebus_error"),
    (TimeoutError, Kind.RETRY, "timeout"),
    (OSError, Kind.RETRY, "connection_error"),
)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, DeliveryError):
        return Failure.of(exc)
    for cls, kind, code in TABLE:
        if isinstance(exc, cls):
            return Failure(kind, code, str(exc)[:500] or type(exc).__name__)
    return unexpected(exc)
