"""The AWS calls behind a base connection's `test` and `explore`: Kinesis ListStreams,
S3 ListBuckets / HeadBucket / ListObjectsV2. One client per call (not a hot path)."""

from __future__ import annotations

import binascii
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER

from outpost.destinations.aws.redirects import NoRedirectSession
from outpost.destinations.aws.sigv4 import aws_session
from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint
from outpost.errors import Invalid
from outpost.flow.specs import KINESIS, S3

_CONFIG = AioConfig(
    connect_timeout=5,
    read_timeout=10,
    retries={"total_max_attempts": 2},
    s3={"addressing_style": "path"},
    http_session_cls=NoRedirectSession,  # a tenant's endpoint may not redirect us
)


def _timestamp(value: Any) -> datetime:
    """Kinesis (JSON 1.1) sends epoch seconds: one call, where botocore's default parser
    goes through dateutil's local zone for each record (half the cost of a GetRecords
    answer of 1,000 records)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed: datetime = DEFAULT_TIMESTAMP_PARSER(value)
    return parsed


def fast_get_records(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore's `before-parse` hook for the reader's GetRecords: a 200's JSON is read
    with orjson into the very shape botocore gives (Data as bytes, arrival times as UTC
    datetimes) and botocore parses an empty body instead. Its generic parser walks the
    output shape for each field of each record: about two thirds of the reader's time
    per record before this. Errors are left to botocore."""
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes | bytearray):
        return
    try:
        doc = orjson.loads(body)
        for record in doc.get("Records") or []:
            record["Data"] = binascii.a2b_base64(record["Data"])
            if "ApproximateArrivalTimestamp" in record:
                record["ApproximateArrivalTimestamp"] = _timestamp(
                    record["ApproximateArrivalTimestamp"]
                )
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
        return  # not what we expect: botocore parses it (and says what is wrong)
    customized_response_dict.update(doc)
    response_dict["body"] = b"{}"


_READER_SESSION: AioSession | None = None


def reader_session() -> AioSession:
    """The source reader's own session (per process): timestamps parsed as UTC datetimes
    by `_timestamp`, GetRecords answers by `fast_get_records`; the destinations' shared
    session is left as it is."""
    global _READER_SESSION
    if _READER_SESSION is None:
        _READER_SESSION = AioSession()
        factory = _READER_SESSION.get_component("response_parser_factory")
        factory.set_parser_defaults(timestamp_parser=_timestamp)
        _READER_SESSION.register("before-parse.kinesis.GetRecords", fast_get_records)
    return _READER_SESSION


def kinesis_client(
    auth: dict[str, Any], config: AioConfig = _CONFIG, session: AioSession | None = None
) -> Any:
    """A Kinesis client from a base connection's auth params (also the source reader's)."""
    return (session or aws_session()).create_client(
        "kinesis",
        region_name=auth["region"],
        endpoint_url=auth.get("endpoint") or None,
        aws_access_key_id=auth["accessKeyId"],
        aws_secret_access_key=auth["secretKey"],
        config=config,
    )


def _client(spec_id: str, p: dict[str, Any]) -> Any:
    if spec_id == KINESIS:
        return kinesis_client(p)
    return aws_session().create_client(
        "s3",
        region_name=p.get("region") or "us-east-1",
        endpoint_url=p.get("serviceUrl") or None,
        aws_access_key_id=p["s3AccessKey"],
        aws_secret_access_key=p["s3SecretKey"],
        aws_session_token=p.get("s3SessionToken"),
        config=_CONFIG,
    )


@dataclass(frozen=True)
class ExploreLimits:
    """How much one explore lists (FLOW_EXPLORE_MAX_PAGES, FLOW_EXPLORE_SECONDS): past
    either, the listing ends with a `continuation` entry."""

    max_pages: int = 50
    seconds: float = 10.0


ENDPOINT_PARAMS = ("endpoint", "serviceUrl")


async def guard(endpoints: EndpointPolicy, params: dict[str, Any]) -> None:
    """The SSRF guard again at each use (test, explore, the source reader), not only at
    create: the policy or the name's DNS may have changed since."""
    for key in ENDPOINT_PARAMS:
        try:
            await endpoints.check(params.get(key), at_send=True)
        except ForbiddenEndpoint as exc:
            raise Invalid(f"auth.params.{key}: {exc}") from None


async def test(spec_id: str, params: dict[str, Any], endpoints: EndpointPolicy) -> bool:
    """A real, cheap call with the stored credentials."""
    await guard(endpoints, params)
    try:
        async with _client(spec_id, params) as client:
            if spec_id == KINESIS:
                await client.list_streams(Limit=1)
            elif params.get("bucketName"):
                await client.head_bucket(Bucket=params["bucketName"])
            else:
                await client.list_buckets()
    except (ClientError, BotoCoreError, OSError):
        return False
    return True


def _item(kind: str, name: str, path: str) -> dict[str, Any]:
    return {
        "type": kind,
        "name": name,
        "path": path,
        "canPreview": kind == "file",
        "canFetchSchema": kind == "file",
    }


async def explore(
    spec_id: str,
    params: dict[str, Any],
    object_type: str,
    obj: str | None,
    endpoints: EndpointPolicy,
    limits: ExploreLimits = ExploreLimits(),
    start_after: str | None = None,
) -> list[dict[str, Any]]:
    """A Kinesis root listing continues after the stream named by `obj`, if given; an S3
    folder listing after the key `start_after`, if given."""
    await guard(endpoints, params)
    try:
        async with _client(spec_id, params) as client:
            if spec_id == KINESIS:
                return await _streams(client, limits, obj)
            if spec_id == S3:
                if object_type == "root":
                    return await _buckets(client, params)
                if object_type == "file":
                    return await _s3_file(client, obj)
                return await _s3_folder(client, object_type, obj, limits, start_after)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise Invalid(f"explore failed: {exc}") from None
    raise Invalid("this connection spec cannot be explored")


async def _streams(client: Any, limits: ExploreLimits, start: str | None) -> list[dict[str, Any]]:
    """ListStreams page by page, at most `limits.max_pages` pages and `limits.seconds`
    (a server may say HasMoreStreams forever). Cut short, the last entry is a
    `continuation` whose path is the stream name to continue after."""
    names: list[str] = []
    kwargs: dict[str, Any] = {"ExclusiveStartStreamName": start} if start else {}
    deadline = time.monotonic() + limits.seconds
    for _ in range(limits.max_pages):
        page = await client.list_streams(**kwargs)
        got = [n for n in page.get("StreamNames", []) if isinstance(n, str)]
        names += got
        if not page.get("HasMoreStreams") or not got:
            return [_item("stream", n, n) for n in names]
        kwargs = {"ExclusiveStartStreamName": names[-1]}
        if time.monotonic() >= deadline:
            break
    items = [_item("stream", n, n) for n in names]
    last = names[-1] if names else start or ""
    return [*items, _item("continuation", "more streams", last)]


async def _buckets(client: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    if params.get("bucketName"):
        bucket = params["bucketName"]
        return [_item("folder", bucket, f"{bucket}/")]
    buckets = (await client.list_buckets()).get("Buckets", [])
    return [_item("folder", b["Name"], f"{b['Name']}/") for b in buckets]


async def _s3_folder(
    client: Any, object_type: str, obj: str | None, limits: ExploreLimits, after: str | None
) -> list[dict[str, Any]]:
    """ListObjectsV2 page by page, at most `limits.max_pages` pages and `limits.seconds`
    (a server may say IsTruncated forever). Cut short, the last entry is a `continuation`
    whose path is the last key listed: `startAfter=<it>` goes on from there."""
    if object_type != "folder" or not obj:
        raise Invalid(
            "objectType must be root, folder with object=<bucket/prefix/>, "
            "or file with object=<bucket/key>"
        )
    bucket, _, prefix = obj.partition("/")
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
    if after:
        kwargs["StartAfter"] = after
    deadline, last = time.monotonic() + limits.seconds, after or prefix
    for _ in range(limits.max_pages):
        page = await client.list_objects_v2(**kwargs)
        out += _s3_items(bucket, prefix, page)
        last = max([last, *(_s3_keys(page))])
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return out
        kwargs["ContinuationToken"] = token
        if time.monotonic() >= deadline:
            break
    return [*out, _item("continuation", "more objects", f"{bucket}/{last}")]


async def _s3_file(client: Any, obj: str | None) -> list[dict[str, Any]]:
    """One object (HeadObject): its entry, with its size and ETag."""
    bucket, _, key = (obj or "").lstrip("/").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise Invalid("objectType=file needs object=<bucket/key>")
    head = await client.head_object(Bucket=bucket, Key=key)
    item = _item("file", key.rsplit("/", 1)[-1], f"{bucket}/{key}")
    return [{**item, "size": head.get("ContentLength"), "etag": head.get("ETag")}]


def _s3_keys(page: dict[str, Any]) -> list[str]:
    return [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [
        o["Key"] for o in page.get("Contents", [])
    ]


def _s3_items(bucket: str, prefix: str, page: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in page.get("CommonPrefixes", []):
        name = p["Prefix"][len(prefix) :].rstrip("/")
        out.append(_item("folder", name, f"{bucket}/{p['Prefix']}"))
    for o in page.get("Contents", []):
        if o["Key"] != prefix:
            out.append(_item("file", o["Key"][len(prefix) :], f"{bucket}/{o['Key']}"))
    return out


async def describe_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard, with DescribeStream (the permission the seed's users grant), paged."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        desc = (await client.describe_stream(**kwargs))["StreamDescription"]
        shards += desc["Shards"]
        if not desc.get("HasMoreShards") or not desc["Shards"]:
            return shards
        kwargs["ExclusiveStartShardId"] = shards[-1]["ShardId"]
