"""Destination validation, merge patch, masking, encryption and settings: no server."""

import pytest
from pydantic import ValidationError

from outpost.codec import seal, unseal
from outpost.crypto import Cipher, DecryptionFailed, mask
from outpost.destinations.kinesis.provider import KinesisProvider
from outpost.destinations.registry import Registry, merge_patch
from outpost.errors import ValidationFailed
from outpost.settings import Settings, describe_errors

REG = Registry([KinesisProvider()])
SEED = {
    "type": "aws_kinesis",
    "topics": ["orders"],
    "config": {"stream_name": "my-stream", "region": "us-east-1"},
    "credentials": {"key": "<AWS_ACCESS_KEY_ID>", "secret": "<AWS_SECRET_ACCESS_KEY>"},
}


def problems_of(body):
    with pytest.raises(ValidationFailed) as info:
        REG.create("t1", body, new_id="des_x")
    return info.value.data


def test_seed_body_is_valid():
    d = REG.create("t1", SEED, new_id="des_x")
    assert (d.id, d.config["stream_name"], d.credentials["secret"]) == (
        "des_x",
        "my-stream",
        "<AWS_SECRET_ACCESS_KEY>",
    )


@pytest.mark.parametrize(
    "region",
    ["us-east-1", "us-gov-west-1", "eu-central-2", "ap-southeast-5", "cn-north-1", "il-central-1"],
)
def test_any_aws_region(region):
    d = REG.create("t1", {**SEED, "config": {"stream_name": "s", "region": region}}, new_id="d")
    cipher = Cipher("a-secret-of-sixteen-bytes")
    stored = unseal(seal(d, cipher), cipher)
    assert d.config["region"] == stored.config["region"] == region
    assert REG.to_response(stored)["config"]["region"] == region


@pytest.mark.parametrize(
    "region", ["mars", "us-east", "US-EAST-1", "us-east-1 ", "useast1", "us-east-1a", ""]
)
def test_a_region_that_is_not_an_aws_region_is_named(region):
    found = problems_of({**SEED, "config": {"stream_name": "s", "region": region}})
    assert [p for p in found if p.startswith("config.region")], found


def test_every_bad_field_is_named_at_once():
    found = problems_of(
        {
            "type": "aws_kinesis",
            "topics": [],
            "config": {
                "stream_name": "bad name!",
                "region": "mars",
                "endpoint": "ftp://x",
                "partition_key_template": "data[",
            },
            "credentials": {"secret": ""},
        }
    )
    text = " | ".join(found)
    for name in (
        "topics",
        "config.stream_name",
        "config.region",
        "config.endpoint",
        "config.partition_key_template",
        "credentials.key",
        "credentials.secret",
    ):
        assert name in text, name


def test_missing_fields_say_required():
    found = problems_of({"type": "aws_kinesis", "config": {}, "credentials": {}})
    assert {
        "topics is required",
        "config.stream_name is required",
        "config.region is required",
        "credentials.key is required",
        "credentials.secret is required",
    } <= set(found)


def test_unknown_type_and_unknown_config_field():
    assert any(
        "unsupported destination type 'carrier_pigeon'" in p
        for p in problems_of({**SEED, "type": "carrier_pigeon"})
    )
    assert "config.stream is not a known field" in problems_of(
        {**SEED, "config": {**SEED["config"], "stream": "x"}}
    )


def test_stream_name_limits():
    REG.create("t1", {**SEED, "config": {"stream_name": "a" * 128, "region": "us-east-1"}}, "d")
    assert any(
        p.startswith("config.stream_name")
        for p in problems_of({**SEED, "config": {"stream_name": "a" * 129, "region": "us-east-1"}})
    )


def test_update_merges_maps_and_keeps_type():
    d = REG.create("t1", {**SEED, "metadata": {"a": "1", "b": "2"}}, new_id="d")
    u = REG.update(
        d,
        {
            "config": {"partition_key_template": "data.id"},
            "metadata": {"b": None, "c": "3"},
            "credentials": {"secret": "new"},
        },
    )
    assert u.config == {
        "stream_name": "my-stream",
        "region": "us-east-1",
        "partition_key_template": "data.id",
    }
    assert u.metadata == {"a": "1", "c": "3"}
    assert u.credentials == {"key": "<AWS_ACCESS_KEY_ID>", "secret": "new"}
    with pytest.raises(ValidationFailed, match="validation"):
        REG.update(d, {"type": "webhook"})
    with pytest.raises(ValidationFailed):
        REG.update(d, {"config": {"region": None}})  # deleting a required field


def test_masked_secret_sent_back_keeps_the_stored_one():
    d = REG.create("t1", SEED, new_id="d")
    shown = REG.to_response(d)["credentials"]["secret"]
    assert shown == "<AWS******" and shown != SEED["credentials"]["secret"]
    assert (
        REG.update(d, {"credentials": {"secret": shown}}).credentials["secret"]
        == "<AWS_SECRET_ACCESS_KEY>"
    )


def test_merge_patch_rfc7396():
    assert merge_patch({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": None, "e": 3}, "d": None}) == {
        "a": {"c": 2, "e": 3}
    }


def test_mask():
    assert mask("wJalrXUtnFEMI/K7MDENG") == "wJal******"
    assert mask("short") == "********"


def test_cipher_roundtrip_and_binding():
    c = Cipher("k1")
    blob = c.encrypt({"secret": "s3cr3t"}, "t1/d1")
    assert "s3cr3t" not in blob
    assert c.decrypt(blob, "t1/d1") == {"secret": "s3cr3t"}
    with pytest.raises(DecryptionFailed):
        c.decrypt(blob, "t2/d1")  # copied onto another tenant's destination
    with pytest.raises(DecryptionFailed):
        Cipher("k2").decrypt(blob, "t1/d1")


def test_settings_defaults_and_env_names(monkeypatch):
    monkeypatch.setenv("TOPICS", "orders, users")
    monkeypatch.setenv("RETRY_SCHEDULE", "1,5,30")
    monkeypatch.setenv("DESTINATIONS_AWS_KINESIS_METADATA_IN_PAYLOAD", "false")
    s = Settings()
    assert (
        s.api_port,
        s.max_retry_limit,
        s.retry_interval_seconds,
        s.delivery_timeout_seconds,
    ) == (3333, 10, 30, 5)
    assert s.topics == ["orders", "users"] and s.retry_schedule == [1, 5, 30]
    assert s.destinations_aws_kinesis_metadata_in_payload is False
    assert s.redis_dsn() == "redis://127.0.0.1:6379/0"


def test_settings_errors_one_line_per_bad_value(monkeypatch):
    monkeypatch.setenv("API_PORT", "http")
    monkeypatch.setenv("MAX_RETRY_LIMIT", "-1")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ValidationError) as info:
        Settings()
    lines = describe_errors(info.value)
    assert len(lines) == 3
    assert any(line.startswith("API_PORT:") and "'http'" in line for line in lines)
    assert any(line.startswith("MAX_RETRY_LIMIT:") for line in lines)
    assert any(line.startswith("LOG_LEVEL:") for line in lines)


def test_secret_settings_are_not_echoed(monkeypatch):
    monkeypatch.setenv("REDIS_PASSWORD", "")
    s = Settings(api_key="", aes_encryption_secret="")
    assert s.check_service_secrets() == [
        "API_KEY: required (the admin key for the API; "
        "API_AUTH_DISABLED=true runs with no auth at all)",
        "AES_ENCRYPTION_SECRET: required (encrypts credentials at rest)",
    ]


def test_short_jwt_secret_is_refused():
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(api_jwt_secret="short")
    assert Settings(api_jwt_secret="x" * 32).api_jwt_secret == "x" * 32
