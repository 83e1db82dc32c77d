"""The challenger's shadow: every answered record scored again by the ``challenger``, off the
answer path, so the traffic log holds both models' probabilities for the same subscribers.

The service answers from the champion alone, then hands the answers' traffic-log entries to
``Shadow.append``. Without a challenger they go straight on to the traffic log, as they always
did. With one, ``append`` only queues them (a deque: no lock, no wake-up per request); a thread
wakes every ``interval`` seconds (or when a batch is queued), scores the features of every entry
waiting with one call of the challenger's model, adds ``challenger_version`` and
``challenger_probability`` to each entry, and passes them on to the traffic log.

Nothing the challenger does reaches an answer, nor loses a traffic-log line: a challenger that
raises leaves its entries logged without its probability (counted ``failed``); a slow one lets
the queue fill, and what does not fit under ``max_queue`` is logged at once without it (counted
``skipped``), as is what is still queued when ``close`` gives up waiting for it. Which of the two
models answered is never in doubt: ``model_version`` is the champion's, as before.
``monitoring.challenger`` reads the pairs back against the subscribers' labels.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from churn_transform.schema import FEATURES
from churn_transform.serving.runtime import Champion

logger = logging.getLogger(__name__)

Entry = dict[str, Any]
#: Entries scored at once, and the queue length at which ``append`` wakes the scorer early.
_BATCH = 2048


class Shadow:
    """Entries on their way to the traffic log (``log``), scored by ``challenger`` when there
    is one. ``count(outcome, n)`` hears every entry's fate: ``scored``, ``failed``,
    ``skipped``."""

    def __init__(
        self,
        log: Callable[[Iterable[Entry]], None],
        *,
        max_queue: int = 20_000,
        interval: float = 0.2,
        count: Callable[[str, int], None] = lambda outcome, n: None,
    ) -> None:
        self.challenger: Champion | None = None
        self.max_queue = max_queue
        self.interval = interval
        self._log = log
        self._count = count
        self._queue: collections.deque[Entry] = collections.deque()
        self._wake = threading.Event()
        self._closing = False
        self._failing: str | None = None  # the version whose failure was last logged
        self._thread = threading.Thread(target=self._drain, name="challenger", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Entries waiting for the challenger."""
        return len(self._queue)

    def append(self, entries: Iterable[Entry]) -> None:
        """Pass ``entries`` on, or queue them for the challenger, without waiting for it."""
        if self.challenger is None or self._closing:
            self._log(entries)
            return
        waiting = list(entries)
        room = max(self.max_queue - len(self._queue), 0)
        self._queue.extend(waiting[:room])
        if unscored := waiting[room:]:
            self._count("skipped", len(unscored))
            self._log(unscored)
        if len(self._queue) >= _BATCH:
            self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        """Score and pass on what is queued, for at most ``timeout`` seconds; what a stuck
        challenger still holds back then is passed on without its probability."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("challenger: not done within %.0f s; logged without it", timeout)
            left = [self._queue.popleft() for _ in range(len(self._queue))]
            if left:
                self._count("skipped", len(left))
                self._log(left)

    def _drain(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            closing = self._closing
            while self._queue:
                pending = self._queue
                self._score([pending.popleft() for _ in range(min(_BATCH, len(pending)))])
            if closing:
                return

    def _score(self, entries: list[Entry]) -> None:
        challenger = self.challenger  # one model for the whole batch, however it moves
        if challenger is not None:
            try:
                scored = challenger.model.predict_proba(_columns(entries))[:, 1].tolist()
            # whatever the challenger does wrong is its own failure, never the log's
            except Exception as error:
                self._failed(challenger.version, len(entries), error)
            else:
                for entry, probability in zip(entries, scored, strict=True):
                    entry["challenger_version"] = challenger.version
                    entry["challenger_probability"] = probability
                self._count("scored", len(entries))
        self._log(entries)

    def _failed(self, version: str, n: int, error: Exception) -> None:
        if self._failing != version:  # once per version: a failing one would flood the log
            logger.warning("challenger version %s failed to score (%r)", version, error)
            self._failing = version
        self._count("failed", n)


def _columns(entries: list[Entry]) -> dict[str, list[Any]]:
    """The model's input, from the features the entries log (as ``runtime`` builds it)."""
    return {name: [entry["features"][name] for entry in entries] for name in FEATURES}
