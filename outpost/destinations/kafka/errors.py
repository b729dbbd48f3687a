"""What a Kafka or network failure means for the next step: ONE closed table.

Looked up by exception class, first match wins. The codes are Outpost's destkafka codes
(auth_failed, connection_refused, dns_error, topic_not_found, message_too_large, timeout,
tls_error, kafka_error). Our own delivery errors say what they are; anything else is a bug
(`base.unexpected`: logged, retried as internal_error)."""

from __future__ import annotations

import asyncio
import socket
import ssl

from aiokafka import errors as kafka

from outpost.destinations.base import Failure, Kind, unexpected
from outpost.errors import DeliveryError

RETRY, PERMANENT, AUTH = Kind.RETRY, Kind.PERMANENT, Kind.AUTH

EXCEPTIONS: tuple[tuple[tuple[type[BaseException], ...], Kind, str], ...] = (
    # the credentials or their permissions: retried, and counted toward the alerts
    (
        (
            kafka.SaslAuthenticationFailed,
            kafka.AuthenticationFailedError,
            kafka.UnsupportedSaslMechanismError,
            kafka.IllegalSaslStateError,
            kafka.TopicAuthorizationFailedError,
            kafka.ClusterAuthorizationFailedError,
            kafka.TransactionalIdAuthorizationFailed,
        ),
        AUTH,
        "auth_failed",
    ),
    # the same message fails the same way every time: dead-lettered
    ((kafka.UnknownTopicOrPartitionError,), PERMANENT, "topic_not_found"),
    ((kafka.InvalidTopicError,), PERMANENT, "topic_not_found"),
    (
        (kafka.MessageSizeTooLargeError, kafka.RecordListTooLargeError),
        PERMANENT,
        "message_too_large",
    ),
    ((kafka.PolicyViolationError, kafka.UnsupportedVersionError), PERMANENT, "kafka_error"),
    # the broker's side or the network: retried on the schedule
    (
        (kafka.KafkaTimeoutError, kafka.RequestTimedOutError, asyncio.TimeoutError),
        RETRY,
        "timeout",
    ),
    ((ssl.SSLError, ssl.CertificateError), RETRY, "tls_error"),
    ((socket.gaierror,), RETRY, "dns_error"),
    ((kafka.KafkaConnectionError, kafka.NodeNotReadyError, OSError), RETRY, "connection_refused"),
    # every other broker answer (UNKNOWN_SERVER_ERROR, NOT_ENOUGH_REPLICAS, an out-of-order
    # sequence after a rejected batch, ...): the broker may accept it next time
    ((kafka.KafkaError,), RETRY, "kafka_error"),
)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, DeliveryError):
        return Failure.of(exc)
    cause = root(exc)
    for classes, kind, code in EXCEPTIONS:
        if isinstance(cause, classes):
            return Failure(kind, code, f"{type(cause).__name__}: {cause}"[:500])
    return unexpected(exc)


def root(exc: BaseException) -> BaseException:
    """The failure behind aiokafka's "Unable to bootstrap" (it hides the SASL or
    connection error it met): `writer` chains the real one as the cause."""
    while isinstance(exc, kafka.KafkaConnectionError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
