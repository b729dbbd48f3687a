"""The webhook's signature scheme and its templates (pure: no server): Outpost's
default and earlier default schemes sign as Outpost computes them, every template the
settings accept renders, and a template outside the subset stops start-up with one
line naming the setting."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from pydantic import ValidationError

from outpost.destinations.webhook.signature import Scheme, Signed
from outpost.destinations.webhook.template import CONTENT_FIELDS, HEADER_FIELDS, Template
from outpost.settings import Settings, describe_errors

BODY = b'{"z":1,"a":"\xc3\xbc"}'
WHAT = Signed("evt_1", "orders", 1714564800, BODY)


def mac(key: str, content: bytes, algo=hashlib.sha256) -> bytes:
    return hmac.new(key.encode(), content, algo).digest()


def test_outposts_default_scheme_signs_the_body_with_each_key_newest_first():
    header = Scheme().sign(["whsec_new", "whsec_old"], WHAT)
    assert header == f"v0={mac('whsec_new', BODY).hex()},{mac('whsec_old', BODY).hex()}"


def test_outposts_earlier_default_scheme_timestamp_dot_body():
    scheme = Scheme(
        content="{{.Timestamp.Unix}}.{{.Body}}",
        header='t={{.Timestamp.Unix}},v0={{.Signatures | join ","}}',
    )
    want = mac("k", b"1714564800." + BODY).hex()
    assert scheme.sign(["k"], WHAT) == f"t=1714564800,v0={want}"


def test_standard_webhooks_like_scheme_base64_and_indexing():
    scheme = Scheme(
        content="{{.EventID}}.{{.Timestamp.Unix}}.{{.Body}}",
        header="v1,{{index .Signatures 0}}",
        encoding="base64",
        algorithm="hmac-sha1",
    )
    want = base64.b64encode(mac("k", b"evt_1.1714564800." + BODY, hashlib.sha1)).decode()
    assert scheme.sign(["k", "other"], WHAT) == f"v1,{want}"


def test_generated_secrets_follow_the_template():
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", Scheme().new_secret())
    alnum = Scheme(secret_template="sk_{{.RandomAlphanumeric}}").new_secret()
    assert re.fullmatch(r"sk_[A-Za-z0-9]{32}", alnum)
    assert Scheme().new_secret() != Scheme().new_secret()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("destinations_webhook_signature_content_template", "{{.Signatures}}"),
        ("destinations_webhook_signature_content_template", "{{.Body | upper}}"),
        ("destinations_webhook_signature_header_template", "v0={{.Body}}"),
        ("destinations_webhook_signature_header_template", "v0={{.Signatures}"),
        ("destinations_webhook_signing_secret_template", "fixed-secret"),
    ],
)
def test_a_template_outside_the_subset_is_one_start_up_line(name, value):
    with pytest.raises(ValidationError) as info:
        Settings(**{name: value})
    [line] = describe_errors(info.value)
    assert line.startswith(name.upper() + ": ")


@pytest.mark.parametrize(
    ("content", "header"),
    [
        ("{{.Body}}", 'v0={{.Signatures | join ","}}'),
        (
            "{{ .Timestamp.Unix }}.{{ .Body }}",
            't={{.Timestamp.Unix}},v0={{.Signatures | join " "}}',
        ),
        ("{{.EventID}}{{.Topic}}{{.Body}}", "{{.EventID}} {{index .Signatures 1}}"),
    ],
)
def test_what_the_settings_accept_the_renderer_renders(content, header):
    s = Settings(
        destinations_webhook_signature_content_template=content,
        destinations_webhook_signature_header_template=header,
    )
    Template(s.destinations_webhook_signature_content_template, CONTENT_FIELDS)
    Template(s.destinations_webhook_signature_header_template, HEADER_FIELDS)
    assert Scheme(content, header).sign(["a", "b"], WHAT)
