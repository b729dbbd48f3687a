"""A circuit breaker per destination, in the worker's process: a destination whose sends
keep failing for want of an answer (timeouts, refused or dropped connections) stops being
sent to for a while, so its tasks stop holding worker slots and connections that other
destinations need.

- closed: sends go out; `threshold` such failures in a row open it (any answer from the
  endpoint, even a 4xx or a validation error, resets the count: it is alive).
- open: nothing is sent for `cooldown` seconds; each task that comes is held (the
  deliverer puts it back on the retry schedule, neither an attempt nor a retry spent).
- half-open (the cooldown is over): one send goes out as a probe, the others are held.
  An answer closes the breaker; another such failure opens it again for twice the last
  cooldown, at most `max_cooldown`.

Breakers are keyed by (tenant id, destination id): destination ids are chosen by tenants
and may repeat across tenants, so one tenant's sick endpoint never pauses another's.
`is_open` is the predicate a scheduler asks before giving a destination's tasks a slot.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from outpost.settings import Settings

log = structlog.get_logger("outpost.delivery")
Key = tuple[str, str]  # (tenant id, destination id)
SPREAD = 0.25  # held tasks come back over the first quarter of the next cooldown


@dataclass(frozen=True)
class BreakerConfig:
    """The DELIVERY_CIRCUIT_BREAKER_* settings; threshold 0 turns breakers off."""

    threshold: int = 5
    cooldown: float = 5.0
    max_cooldown: float = 300.0
    probe_limit: float = 30.0  # a probe out longer than this is lost: let another go


@dataclass
class _State:
    failures: int = 0  # unanswered sends in a row
    cooldown: float = 0.0  # of the last opening
    until: float = 0.0  # open until then (monotonic); 0 = closed
    probe_since: float | None = None  # a probe is out since then


class Breakers:
    """Every destination's breaker in this process. Only destinations with a failure in
    their current run are kept: a healthy one costs nothing."""

    def __init__(
        self,
        config: BreakerConfig,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ):
        self.config = config
        self._clock = clock
        self._rand = rand
        self._states: dict[Key, _State] = {}

    @classmethod
    def of(cls, settings: Settings, probe_limit: float) -> Breakers:
        """From the DELIVERY_CIRCUIT_BREAKER_* settings; `probe_limit`: the longest a
        send can take (its deadline), after which a probe is taken for lost."""
        return cls(
            BreakerConfig(
                threshold=settings.delivery_circuit_breaker_failures,
                cooldown=settings.delivery_circuit_breaker_cooldown_seconds,
                max_cooldown=settings.delivery_circuit_breaker_max_cooldown_seconds,
                probe_limit=probe_limit,
            )
        )

    def is_open(self, tenant_id: str, destination_id: str) -> bool:
        """Whether a send to this destination would be held now (open, or half-open with
        its probe out)."""
        state = self._states.get((tenant_id, destination_id))
        if state is None or not state.until:
            return False
        now = self._clock()
        return now < state.until or not self._probe_lost(state, now)

    def admit(self, key: Key) -> float | None:
        """None: send (when half-open, this send is the probe). Else hold the task: the
        seconds after which to try it again."""
        state = self._states.get(key)
        if state is None or not state.until:
            return None
        now = self._clock()
        if now >= state.until and self._probe_lost(state, now):
            state.probe_since = now
            log.info("circuit_half_open", tenant_id=key[0], destination_id=key[1])
            return None
        wait = max(state.until - now, 0.0) if now < state.until else self.config.probe_limit
        return wait + state.cooldown * SPREAD * self._rand()

    def probing(self, key: Key) -> bool:
        """Whether a probe is out (right after `admit` let a send go: it is that send)."""
        state = self._states.get(key)
        return state is not None and state.probe_since is not None

    def settle(self, key: Key, answered: bool | None) -> None:
        """What a send came to: `answered` (the endpoint answered, whatever it said),
        unanswered (False: a timeout or a connection failure), or None when nothing was
        sent after all: the caller was the probe, and its turn is given back)."""
        state = self._states.get(key)
        if answered is None:
            if state is not None:
                state.probe_since = None
            return
        if answered:
            if state is not None:
                del self._states[key]
                if state.until:
                    log.info("circuit_closed", tenant_id=key[0], destination_id=key[1])
            return
        if self.config.threshold <= 0:
            return
        state = self._states.setdefault(key, _State())
        state.failures += 1
        probing = state.probe_since is not None
        if probing or (not state.until and state.failures >= self.config.threshold):
            self._open(key, state)

    def _open(self, key: Key, state: _State) -> None:
        grown = state.cooldown * 2 if state.cooldown else self.config.cooldown
        state.cooldown = min(grown, self.config.max_cooldown)
        state.until = self._clock() + state.cooldown
        state.probe_since = None
        log.warning(
            "circuit_opened",
            tenant_id=key[0],
            destination_id=key[1],
            failures=state.failures,
            cooldown_s=round(state.cooldown, 1),
        )

    def _probe_lost(self, state: _State, now: float) -> bool:
        """No probe out, or the one out has been gone too long to be coming back."""
        since = state.probe_since
        return since is None or now - since > self.config.probe_limit
