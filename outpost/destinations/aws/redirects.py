"""aiobotocore clients for a tenant's endpoints: they never follow an HTTP redirect, and
each request ends within its connect plus read timeout, whatever the server does.

- Redirects: aiobotocore sends through aiohttp, which follows 3xx by default: a tenant's
  endpoint answering `307 Location: http://127.0.0.1/...` would walk the call past the
  endpoint guard.
- Timeouts: aiobotocore gives aiohttp only `sock_connect` and `sock_read` (the config's
  connect_timeout and read_timeout). `sock_read` bounds each read, not the answer: a
  server that trickles a byte every few seconds held a call for ever. Each request also
  gets `total` = connect + read timeout.

Every AWS client made for a tenant's connection (Flow Service test, explore, the Kinesis
source reader) uses this session class; the lean delivery path (sigv4.py) sends
`allow_redirects=False` with a total timeout itself."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiobotocore.httpsession import AIOHTTPSession


class _Bounded:
    """The one method aiobotocore's session uses, with redirects off and a total."""

    def __init__(self, session: Any, timeout: aiohttp.ClientTimeout):
        self._session = session
        self._timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = _with_total(kwargs.get("timeout") or self._timeout)
        return self._session.request(*args, allow_redirects=False, **kwargs)


def _with_total(t: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    if t.total is not None or (t.sock_connect is None and t.sock_read is None):
        return t
    total = (t.sock_connect or 0) + (t.sock_read or 0)
    return aiohttp.ClientTimeout(total=total, sock_connect=t.sock_connect, sock_read=t.sock_read)


class NoRedirectSession(AIOHTTPSession):
    async def _get_session(self, proxy_url: Any) -> Any:
        return _Bounded(await super()._get_session(proxy_url), self._timeout)
