"""Kinesis calls without the per-call client machinery.

aiobotocore spends most of a PutRecord's CPU on things a delivery worker does not need per
call: the event hooks, user-agent building, endpoint rules, retry bookkeeping. Here the
request is built once by hand in botocore's own wire format, signed with botocore's own
`SigV4Auth` (`Signer`: its canonical request for this one shape of call built directly,
the day's signing key derived once), and sent on one shared aiohttp session. The endpoint
URL is still resolved by aiobotocore (once per region/endpoint), so `AWS_ENDPOINT_URL*`
and partitions behave the same.
A test signs the same request with both paths at the same time and compares the bytes.

Errors are returned to the caller as botocore `ClientError`s, the same shape aiobotocore
raises, so `aws.errors.classify` stays the one place that decides what a failure means.
One exception: a redirect (3xx) is never followed and fails as a `PermanentError`
(`redirect_refused`), its body unread: the SSRF guard vetted the endpoint, not the place
it points to.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import os
import ssl
from binascii import b2a_base64
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from json.encoder import encode_basestring_ascii
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import botocore.auth
from aiobotocore.session import AioSession
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpsession import where

from outpost.errors import PermanentError

TARGET_PREFIX = "Kinesis_20131202"
CONTENT_TYPE = "application/x-amz-json-1.1"
USER_AGENT = "outpost/0.1 (SigV4 via botocore)"
# aiohttp warns about bodies this large passed as bytes; it streams a BytesIO instead
LARGE_BODY = 1024 * 1024


class Signer(SigV4Auth):
    """botocore's SigV4Auth for one endpoint URL, signing the calls made here (a POST of
    a JSON body, no query) without an AWSRequest: the same canonical request, byte for
    byte (tests/test_sigv4.py), built from the host and path worked out once, and the
    signing key derived once a day instead of four HMACs a call."""

    def __init__(self, credentials: Credentials, service: str, region: str, url: str):
        super().__init__(credentials, service, region)
        self.url = url
        self.host = self.headers_to_sign(AWSRequest(method="POST", url=url))["host"]
        parts = urlsplit(url)
        self.path = self._normalize_url_path(parts.path)
        self.plain = not parts.query  # else botocore signs it (signed_headers)
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (day, secret, signing key)

    def headers(self, operation: str, body: bytes) -> dict[str, str]:
        """The call's headers, signed now (botocore's clock, so tests can freeze it)."""
        stamp = botocore.auth.get_current_datetime().strftime(SIGV4_TIMESTAMP)
        creds, amz_target = self.credentials, f"{TARGET_PREFIX}.{operation}"
        signed = [("content-type", CONTENT_TYPE), ("host", self.host), ("x-amz-date", stamp)]
        if creds.token:
            signed.append(("x-amz-security-token", creds.token))
        signed.append(("x-amz-target", amz_target))
        canonical = "\n".join(f"{k}:{' '.join(v.split())}" for k, v in signed)
        names = ";".join(k for k, _ in signed)
        request = f"POST\n{self.path}\n\n{canonical}\n\n{names}\n{sha256(body).hexdigest()}"
        scope = f"{stamp[:8]}/{self._region_name}/{self._service_name}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{sha256(request.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(stamp[:8]), to_sign.encode(), sha256).hexdigest()
        headers = {"X-Amz-Target": amz_target, "Content-Type": CONTENT_TYPE, "X-Amz-Date": stamp}
        if creds.token:
            headers["X-Amz-Security-Token"] = creds.token
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return headers

    def _signing_key(self, day: str) -> bytes:
        secret = self.credentials.secret_key
        if self._key[:2] != (day, secret):
            key = f"AWS4{secret}".encode()
            for part in (day, self._region_name, self._service_name, "aws4_request"):
                key = hmac.new(key, part.encode(), sha256).digest()
            self._key = (day, secret, key)
        return self._key[2]


@dataclass(frozen=True)
class Target:
    """Where and as whom: the endpoint URL and a signer holding the credentials."""

    url: str
    signer: Signer


def target(url: str, region: str, key: str, secret: str, token: str | None) -> Target:
    url = url.rstrip("/") + "/"
    return Target(url, Signer(Credentials(key, secret, token), "kinesis", region, url))


_SESSION: AioSession | None = None


def aws_session() -> AioSession:
    """One aiobotocore session per process: its loader keeps the service models after
    their first use instead of reading them from disk for every client."""
    global _SESSION
    if _SESSION is None:
        _SESSION = AioSession()
    return _SESSION


async def resolve_endpoint(region: str, endpoint: str | None) -> str:
    """The URL aiobotocore would send Kinesis calls to (explicit endpoint, then
    `AWS_ENDPOINT_URL_KINESIS` / `AWS_ENDPOINT_URL` / config files, then the partition's)."""
    async with aws_session().create_client(
        "kinesis",
        region_name=region,
        endpoint_url=endpoint or None,
        aws_access_key_id="resolve",
        aws_secret_access_key="resolve",
    ) as client:
        return str(client.meta.endpoint_url)


def stream_member(stream: str) -> str:
    """A stream named by ARN goes as StreamARN (cross-account resource policies work)."""
    return "StreamARN" if stream.startswith("arn:") else "StreamName"


def put_record_body(
    stream: str, data: bytes, partition_key: str, after: str | None = None
) -> bytes:
    """botocore's serialization of PutRecord (member order as aiobotocore is called);
    `after`: SequenceNumberForOrdering (the previous record of this key)."""
    body = {
        stream_member(stream): stream,
        "Data": base64.b64encode(data).decode(),
        "PartitionKey": partition_key,
    }
    if after is not None:
        body["SequenceNumberForOrdering"] = after
    return json.dumps(body).encode()


def put_records_body(
    stream: str, records: Sequence[tuple[bytes, str]], hash_keys: Sequence[str | None] = ()
) -> bytes:
    """botocore's serialization of PutRecords (`json.dumps` of the same members, as
    tests/test_sigv4.py checks), written out directly: a batch of 500 records is one
    join, not a dict per record walked by the json encoder."""
    quote = encode_basestring_ascii  # json.dumps's own escaping of a string
    hashes = list(hash_keys) + [None] * (len(records) - len(hash_keys))
    entries = []
    for (data, key), hash_key in zip(records, hashes, strict=False):
        entry = (
            f'{{"Data": "{b2a_base64(data, newline=False).decode()}", "PartitionKey": {quote(key)}'
        )
        entries.append(
            f'{entry}, "ExplicitHashKey": {quote(hash_key)}}}' if hash_key else f"{entry}}}"
        )
    member = f"{quote(stream_member(stream))}: {quote(stream)}"
    return f'{{"Records": [{", ".join(entries)}], {member}}}'.encode()


def signed_headers(t: Target, operation: str, body: bytes) -> dict[str, str]:
    """The headers of one signed call (signature time: now, as botocore takes it): the
    signer's own for a URL without a query, botocore's whole path otherwise."""
    if t.signer.plain:
        return t.signer.headers(operation, body)
    request = AWSRequest(
        method="POST",
        url=t.url,
        data=body,
        headers={"X-Amz-Target": f"{TARGET_PREFIX}.{operation}", "Content-Type": CONTENT_TYPE},
    )
    t.signer.add_auth(request)
    return dict(request.headers.items())


class KinesisHTTP:
    """One aiohttp session for every destination's calls (bounded connections)."""

    def __init__(self, timeout: float, max_connections: int, connect_timeout: float | None = None):
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout or timeout, timeout)
        self.max_connections = max_connections
        self._http: aiohttp.ClientSession | None = None
        # callers may outnumber connections (batched records, many in-flight tasks): they
        # queue here, so the timeout measures the call itself, not the wait for a socket
        self._calls = asyncio.Semaphore(max_connections)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # the CA bundle botocore would use: AWS_CA_BUNDLE, else certifi's or its own
            tls = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or where())
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ssl=tls),
                # total bounds the whole call, whatever the server does (never answers,
                # trickles its body); a host that never accepts fails at sock_connect
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout, sock_connect=self.connect_timeout
                ),
                headers={"User-Agent": USER_AGENT},
            )
        return self._http

    async def call(self, t: Target, operation: str, body: bytes) -> dict[str, Any]:
        """One signed call; the parsed answer, or a `ClientError` as botocore would raise."""
        async with self._calls:
            headers = signed_headers(t, operation, body)
            payload: Any = io.BytesIO(body) if len(body) > LARGE_BODY else body
            # never follow a redirect: the guard checked this endpoint, not where it points
            async with self._session().post(
                t.url, data=payload, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                if 300 <= status < 400:
                    raise PermanentError(
                        "redirect_refused",
                        f"the endpoint answered HTTP {status} (a redirect); "
                        "redirects are never followed",
                    )
                raw = await resp.read()
                error_type = resp.headers.get("x-amzn-ErrorType", "")
        try:
            parsed: Any = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {}
        if not isinstance(parsed, dict):
            parsed = {}
        if status < 300:
            return parsed
        raise ClientError(_error(status, error_type, parsed, raw), operation)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


def _error(status: int, error_type: str, parsed: dict[str, Any], raw: bytes) -> Any:
    """botocore's JSON error parsing: the code from `x-amzn-ErrorType` or `__type`
    (`namespace#Code`), the message from `message`/`Message`."""
    code = (error_type or str(parsed.get("__type", ""))).split(":")[0].rsplit("#", 1)[-1]
    message = parsed.get("message") or parsed.get("Message") or ""
    if not message and not parsed:
        message = raw[:200].decode("utf-8", "replace")
    return {
        "Error": {"Code": code, "Message": str(message)},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
