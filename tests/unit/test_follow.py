"""The service's champion follower (``serving.follow``), with a registry of its own."""

from __future__ import annotations

import threading
import time

import pytest

from churn_transform.modelling.artifact import UntrustedModelError
from churn_transform.serving.follow import FollowChampion
from churn_transform.serving.registry import Registered


class Registry:
    """An alias that tests move, models that load or fail as the test says."""

    def __init__(self) -> None:
        self.alias: Registered | Exception | None = Registered("1", "a")
        self.failures: dict[str, Exception] = {}
        self.loads: list[str] = []

    def aliased(self) -> Registered | None:
        if isinstance(self.alias, Exception):
            raise self.alias
        return self.alias

    def load(self, wanted: Registered) -> Registered:
        self.loads.append(wanted.version)
        if wanted.version in self.failures:
            raise self.failures[wanted.version]
        return wanted


@pytest.fixture
def registry() -> Registry:
    return Registry()


def _follower(registry: Registry, served: list[Registered], interval: float = 0) -> FollowChampion:
    outcomes: list[str] = []
    follower = FollowChampion(
        served=lambda: served[-1],
        aliased=registry.aliased,
        load=registry.load,
        swap=served.append,
        interval=interval,
        count=outcomes.append,
    )
    follower.outcomes = outcomes  # type: ignore[attr-defined]
    return follower


def _serves(served: list[Registered], version: str, seconds: float = 10) -> bool:
    """Whether the follower's thread swaps ``version`` in within ``seconds``."""
    deadline = time.monotonic() + seconds
    while served[-1].version != version and time.monotonic() < deadline:
        time.sleep(0.02)
    return served[-1].version == version


def test_a_new_version_is_loaded_and_swapped_in_once(registry: Registry) -> None:
    served = [Registered("1", "a")]
    follower = _follower(registry, served)
    assert follower.check() == "kept"
    registry.alias = Registered("2", "b")
    assert follower.check() == "switched"
    assert served[-1] == Registered("2", "b")
    assert follower.check() == "kept" and registry.loads == ["2"]
    # the same number in another registry (its run differs) is another model
    registry.alias = Registered("2", "c")
    assert follower.check() == "switched" and served[-1] == Registered("2", "c")


def test_an_untrusted_version_is_refused_once_and_the_champion_serves_on(
    registry: Registry,
) -> None:
    served = [Registered("1", "a")]
    follower = _follower(registry, served)
    registry.alias = Registered("2", "b")
    registry.failures["2"] = UntrustedModelError("saved as 'cloudpickle', which runs code")
    assert follower.check() == "refused"
    assert follower.check() == "kept" and registry.loads == ["2"]  # not fetched again
    assert served == [Registered("1", "a")]
    registry.alias = Registered("3", "c")  # a later promotion is picked up
    assert follower.check() == "switched" and served[-1].version == "3"
    assert follower.outcomes == ["refused", "switched"]  # type: ignore[attr-defined]


def test_an_unreachable_registry_or_a_failed_download_is_tried_again(registry: Registry) -> None:
    served = [Registered("1", "a")]
    follower = _follower(registry, served)
    registry.alias = ConnectionError("registry down")
    assert follower.check() == "unreachable"
    registry.alias = Registered("2", "b")
    registry.failures["2"] = OSError("download interrupted")
    assert follower.check() == "unreachable"
    del registry.failures["2"]
    assert follower.check() == "switched" and served[-1].version == "2"


def test_the_thread_follows_every_interval_and_zero_never_starts(registry: Registry) -> None:
    served = [Registered("1", "a")]
    still = _follower(registry, served, interval=0)
    still.start()
    assert still._thread is None
    follower = _follower(registry, served, interval=0.05)
    follower.start()
    try:
        registry.alias = Registered("2", "b")
        assert _serves(served, "2")
    finally:
        follower.stop()
    assert follower._thread is not None and not follower._thread.is_alive()


def test_the_first_poll_is_at_once_and_a_slow_registry_does_not_hold_the_start(
    registry: Registry,
) -> None:
    served = [Registered("1", "a")]
    registry.alias = Registered("2", "b")
    follower = _follower(registry, served, interval=3600)
    follower.start()
    try:  # the alias moved before the start: switched at once, not an interval later
        assert _serves(served, "2")
    finally:
        follower.stop()

    slow = Registry()
    release = threading.Event()

    def hanging() -> Registered:
        release.wait(30)
        return Registered("1", "a")

    slow.aliased = hanging  # type: ignore[method-assign]
    waiting = _follower(slow, [Registered("1", "a")], interval=3600)
    began = time.monotonic()
    waiting.start()
    assert time.monotonic() - began < 1
    release.set()
    waiting.stop()


def test_a_challenger_is_loaded_moved_and_retired_with_its_alias(registry: Registry) -> None:
    served: list[Registered | None] = [None]
    outcomes: list[str] = []
    follower = FollowChampion(
        served=lambda: served[-1],
        aliased=registry.aliased,
        load=registry.load,
        swap=served.append,
        interval=0,
        count=outcomes.append,
        retire=lambda: served.append(None),
        name="challenger",
    )
    registry.alias = None
    assert follower.check() == "kept" and served == [None]  # no alias, nothing served
    registry.alias = Registered("3", "c")
    assert follower.check() == "switched" and served[-1] == Registered("3", "c")
    registry.alias = Registered("4", "d")
    assert follower.check() == "switched" and served[-1] == Registered("4", "d")
    registry.alias = None
    assert follower.check() == "retired" and served[-1] is None
    assert follower.check() == "kept" and outcomes == ["switched", "switched", "retired"]
