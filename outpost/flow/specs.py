"""Flow Service connection specs: Amazon Kinesis and Amazon S3 (ids from seeds 000 and
001), our own target (a tenant's event pipeline) and the streaming flow spec. Static data;
auth params and source params are described as JSON Schema (draft-07), secrets marked
`format: password`."""

from __future__ import annotations

from typing import Any

KINESIS = "86043421-563b-46ec-8e6c-e23184711bf6"
S3 = "ecadc60c-7455-4d87-84dc-2a0e293d997b"
PIPELINE = "4f2b8e31-7c0a-4e55-9d3f-0a8b6c1e2d70"  # ours: publish into a tenant's pipeline
STREAMING_FLOW = "d69717ba-71b4-4313-b654-49f9cf126d7a"
# cloud storage to the platform, on a schedule (Adobe's CloudStorageToAEP flow spec)
BATCH_FLOW = "9753525b-82c7-4dce-8a9b-5ccfce2b9876"
FREQUENCIES = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "once": 0}
KINESIS_PROVIDER = "521eee4d-8cbe-4906-bb48-fb6bd4450033"

_ENDPOINT = {
    "type": "string",
    "format": "uri",
    "pattern": "^https?://",
    "description": "Optional: a custom endpoint (LocalStack, a VPC endpoint).",
}
_REGION = {
    "type": "string",
    "pattern": r"^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$",
    "description": "AWS region, e.g. us-east-1.",
}

SPECS: dict[str, dict[str, Any]] = {
    KINESIS: {
        "id": KINESIS,
        "name": "amazon-kinesis",
        "providerId": KINESIS_PROVIDER,
        "version": "1.0",
        "type": "Streaming",
        "attributes": {"category": "cloudStorage", "isSource": True, "isPreview": False},
        "authSpec": [
            {
                "name": "Aws Kinesis authentication credentials",
                "type": "AwsKinesisAuth",
                "spec": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {
                        "accessKeyId": {
                            "type": "string",
                            "minLength": 1,
                            "description": "Access key id.",
                        },
                        "secretKey": {
                            "type": "string",
                            "minLength": 1,
                            "format": "password",
                            "description": "Secret access key.",
                        },
                        "region": _REGION,
                        "endpoint": _ENDPOINT,
                    },
                    "required": ["accessKeyId", "secretKey", "region"],
                    "additionalProperties": False,
                },
            }
        ],
        "sourceSpec": {
            "spec": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "stream": {
                        "type": "string",
                        "pattern": r"^[a-zA-Z0-9_.-]{1,128}$",
                        "description": "The stream to read.",
                    },
                    "dataType": {"type": "string", "enum": ["raw", "xdm"]},
                    "reset": {"type": "string", "enum": ["latest", "earliest"]},
                },
                "required": ["stream"],
                "additionalProperties": False,
            }
        },
        "dataFormats": ["json"],
        "exploreSpec": {"name": "Streams", "type": "Kinesis"},
    },
    S3: {
        "id": S3,
        "name": "amazon-s3",
        "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a",
        "version": "1.0",
        "type": "Batch",
        "attributes": {"category": "cloudStorage", "isSource": True, "isPreview": False},
        "authSpec": [
            {
                "name": "Access Key",
                "type": "AccessKey",
                "spec": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {
                        "s3AccessKey": {"type": "string", "minLength": 1},
                        "s3SecretKey": {"type": "string", "minLength": 1, "format": "password"},
                        "s3SessionToken": {"type": "string", "format": "password"},
                        "serviceUrl": _ENDPOINT,
                        "bucketName": {"type": "string", "minLength": 3, "maxLength": 63},
                        "folderPath": {"type": "string"},
                        "region": _REGION,
                    },
                    "required": ["s3AccessKey", "s3SecretKey"],
                    "additionalProperties": False,
                },
            }
        ],
        "sourceSpec": {
            "spec": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "pattern": r"^/?[a-z0-9][a-z0-9.-]{1,62}(/.*)?$",
                        "description": "bucket/folder/ (every object under it) or "
                        "bucket/key (one object).",
                    },
                },
                "required": ["path"],
                "additionalProperties": False,
            }
        },
        # json: a JSON array, or JSON lines (one object per line); delimited: CSV with a
        # header row; parquet: one event per row (flow/parquet.py)
        "dataFormats": ["json", "delimited", "parquet"],
        "exploreSpec": {"name": "Buckets", "type": "FileSystem"},
    },
    PIPELINE: {
        "id": PIPELINE,
        "name": "outpost-pipeline",
        "providerId": "outpost",
        "version": "1.0",
        "type": "Streaming",
        "attributes": {"category": "pipeline", "isSource": False, "isDestination": True},
        "authSpec": [],
        "targetSpec": {
            "spec": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "topic": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 256,
                        "description": "Topic of the events published.",
                    }
                },
                "required": ["topic"],
                "additionalProperties": False,
            }
        },
        "dataFormats": ["json"],
    },
}


def secret_params(spec_id: str, spec_name: str) -> set[str]:
    for auth in SPECS.get(spec_id, {}).get("authSpec", []):
        if auth["name"] == spec_name:
            return {
                k for k, v in auth["spec"]["properties"].items() if v.get("format") == "password"
            }
    return set()


def auth_schema(spec_id: str, spec_name: str) -> dict[str, Any] | None:
    for auth in SPECS[spec_id].get("authSpec", []):
        if auth["name"] == spec_name:
            schema: dict[str, Any] = auth["spec"]
            return schema
    return None
