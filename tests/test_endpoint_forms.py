"""SSRF guard, issue 14 item 12: IPv6 forms that embed (or may embed) a private or loopback
IPv4 address are refused, as literal hosts in URLs and as resolved addresses; public
addresses in the same forms that do not hide anything stay accepted."""

import pytest

from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint, forbidden

EMBEDDING = [
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",  # NAT64 well-known prefix
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1",
    "64:ff9b:1::7f00:1",  # NAT64 local-use prefix (RFC 8215): refused whatever it embeds
    "64:ff9b:1::808:808",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "::127.0.0.1",  # IPv4-compatible (deprecated): refused whatever it embeds
    "::7f00:1",
    "::8.8.8.8",
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT): refused whatever it embeds
    "::ffff:0:808:808",
    "2001::1",  # Teredo: the embedded address is obfuscated; refused outright
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:0:7f00:1::",
]
PUBLIC = ["2600:1f18::1", "2a05:d018::1", "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", EMBEDDING)
def test_embedded_ipv4_forms_are_forbidden(address):
    assert forbidden(address) is True


@pytest.mark.parametrize("address", PUBLIC)
def test_public_ipv6_still_allowed(address):
    assert forbidden(address) is False


async def no_dns(host):
    raise OSError("no DNS in this test")


@pytest.mark.parametrize("address", EMBEDDING)
async def test_literal_ipv6_hosts_in_urls_are_refused(address):
    policy = EndpointPolicy(allow_private=False, resolver=no_dns)
    for url in (f"http://[{address}]:4566", f"https://[{address}]/", f"http://[{address}%eth0]/"):
        with pytest.raises(ForbiddenEndpoint):
            await policy.check(url)
        with pytest.raises(ForbiddenEndpoint):
            await policy.check(url, at_send=True)


@pytest.mark.parametrize("address", EMBEDDING)
async def test_names_resolving_to_embedding_forms_are_refused(address):
    async def resolver(host):
        return [address]

    with pytest.raises(ForbiddenEndpoint):
        await EndpointPolicy(allow_private=False, resolver=resolver).check("https://x.example.com")


@pytest.mark.parametrize("address", PUBLIC)
async def test_public_literal_ipv6_urls_accepted(address):
    await EndpointPolicy(allow_private=False, resolver=no_dns).check(f"https://[{address}]/")
