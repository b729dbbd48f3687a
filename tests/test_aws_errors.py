"""The AWS error table, row by row (pure), and what an exception outside it comes to."""

from __future__ import annotations

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from structlog.testing import capture_logs

from outpost.destinations.aws import errors
from outpost.destinations.base import Kind
from outpost.errors import PermanentError, RetryableError


def client_error(code: str, status: int = 400, message: str = "") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutRecord",
    )


@pytest.mark.parametrize(("code", "row"), sorted(errors.CODES.items()))
def test_every_listed_aws_code_means_its_row(code, row):
    failure = errors.classify(client_error(code, message="why"))
    assert (failure.kind, failure.code) == row
    assert failure.message == "why"
    assert failure.response == {"error_code": code, "status": 400}


@pytest.mark.parametrize(
    ("code", "kind", "label"),
    [
        ("ProvisionedThroughputExceededException", Kind.RETRY, "throughput_exceeded"),
        ("ThrottlingException", Kind.RETRY, "throughput_exceeded"),
        ("ResourceNotFoundException", Kind.PERMANENT, "stream_not_found"),
        ("InternalFailure", Kind.RETRY, "server_error"),
        ("AccessDeniedException", Kind.PERMANENT, "access_denied"),
        ("UnrecognizedClientException", Kind.AUTH, "access_denied"),
        ("ExpiredTokenException", Kind.AUTH, "access_denied"),
        ("ValidationException", Kind.PERMANENT, "validation_error"),
        ("InvalidArgumentException", Kind.PERMANENT, "validation_error"),
    ],
)
def test_the_issue_s_rows(code, kind, label):
    """The rows the issues name: throttling/5xx retry; bad requests, a missing stream and a
    denied permission fail at once (issue 16: fail fast); bad keys retry as the AUTH kind."""
    failure = errors.classify(client_error(code))
    assert (failure.kind, failure.code, failure.retryable) == (
        kind,
        label,
        kind is not Kind.PERMANENT,
    )
    assert failure.broken == (code in ("ResourceNotFoundException", "AccessDeniedException"))


@pytest.mark.parametrize(
    ("status", "label"), [(500, "server_error"), (503, "server_error"), (0, "server_error")]
)
def test_an_unlisted_code_on_aws_s_side_is_a_server_error(status, label):
    assert (errors.classify(client_error("SomethingNew", status)).code, status) == (label, status)


@pytest.mark.parametrize("status", [400, 403, 404, 200])
def test_an_unlisted_code_otherwise_is_a_failed_request_retried(status):
    failure = errors.classify(client_error("SomethingNew", status))
    assert (failure.kind, failure.code) == (Kind.RETRY, "request_failed")


@pytest.mark.parametrize(
    ("exc", "label", "message"),
    [
        (TimeoutError(), "timeout", "no answer within DELIVERY_TIMEOUT_SECONDS"),
        (ReadTimeoutError(endpoint_url="http://x"), "timeout", None),
        (ConnectTimeoutError(endpoint_url="http://x"), "timeout", None),
        (aiohttp.ServerTimeoutError("slow"), "timeout", None),
        (EndpointConnectionError(endpoint_url="http://x"), "request_failed", "could not connect"),
        (ConnectionResetError("reset"), "request_failed", "reset"),
        (OSError(), "request_failed", "OSError"),
        (NoCredentialsError(), "request_failed", "Unable to locate credentials"),
        (aiohttp.ServerDisconnectedError(), "request_failed", "ServerDisconnectedError"),
        (aiohttp.ClientPayloadError("cut"), "request_failed", "ClientPayloadError: cut"),
    ],
)
def test_network_failures_are_retried(exc, label, message):
    failure = errors.classify(exc)
    assert (failure.kind, failure.code) == (Kind.RETRY, label)
    if message is not None:
        assert message in failure.message


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (PermanentError("record_too_large", "2 MiB"), Kind.PERMANENT),
        (PermanentError("partition_key_too_long", "300 chars"), Kind.PERMANENT),
        (RetryableError("server_error", "short answer", {"status": 200}), Kind.RETRY),
    ],
)
def test_our_own_delivery_errors_pass_through(exc, kind):
    failure = errors.classify(exc)
    assert (failure.kind, failure.code, failure.message) == (kind, exc.code, exc.message)
    assert failure.response == exc.response


def test_a_batch_record_error_is_its_own_answer():
    from outpost.destinations.kinesis.writer import record_error

    failure = errors.classify(
        record_error({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "m"})
    )
    assert (failure.kind, failure.code, failure.message) == (Kind.RETRY, "throughput_exceeded", "m")
    assert failure.response == {
        "error_code": "ProvisionedThroughputExceededException",
        "status": 200,
    }


@pytest.mark.parametrize("exc", [KeyError("stream_name"), TypeError("bad"), RuntimeError("x")])
def test_an_exception_outside_the_table_is_a_bug_logged_once_and_retried(exc):
    with capture_logs() as logs:
        failure = errors.classify(exc)
    assert (failure.kind, failure.code) == (Kind.RETRY, "internal_error")
    assert failure.message.startswith(type(exc).__name__)
    [entry] = logs
    assert entry["event"] == "unexpected_delivery_error"
    assert entry["log_level"] == "error" and entry["exc_info"] is exc


def test_a_listed_failure_is_not_logged_as_a_bug():
    with capture_logs() as logs:
        errors.classify(client_error("ThrottlingException"))
        errors.classify(TimeoutError())
    assert logs == []
