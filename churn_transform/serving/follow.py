"""A running service follows the champion: a thread polls the registry's alias and, when it
names another version, loads that version and hands it to the service, which swaps it in
between two batches (one reference assignment: a batch scores with the champion it started
with, and every answer and traffic-log line names the version that produced it).

A version that cannot be loaded (an artifact this project did not train, or the registry
unreachable) is not served: the current champion keeps serving, the outcome is counted and
logged once per version, and a later promotion is picked up as usual. Polling every
``interval`` seconds costs one registry call; ``interval`` 0 is the image-bound mode: the
service serves what it started with, for immutable deployments.

The same follower keeps the ``challenger`` (``serving.shadow``) beside the champion: its alias
may be absent, which ``aliased`` says by returning None, and then ``retire`` drops the model
served (outcome ``retired``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from churn_transform.modelling.artifact import UntrustedModelError
from churn_transform.serving.registry import Registered

log = logging.getLogger(__name__)
M = TypeVar("M")


class FollowChampion(Generic[M]):
    """Polls ``aliased()`` every ``interval`` s; a version other than ``served()`` is built by
    ``load(version)`` and installed by ``swap``; ``count(outcome)`` hears every switch or
    failure (``switched``, ``refused``, ``unreachable``). With ``retire``, ``aliased()`` and
    ``served()`` may be None (no version named, none served): a version served whose alias is
    gone is retired (``retired``)."""

    def __init__(
        self,
        served: Callable[[], Registered | None],
        aliased: Callable[[], Registered | None],
        load: Callable[[Registered], M],
        swap: Callable[[M], None],
        interval: float,
        count: Callable[[str], None] = lambda outcome: None,
        retire: Callable[[], None] | None = None,
        name: str = "champion",
    ) -> None:
        self._served, self._aliased, self._load, self._swap = served, aliased, load, swap
        self._retire = retire
        self.name = name
        self.interval = interval
        self._count = count
        self._refused: set[Registered] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> str:
        """One poll: ``kept``, ``switched``, ``refused``, ``unreachable`` or ``retired``."""
        try:
            wanted = self._aliased()
        except Exception as error:  # the registry is down or the alias gone: keep serving
            log.warning("cannot read the %s alias (%s); serving on", self.name, error)
            self._count("unreachable")
            return "unreachable"
        if wanted is None:
            return self._retired()
        if wanted == self._served() or wanted in self._refused:
            return "kept"
        try:
            champion = self._load(wanted)
        except UntrustedModelError as error:  # never: the next poll would refuse it again
            self._refused.add(wanted)
            log.error("not serving version %s: %s", wanted.version, error)
            self._count("refused")
            return "refused"
        except Exception as error:  # the download failed: tried again at the next poll
            log.warning("cannot fetch version %s (%s); serving on", wanted.version, error)
            self._count("unreachable")
            return "unreachable"
        self._swap(champion)
        log.info("%s: now version %s (run %s)", self.name, wanted.version, wanted.run_id)
        self._count("switched")
        return "switched"

    def _retired(self) -> str:
        """No version is named: the one served, if any, is dropped."""
        if self._retire is None:
            raise TypeError(f"the {self.name} alias named no version, and none may be retired")
        if self._served() is None:
            return "kept"
        self._retire()
        log.info("%s: the alias is gone, no version served", self.name)
        self._count("retired")
        return "retired"

    def start(self) -> None:
        """Poll in a thread of its own: the first time at once, so a champion promoted while the
        service was down is served without waiting an interval, then every interval. The start
        does not wait for that first poll (a registry slow to answer would hold it)."""
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"follow-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.check()
        while not self._stop.wait(self.interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
