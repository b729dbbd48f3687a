"""Which URLs a tenant may point us at (SSRF guard).

A tenant-supplied endpoint (a destination's `config.endpoint`, a Flow Service connection's
`endpoint`/`serviceUrl`) must resolve only to globally routable addresses: loopback,
private, link-local (169.254.169.254, the cloud metadata service), CGNAT, multicast and
reserved addresses are refused, and so are IPv6 forms that embed such an IPv4 address
(IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16). Teredo, IPv4-compatible,
IPv4-translated and local-use NAT64 addresses are refused outright. The operator may
set `DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS` (the local stack lives on 127.0.0.1).
Checked at create/update and again at each use, since DNS can change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

Resolver = Callable[[str], Awaitable[list[str]]]
CACHE_SECONDS = 30.0


class ForbiddenEndpoint(Exception):
    pass


async def system_resolver(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


# IPv6 ranges refused whatever they carry: IPv4-compatible (deprecated, ::a.b.c.d),
# IPv4-translated (SIIT, ::ffff:0:a.b.c.d), NAT64 local-use (RFC 8215: the operator's own
# translator, any IPv4 behind it) and Teredo (the IPv4 inside is obfuscated)
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "2001::/32")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix: the IPv4 is the last 32 bits


def forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _REFUSED_V6):
            return True
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return forbidden(str(embedded))
    return not ip.is_global or ip.is_multicast


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through: IPv4-mapped, NAT64, 6to4."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


class EndpointPolicy:
    def __init__(self, allow_private: bool = False, resolver: Resolver = system_resolver):
        self.allow_private = allow_private
        self.resolver = resolver
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def check(self, url: str | None, at_send: bool = False) -> None:
        """Raise ForbiddenEndpoint with the reason. At send time an unresolvable host is let
        through (the send fails and is retried like any connection error)."""
        if not url or self.allow_private:
            return
        host = urlparse(url).hostname or ""
        reason = await self._verdict(host, at_send)
        if reason:
            raise ForbiddenEndpoint(reason)

    async def _verdict(self, host: str, at_send: bool) -> str | None:
        cached = self._cache.get(host)
        if at_send and cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            addresses = [host] if _is_ip(host) else await self.resolver(host)
        except OSError:
            return None if at_send else f"host {host!r} could not be resolved"
        bad = [a for a in addresses if forbidden(a)]
        reason = (
            (
                f"{host!r} resolves to a non-public address ({bad[0]}); private, loopback "
                "and link-local endpoints are not allowed"
            )
            if bad
            else None
        )
        self._cache[host] = (time.monotonic() + CACHE_SECONDS, reason)
        return reason


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
