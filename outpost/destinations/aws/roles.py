"""Delivering into a tenant's own AWS account with an IAM role the tenant made for us.

Every AWS destination type resolves its signing keys here (`Roles.keys`): static keys as
the tenant gave them, or, with `credentials.role_arn`, the keys of an STS AssumeRole made
with the operator's own credentials (the process's standard AWS credential chain:
environment, web identity/IRSA, instance profile), RoleSessionName naming the destination
and the destination's generated ExternalId. Assumed keys are cached per destination and
refreshed `REFRESH_MARGIN` before they expire: one AssumeRole per destination per session
duration, never one per event; many sends waiting on the same AssumeRole share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

from outpost.errors import NotConfigured, PermanentError
from outpost.models import Destination

ROLE_ARN_RE = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"
EXTERNAL_ID_BYTES = 24  # 32 URL-safe characters
REFRESH_MARGIN = 300.0  # seconds before expiry an assumed session is replaced
DEFAULT_DURATION = 3600
CACHE_SIZE = 4096
REFUSAL_MEMORY = 30.0  # seconds a refused AssumeRole is answered from memory
# AssumeRole answers that will not change by asking again: the role or its trust policy
DENIED = {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "ExpiredToken"}
INVALID = {"ValidationError", "MalformedPolicyDocument", "RegionDisabledException"}


class RoleRefused(PermanentError):
    """AssumeRole failed in a way asking again will not change."""

    broken = True  # the destination cannot deliver until its role is fixed

    def __init__(self, code: str, role_arn: str, aws_code: str, message: str):
        why = (
            "the role's trust policy does not allow us, or the external id is wrong"
            if code == "role_denied"
            else "the role cannot be assumed"
        )
        super().__init__(
            code,
            f"AssumeRole {role_arn}: {why} ({aws_code}: {message[:200]})",
            {"error_code": aws_code, "operation": "AssumeRole"},
        )


@dataclass(frozen=True)
class Session:
    key: str
    secret: str
    token: str
    expires: float  # on the Roles clock


def new_external_id() -> str:
    return secrets.token_urlsafe(EXTERNAL_ID_BYTES)


def session_name(destination: Destination) -> str:
    """RoleSessionName: the destination, so CloudTrail in the tenant's account says who."""
    name = re.sub(r"[^\w+=,.@-]", "-", f"outpost-{destination.id}")
    return name[:64]


def role_account(role_arn: str) -> str:
    return role_arn.split(":")[4]


class Roles:
    """The assumed-role sessions of every AWS destination in this process, and the STS
    client that makes them (the operator's credentials)."""

    def __init__(
        self,
        duration: int = DEFAULT_DURATION,
        roles_only: bool = False,
        principal_arn: str = "",
        region: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.duration = duration
        self.roles_only = roles_only
        self.principal_arn = principal_arn
        self.region = region
        self.clock = clock
        self.assumed = 0  # AssumeRole calls made (what the tests and the README count)
        self._sessions: dict[str, Session] = {}
        # a refusal, remembered briefly: queued events do not each ask STS again
        self._refused: dict[str, tuple[RoleRefused, float]] = {}
        self._making: dict[str, asyncio.Future[Session]] = {}
        self._sts: Any = None

    async def keys(self, destination: Destination) -> tuple[str, str, str | None]:
        """(key, secret, session token) to sign this destination's calls with."""
        creds = destination.credentials
        role_arn = creds.get("role_arn")
        if not role_arn:
            return (
                str(creds.get("key") or ""),
                str(creds.get("secret") or ""),
                creds.get("session") or None,
            )
        s = await self.session(destination)
        return s.key, s.secret, s.token

    async def session(self, destination: Destination, fresh: bool = False) -> Session:
        """The destination's assumed-role keys; `fresh` (the preflight) asks STS again
        after a refusal instead of answering the remembered one."""
        creds = destination.credentials
        cache_key = "\0".join([destination.id, creds["role_arn"], creds.get("external_id", "")])
        hit = self._sessions.get(cache_key)
        if hit is not None and self.clock() < hit.expires - self.margin:
            return hit
        refused_ = self._refused.get(cache_key)
        if refused_ is not None and not fresh and self.clock() < refused_[1]:
            raise refused_[0]
        making = self._making.get(cache_key)
        if making is None:
            making = self._making[cache_key] = asyncio.ensure_future(
                self._assume(cache_key, destination)
            )
            making.add_done_callback(lambda _: self._making.pop(cache_key, None))
        return await asyncio.shield(making)

    @property
    def margin(self) -> float:
        return min(REFRESH_MARGIN, self.duration / 4)

    async def _assume(self, cache_key: str, destination: Destination) -> Session:
        creds = destination.credentials
        role_arn = str(creds["role_arn"])
        started = self.clock()
        self.assumed += 1
        try:
            resp = await (await self.sts()).assume_role(
                RoleArn=role_arn,
                RoleSessionName=session_name(destination),
                ExternalId=str(creds.get("external_id", "")),
                DurationSeconds=self.duration,
            )
        except ClientError as exc:
            error = refused(exc, role_arn)
            if isinstance(error, RoleRefused):
                self._refused[cache_key] = (error, self.clock() + REFUSAL_MEMORY)
                while len(self._refused) > CACHE_SIZE:
                    self._refused.pop(next(iter(self._refused)))
            raise error from None
        self._refused.pop(cache_key, None)
        c = resp["Credentials"]
        lifetime = min(float(self.duration), c["Expiration"].timestamp() - time.time())
        s = Session(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], started + lifetime)
        self._sessions[cache_key] = s
        while len(self._sessions) > CACHE_SIZE:
            self._sessions.pop(next(iter(self._sessions)))
        return s

    async def sts(self) -> Any:
        """One STS client with the operator's credentials (the standard chain;
        `AWS_ENDPOINT_URL_STS`/`AWS_ENDPOINT_URL` point it elsewhere, as for any client)."""
        if self._sts is None:
            # a session of its own: the operator's chain is resolved when the client is made
            creator = AioSession().create_client(
                "sts",
                region_name=self.region or "us-east-1",
                config=AioConfig(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
            )
            self._sts = await creator.__aenter__()
        return self._sts

    async def principal(self) -> str:
        """The AWS principal tenants trust: AWS_ROLE_PRINCIPAL_ARN, else who the operator's
        credentials are (an assumed role's session stands for its role)."""
        if self.principal_arn:
            return self.principal_arn
        try:
            arn = str((await (await self.sts()).get_caller_identity())["Arn"])
        except (ClientError, BotoCoreError, OSError) as exc:
            raise NotConfigured(
                f"the service's own AWS identity is unknown ({type(exc).__name__}: "
                f"{str(exc)[:200]}); set AWS_ROLE_PRINCIPAL_ARN"
            ) from None
        found = re.fullmatch(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.*", arn)
        if found:
            partition, account, role = found.groups()
            return f"arn:{partition}:iam::{account}:role/{role}"
        return arn

    async def close(self) -> None:
        if self._sts is not None:
            with contextlib.suppress(Exception):
                await self._sts.close()
            self._sts = None


def refused(exc: ClientError, role_arn: str) -> Exception:
    """An AssumeRole error answer: denied or invalid is permanent (RoleRefused); anything
    else (throttled, STS's 5xx) goes to `aws.errors.classify` as it came."""
    err = exc.response.get("Error", {})
    code, message = str(err.get("Code", "")), str(err.get("Message", ""))
    if code in DENIED:
        return RoleRefused("role_denied", role_arn, code, message)
    if code in INVALID:
        return RoleRefused("role_invalid", role_arn, code, message)
    return exc
