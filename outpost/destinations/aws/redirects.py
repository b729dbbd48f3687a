"""aiobotocore clients that never follow an HTTP redirect. aiobotocore sends through
aiohttp, which follows 3xx by default: a tenant's endpoint answering `307 Location:
http://127.0.0.1/...` would walk the call past the endpoint guard. Every AWS client made
for a tenant's connection (Flow Service test, explore, the Kinesis source reader) uses
this session class; the lean delivery path sends `allow_redirects=False` itself."""

from __future__ import annotations

from typing import Any

from aiobotocore.httpsession import AIOHTTPSession


class _NoRedirects:
    """The one method aiobotocore's session uses, with redirects off."""

    def __init__(self, session: Any):
        self._session = session

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.request(*args, allow_redirects=False, **kwargs)


class NoRedirectSession(AIOHTTPSession):
    async def _get_session(self, proxy_url: Any) -> Any:
        return _NoRedirects(await super()._get_session(proxy_url))
