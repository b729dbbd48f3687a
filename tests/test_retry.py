"""The retry decision: pure, with the random source injected."""

import pytest

from outpost.retry import MAX_DELAY_SECONDS, RetryPolicy
from tests.topologies import topology  # noqa: F401  (single node and cluster)


def test_exponential_doubling_without_jitter():
    p = RetryPolicy(max_retries=4, interval=30, jitter=0)
    assert [p.delay(n) for n in range(1, 6)] == [30, 60, 120, 240, None]


def test_jitter_stays_within_twenty_percent():
    p = RetryPolicy(max_retries=3, interval=10)
    assert p.delay(1, rand=lambda: 0.0) == pytest.approx(8.0)
    assert p.delay(1, rand=lambda: 1.0) == pytest.approx(12.0)
    assert p.delay(2, rand=lambda: 0.5) == pytest.approx(20.0)


def test_explicit_schedule_overrides_interval_and_sets_the_limit():
    p = RetryPolicy(max_retries=10, interval=30, schedule=(1, 5, 60), jitter=0)
    assert p.limit == 3
    assert [p.delay(n) for n in range(1, 5)] == [1, 5, 60, None]


def test_zero_retries_means_one_attempt():
    assert RetryPolicy(max_retries=0).delay(1) is None


def test_delays_are_capped():
    assert RetryPolicy(max_retries=40, interval=30, jitter=0).delay(40) == MAX_DELAY_SECONDS
