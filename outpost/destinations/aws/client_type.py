"""What the aiobotocore-sent AWS types (aws_sqs, aws_s3, aws_eventbridge) share: a cache
of clients per region, endpoint and credentials, and role credentials (auth.RoleAuth)."""

from __future__ import annotations

from outpost.destinations.aws.auth import RoleAuth
from outpost.destinations.aws.clients import ClientCache
from outpost.destinations.aws.roles import Roles
from outpost.destinations.base import DestinationType


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

    async def close(self) -> None:
        await self.clients.close()
