"""What an AWS or network failure means for the next step: ONE closed table.

Every AWS destination type classifies with `classify`. An AWS error answer is looked up by
its code (`CODES`), then, for a code not listed, by its HTTP status; an exception is looked
up by its class (`EXCEPTIONS`, first match wins). Our own delivery errors (`format`'s
record_too_large, partition_key_too_long, ...) already say what they are. Anything else is
not a failure we know but a bug: `base.unexpected` logs it and retries it as internal_error.

Kinds: RETRY on the schedule; PERMANENT dead-letters at once; AUTH is retried and is the
failure the consecutive-failure alerts and auto-disable are for (bad keys). A missing
stream and a denied permission are PERMANENT and `broken`: the operator is alerted at
once instead of after the whole retry schedule.
"""

from __future__ import annotations

import asyncio

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from outpost.destinations.base import Failure, Kind, unexpected
from outpost.errors import DeliveryError

RETRY, PERMANENT, AUTH = Kind.RETRY, Kind.PERMANENT, Kind.AUTH

SQS_CODES: dict[str, tuple[Kind, str]] = {
    # JSON protocol names, and the query-compatible ones (x-amzn-query-error) beside them
    "QueueDoesNotExist": (PERMANENT, "queue_not_found"),
    "AWS.SimpleQueueService.NonExistentQueue": (PERMANENT, "queue_not_found"),
    "InvalidAddress": (PERMANENT, "queue_not_found"),
    "RequestThrottled": (RETRY, "throughput_exceeded"),
    "OverLimit": (RETRY, "throughput_exceeded"),
    "KmsThrottled": (RETRY, "throughput_exceeded"),
    "InvalidSecurity": (AUTH, "access_denied"),
    "KmsAccessDenied": (AUTH, "access_denied"),
    "KmsDisabled": (RETRY, "kms_error"),
    "KmsNotFound": (RETRY, "kms_error"),
    "KmsInvalidState": (RETRY, "kms_error"),
    "KmsInvalidKeyUsage": (RETRY, "kms_error"),
    "KmsOptInRequired": (RETRY, "kms_error"),
    "InternalError": (RETRY, "server_error"),
    "InvalidParameterValue": (PERMANENT, "validation_error"),
    "InvalidMessageContents": (PERMANENT, "validation_error"),
    "InvalidAttributeName": (PERMANENT, "validation_error"),
    "InvalidAttributeValue": (PERMANENT, "validation_error"),
    "UnsupportedOperation": (PERMANENT, "validation_error"),
    "BatchRequestTooLong": (PERMANENT, "validation_error"),
    "TooManyEntriesInBatchRequest": (PERMANENT, "validation_error"),
    "BatchEntryIdsNotDistinct": (PERMANENT, "validation_error"),
    "InvalidBatchEntryId": (PERMANENT, "validation_error"),
    "EmptyBatchRequest": (PERMANENT, "validation_error"),
}
S3_CODES: dict[str, tuple[Kind, str]] = {
    "NoSuchBucket": (PERMANENT, "bucket_not_found"),
    "InvalidBucketName": (PERMANENT, "bucket_not_found"),
    "PermanentRedirect": (PERMANENT, "wrong_region"),
    "AuthorizationHeaderMalformed": (PERMANENT, "wrong_region"),
    "InvalidAccessKeyId": (AUTH, "access_denied"),
    "InvalidToken": (AUTH, "access_denied"),
    "ExpiredToken": (AUTH, "access_denied"),
    "TokenRefreshRequired": (AUTH, "access_denied"),
    "AllAccessDisabled": (AUTH, "access_denied"),
    "AccountProblem": (AUTH, "access_denied"),
    "SlowDown": (RETRY, "throughput_exceeded"),
    "RequestTimeout": (RETRY, "timeout"),
    "OperationAborted": (RETRY, "server_error"),
    "InvalidStorageClass": (PERMANENT, "validation_error"),
    "KeyTooLongError": (PERMANENT, "validation_error"),
    "MetadataTooLarge": (PERMANENT, "validation_error"),
    "EntityTooLarge": (PERMANENT, "validation_error"),
    "InvalidArgument": (PERMANENT, "validation_error"),
    "InvalidRequest": (PERMANENT, "validation_error"),
    "BadDigest": (PERMANENT, "validation_error"),
    "InvalidDigest": (PERMANENT, "validation_error"),
    "XAmzContentSHA256Mismatch": (PERMANENT, "validation_error"),
}
EVENTBRIDGE_CODES: dict[str, tuple[Kind, str]] = {
    "NotAuthorizedForSourceException": (AUTH, "access_denied"),
    "NotAuthorizedForDetailTypeException": (AUTH, "access_denied"),
    "InvalidAccountIdException": (PERMANENT, "event_bus_not_found"),
    "MalformedDetail": (PERMANENT, "validation_error"),
    "InternalException": (RETRY, "server_error"),
    "RedactionFailure": (RETRY, "server_error"),
    "ConcurrentModificationException": (RETRY, "server_error"),
}
# AWS error code -> (kind, the code kept on the attempt)
CODES: dict[str, tuple[Kind, str]] = {
    # throttled: the shard, the account or KMS is over its limit
    "ProvisionedThroughputExceededException": (RETRY, "throughput_exceeded"),
    "ThrottlingException": (RETRY, "throughput_exceeded"),
    "LimitExceededException": (RETRY, "throughput_exceeded"),
    "KMSThrottlingException": (RETRY, "throughput_exceeded"),
    # the stream is missing (failed fast: the destination is broken until its owner acts)
    # or being changed (it settles)
    "ResourceNotFoundException": (PERMANENT, "stream_not_found"),
    "ResourceInUseException": (RETRY, "stream_not_ready"),
    # no permission: failed fast like a missing stream; bad keys are AUTH, retried
    "AccessDeniedException": (PERMANENT, "access_denied"),
    "AccessDenied": (PERMANENT, "access_denied"),
    "UnrecognizedClientException": (AUTH, "access_denied"),
    "InvalidSignatureException": (AUTH, "access_denied"),
    "SignatureDoesNotMatch": (AUTH, "access_denied"),
    "ExpiredTokenException": (AUTH, "access_denied"),
    "InvalidClientTokenId": (AUTH, "access_denied"),
    "KMSAccessDeniedException": (AUTH, "access_denied"),
    # the stream's KMS key is unusable until its owner fixes it
    "KMSDisabledException": (RETRY, "kms_error"),
    "KMSNotFoundException": (RETRY, "kms_error"),
    "KMSInvalidStateException": (RETRY, "kms_error"),
    "KMSOptInRequired": (RETRY, "kms_error"),
    # AWS's side
    "InternalFailure": (RETRY, "server_error"),
    "ServiceUnavailable": (RETRY, "server_error"),
    # the request itself is wrong: it would fail the same way every time
    "ValidationException": (PERMANENT, "validation_error"),
    "InvalidArgumentException": (PERMANENT, "validation_error"),
    "SerializationException": (PERMANENT, "validation_error"),
    **SQS_CODES,
    **S3_CODES,
    **EVENTBRIDGE_CODES,
}
# a code that means one thing for one call and another elsewhere, by (operation, code)
OPERATION_CODES: dict[tuple[str, str], tuple[Kind, str]] = {
    # Kinesis's missing stream may appear (retried); a missing event bus is a wrong config
    ("PutEvents", "ResourceNotFoundException"): (PERMANENT, "event_bus_not_found"),
}
# the answers that say the destination itself is wrong, not this record: the operator is
# alerted at once and, with ALERT_AUTO_DISABLE_DESTINATION, the destination disabled
BROKEN = {"ResourceNotFoundException", "AccessDeniedException", "AccessDenied"}
# a code not in CODES, by HTTP status: 5xx or no status is AWS's side, else a failed request
UNLISTED_5XX = (RETRY, "server_error")
UNLISTED_OTHER = (RETRY, "request_failed")
# a redirect answer (aiobotocore clients are made never to follow one): the endpoint guard
# vetted this endpoint, not where it points; an endpoint that redirects is misconfigured
UNLISTED_3XX = (PERMANENT, "redirect_refused")

# exception class -> (kind, code, unanswered); first match wins (TimeoutError is also an
# OSError). Unanswered: the endpoint said nothing (timed out, refused, dropped the
# connection), what the worker's circuit breakers count; the other rows are our side.
EXCEPTIONS: tuple[tuple[tuple[type[BaseException], ...], Kind, str, bool], ...] = (
    ((asyncio.TimeoutError, ReadTimeoutError, ConnectTimeoutError), RETRY, "timeout", True),
    ((EndpointConnectionError,), RETRY, "request_failed", True),
    (
        (OSError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError),
        RETRY,
        "request_failed",
        True,
    ),
    ((BotoCoreError, aiohttp.ClientError), RETRY, "request_failed", False),
)


def classify(exc: BaseException) -> Failure:
    """botocore/aiohttp/asyncio failures and our own delivery errors -> what happens next."""
    if isinstance(exc, DeliveryError):
        return Failure.of(exc)
    if isinstance(exc, ClientError):
        return answer(exc)
    for types, kind, code, unanswered in EXCEPTIONS:
        if isinstance(exc, types):
            return Failure(kind, code, _message(exc, code), unanswered=unanswered)
    return unexpected(exc)


def answer(exc: ClientError) -> Failure:
    """An AWS error answer (a whole call's, or one record's of a PutRecords call)."""
    err = exc.response.get("Error", {})
    code = err.get("Code", "")
    message = err.get("Message", "") or str(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    row = OPERATION_CODES.get((exc.operation_name, code)) or CODES.get(code)
    if row is None and 300 <= status < 400:
        row = UNLISTED_3XX
    if row is None:
        row = UNLISTED_5XX if status >= 500 or status == 0 else UNLISTED_OTHER
    broken = code in BROKEN and row[0] is PERMANENT
    return Failure(row[0], row[1], message, {"error_code": code, "status": status}, broken=broken)


def _message(exc: BaseException, code: str) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "could not connect within DELIVERY_CONNECT_TIMEOUT_SECONDS"
    if code == "timeout":
        return "no answer within DELIVERY_TIMEOUT_SECONDS"
    if isinstance(exc, EndpointConnectionError):
        return f"could not connect: {exc}"
    if isinstance(exc, BotoCoreError | OSError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def entry_error(operation: str, code: str, message: str, sender_fault: bool = True) -> ClientError:
    """One entry of a batch call (SendMessageBatch, PutEvents) failed alone: its error as
    the answer of a call of its own, so `classify` reads it like any other and only that
    entry is retried. No sender fault (or no code) reads as AWS's side."""
    status = 400 if sender_fault and code else 500
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )
