"""The few pieces of the Kafka wire protocol the tests' SASL front reads and writes:
frames, request headers, SaslHandshake/SaslAuthenticate answers, InitProducerId v0 -> v3,
and Produce requests/answers (v3-v8) taken apart by partition. Test-only."""

from __future__ import annotations

import struct
from dataclasses import dataclass

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS, PRODUCE, INIT_PRODUCER_ID = 17, 36, 18, 0, 22


class Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def string(self) -> str | None:
        n = self.take(">h")
        return None if n < 0 else self.raw(n).decode()

    def bytes_(self) -> bytes | None:
        n = self.take(">i")
        return None if n < 0 else self.raw(n)

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip_tags(self) -> None:
        for _ in range(self.varint()):
            self.varint()
            self.raw(self.varint())


def string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def bytes_(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


@dataclass
class Header:
    api_key: int
    version: int
    correlation: int
    client_id: str | None
    body_at: int  # where the body starts (non-flexible header v1)


def header(payload: bytes) -> Header:
    r = Reader(payload)
    key, version, correlation = r.take(">h"), r.take(">h"), r.take(">i")
    client_id = r.string()
    return Header(key, version, correlation, client_id, r.pos)


def handshake_answer(h: Header, enabled: list[str], ok: bool) -> bytes:
    mechanisms = struct.pack(">i", len(enabled)) + b"".join(string(m) for m in enabled)
    return struct.pack(">ih", h.correlation, 0 if ok else 33) + mechanisms


def authenticate_answer(h: Header, error: str | None, token: bytes) -> bytes:
    out = struct.pack(">ih", h.correlation, 58 if error else 0) + string(error) + bytes_(token)
    if h.version >= 1:
        out += struct.pack(">q", 0)  # session_lifetime_ms: no re-authentication
    return out


def init_pid_v3(h: Header, payload: bytes) -> bytes:
    """InitProducerId v0/v1 (null producer id) as v3, which asks for a new producer id
    explicitly (-1/-1): Tansu's memory store answers v0's implicit form with an error."""
    r = Reader(payload, h.body_at)
    txn, timeout = r.string(), r.take(">i")
    head = struct.pack(">hhi", INIT_PRODUCER_ID, 3, h.correlation) + string(h.client_id) + b"\0"
    txn_raw = b"\0" if txn is None else uvarint(len(txn.encode()) + 1) + txn.encode()
    return head + txn_raw + struct.pack(">iqh", timeout, -1, -1) + b"\0"


def init_pid_answer_v0(payload: bytes) -> bytes:
    r = Reader(payload)
    correlation = r.take(">i")
    r.skip_tags()
    throttle, error, pid, epoch = r.take(">i"), r.take(">h"), r.take(">q"), r.take(">h")
    return struct.pack(">iihqh", correlation, throttle, error, pid, epoch)


@dataclass
class Produce:
    header: Header
    prefix: bytes  # transactional_id, acks, timeout
    topics: list[tuple[str, list[tuple[int, bytes]]]]  # (topic, [(partition, records)])


def produce(payload: bytes) -> Produce:
    h = header(payload)
    r = Reader(payload, h.body_at)
    r.string()
    r.take(">h")
    r.take(">i")
    prefix = payload[h.body_at : r.pos]
    topics = []
    for _ in range(r.take(">i")):
        name = r.string() or ""
        parts = [(r.take(">i"), r.bytes_() or b"") for _ in range(r.take(">i"))]
        topics.append((name, parts))
    return Produce(h, prefix, topics)


def produce_request(p: Produce, topics: list[tuple[str, list[tuple[int, bytes]]]]) -> bytes:
    h = p.header
    out = struct.pack(">hhi", PRODUCE, h.version, h.correlation) + string(h.client_id)
    out += p.prefix + struct.pack(">i", len(topics))
    for name, parts in topics:
        out += string(name) + struct.pack(">i", len(parts))
        out += b"".join(struct.pack(">i", i) + bytes_(records) for i, records in parts)
    return out


def partition_answer(version: int, partition: int, error: int) -> bytes:
    out = struct.pack(">ihqq", partition, error, -1, -1)
    if version >= 5:
        out += struct.pack(">q", -1)
    if version >= 8:
        out += struct.pack(">i", 0) + string("injected by the test front")
    return out


def produce_answer(version: int, answers: dict[str, list[bytes]], correlation: int) -> bytes:
    out = struct.pack(">ii", correlation, len(answers))
    for name, parts in answers.items():
        out += string(name) + struct.pack(">i", len(parts)) + b"".join(parts)
    return out + struct.pack(">i", 0)


def produce_answers(version: int, payload: bytes) -> dict[str, list[bytes]]:
    """An upstream Produce answer, each partition's entry kept as raw bytes."""
    r = Reader(payload, 4)
    out: dict[str, list[bytes]] = {}
    for _ in range(r.take(">i")):
        name = r.string() or ""
        for _ in range(r.take(">i")):
            start = r.pos
            r.raw(4 + 2 + 8 + 8 + (8 if version >= 5 else 0))
            if version >= 8:
                for _ in range(r.take(">i")):
                    r.take(">i")
                    r.string()
                r.string()
            out.setdefault(name, []).append(payload[start : r.pos])
    return out


def record_keys(records: bytes) -> list[str]:
    """The keys of the messages in a (v2, uncompressed) record batch."""
    keys, pos = [], 0
    while pos + 61 <= len(records):
        length = struct.unpack_from(">i", records, pos + 8)[0]
        count = struct.unpack_from(">i", records, pos + 57)[0]
        r = Reader(records, pos + 61)
        for _ in range(count):
            size = r.zigzag()
            end = r.pos + size
            r.raw(1)
            r.zigzag()
            r.zigzag()
            n = r.zigzag()
            keys.append(r.raw(n).decode() if n >= 0 else "")
            r.pos = end
        pos += 12 + length
    return keys
