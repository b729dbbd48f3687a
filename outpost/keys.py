"""Every Redis key the service uses, in one place.

Keys of one tenant share the hash tag `{t:<tenant>}` and each delivery partition has its
own `{p:<n>}`, so that on Redis Cluster a tenant's keys and a partition's keys each sit in
one slot. `DEPLOYMENT_ID` prefixes everything, so deployments can share a Redis.
"""

from __future__ import annotations

GROUP = "outpost-workers"


class Keys:
    def __init__(self, deployment_id: str = ""):
        self.prefix = f"{deployment_id}:" if deployment_id else ""

    def tenants(self) -> str:
        """Sorted set (all scores 0) of `<created_ms>:<tenant id>`, ordered by lex."""
        return f"{self.prefix}tenants"

    def tenant(self, tenant_id: str) -> str:
        return f"{self.prefix}{{t:{tenant_id}}}:tenant"

    def destinations(self, tenant_id: str) -> str:
        return f"{self.prefix}{{t:{tenant_id}}}:destinations"

    def event(self, tenant_id: str, event_id: str) -> str:
        return f"{self.prefix}{{t:{tenant_id}}}:event:{event_id}"

    def event_owners(self, event_id: str) -> str:
        """Set of tenant ids that published an event with this id (admin lookups)."""
        return f"{self.prefix}{{e:{event_id}}}:owners"

    def attempts(self, tenant_id: str, destination_id: str) -> str:
        return f"{self.prefix}{{t:{tenant_id}}}:attempts:{destination_id}"

    def dead_letters(self, tenant_id: str) -> str:
        return f"{self.prefix}{{t:{tenant_id}}}:dead"

    def partition(self, n: int) -> str:
        return f"{self.prefix}{{p:{n}}}:tasks"

    def retries(self) -> str:
        return f"{self.prefix}retries"
