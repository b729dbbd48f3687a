"""Bytes the AWS types send that Outpost builds from Go maps: Go's encoder writes a map's
keys sorted, so our metadata objects are sorted too (compact). Unlike Go's default
encoder we do not re-escape `<`, `>` and `&`: the event's text arrives as it was sent."""

from __future__ import annotations

import json
from collections.abc import Mapping


def metadata_json(metadata: Mapping[str, str]) -> str:
    """The metadata object as Outpost's providers marshal it: keys sorted, compact."""
    return json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def data_and_metadata(data: bytes, metadata: Mapping[str, str]) -> bytes:
    """`{"data": ..., "metadata": {...}}`: Outpost's map envelope (keys sorted, so `data`
    first), the data bytes spliced in as they are (key order, digits, unicode kept)."""
    return b'{"data":' + data + b',"metadata":' + metadata_json(metadata).encode() + b"}"
