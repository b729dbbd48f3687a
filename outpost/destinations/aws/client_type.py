"""What the aiobotocore-sent AWS types (aws_sqs, aws_s3, aws_eventbridge) share: a cache
of clients per region, endpoint and credentials, role credentials (auth.RoleAuth), the
preflight (AssumeRole when a destination has a role), the error table, and closing the
type's batcher (the types whose service has a batch call set `batches`)."""

from __future__ import annotations

from typing import Any

from outpost.destinations.aws import errors
from outpost.destinations.aws.auth import RoleAuth
from outpost.destinations.aws.clients import ClientCache
from outpost.destinations.aws.roles import Roles
from outpost.destinations.base import DestinationType, Failure
from outpost.destinations.batcher import Batcher
from outpost.models import Destination


class AwsClientType(RoleAuth, DestinationType):
    def __init__(
        self,
        timeout: float = 5.0,
        max_connections: int = 64,
        connect_timeout: float | None = None,
        roles: Roles | None = None,
    ):
        self.clients = ClientCache(timeout, max_connections, connect_timeout)
        self.roles = roles or Roles()
        self.batches: Batcher[Any] | None = None

    async def preflight(self, destination: Destination) -> list[dict[str, Any]]:
        """AssumeRole when the destination has a role; no other checks for these types."""
        role = await self.role_check(destination)
        return [role] if role is not None else await super().preflight(destination)

    def classify(self, exc: BaseException) -> Failure:
        return errors.classify(exc)

    async def close(self) -> None:
        if self.batches is not None:
            await self.batches.close()
        await self.clients.close()
