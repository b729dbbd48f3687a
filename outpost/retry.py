"""The retry decision. Pure: tests give it the attempt number and a random source."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

MAX_DELAY_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Outpost's knobs: `MAX_RETRY_LIMIT` retries after the first attempt, each
    `RETRY_INTERVAL_SECONDS * 2**(n-1)`; or an explicit `RETRY_SCHEDULE`, whose length is
    then the number of retries. Every delay is spread by ±`jitter` so that a burst of
    failures does not come back as a burst."""

    max_retries: int = 10
    interval: float = 30.0
    schedule: Sequence[float] = ()
    jitter: float = 0.2

    @property
    def limit(self) -> int:
        return len(self.schedule) if self.schedule else self.max_retries

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (1-based), or None when
        the retries are used up."""
        if attempt < 1 or attempt > self.limit:
            return None
        if self.schedule:
            base = float(self.schedule[attempt - 1])
        else:
            base = min(self.interval * 2 ** (attempt - 1), MAX_DELAY_SECONDS)
        spread = 1.0 + self.jitter * (2.0 * rand() - 1.0)
        return base * spread

    def overridden(self, overrides: dict[str, Any] | None) -> RetryPolicy:
        """A destination's policy: its `retry_schedule` (whose length is then its limit) or
        its `retry_limit` on the deployment's interval; unset fields keep this one's."""
        if not overrides:
            return self
        if overrides.get("retry_schedule"):
            return replace(self, schedule=tuple(overrides["retry_schedule"]))
        if "retry_limit" in overrides:
            return replace(self, max_retries=int(overrides["retry_limit"]), schedule=())
        return self
