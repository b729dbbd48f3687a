"""What a RabbitMQ failure means: the one closed table from aio-pika/aiormq and network
errors to retry, dead-letter or auth (Outpost's codes where it has one).

A missing exchange is permanent: every attempt would be refused the same way, so the
event is dead-lettered (redrive it once the exchange exists). Refused logins and
permissions are AUTH (retried; they count toward the consecutive-failure alerts). A
negative acknowledgement (the broker could not take the message: a full queue with
`reject-publish`, an internal error), a closed connection, a broker shutting down, a
refused or reset connection, DNS, TLS and timeouts are retried."""

from __future__ import annotations

import errno

from aiormq import exceptions as amqp

from outpost.destinations.base import Failure, Kind, unexpected
from outpost.errors import DeliveryError

# (exception class, kind, code), the first match wins: subclasses before their bases
TABLE: tuple[tuple[type[BaseException], Kind, str], ...] = (
    (amqp.ChannelNotFoundEntity, Kind.PERMANENT, "exchange_not_found"),
    (amqp.ChannelAccessRefused, Kind.AUTH, "access_denied"),
    (amqp.ChannelPreconditionFailed, Kind.PERMANENT, "precondition_failed"),
    (amqp.ChannelClosed, Kind.RETRY, "channel_error"),
    (amqp.ChannelInvalidStateError, Kind.RETRY, "channel_error"),
    (amqp.DeliveryError, Kind.RETRY, "nacked"),
    (amqp.AuthenticationError, Kind.AUTH, "auth_failed"),
    (amqp.ProbableAuthenticationError, Kind.AUTH, "auth_failed"),
    (amqp.ConnectionNotAllowed, Kind.AUTH, "access_denied"),
    (amqp.ConnectionClosed, Kind.RETRY, "connection_forced"),
    (amqp.IncompatibleProtocolError, Kind.RETRY, "protocol_error"),
    (TimeoutError, Kind.RETRY, "timeout"),
)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, DeliveryError):
        return Failure.of(exc)
    message = str(exc)[:500] or type(exc).__name__
    for cls, kind, code in TABLE:
        if isinstance(exc, cls):
            return Failure(kind, code, message)
    if isinstance(exc, amqp.InvalidFrameError):
        return _handshake_closed(exc, message)
    if isinstance(exc, OSError):  # aiormq's AMQPConnectionError is one, with the errno
        return Failure(Kind.RETRY, network_code(exc), message)
    return unexpected(exc)


def _handshake_closed(exc: amqp.InvalidFrameError, message: str) -> Failure:
    """The broker closed the connection where the handshake expected Connection.OpenOk:
    the vhost does not exist or the user has no access to it (aiormq keeps only the text)."""
    if "Connection.Close" in message:
        return Failure(Kind.AUTH, "access_denied", f"the broker refused the vhost: {message}")
    return Failure(Kind.RETRY, "protocol_error", message)


def network_code(exc: OSError) -> str:
    number = exc.errno if exc.errno is not None else (exc.args[0] if exc.args else None)
    if "SSL" in str(exc) or "certificate" in str(exc):
        return "tls_error"
    if number == errno.ECONNREFUSED:
        return "connection_refused"
    if number in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "connection_reset"
    if isinstance(number, int) and number < 0:  # getaddrinfo's EAI_* codes
        return "dns_error"
    if number == errno.ETIMEDOUT:
        return "timeout"
    return "connection_error"
