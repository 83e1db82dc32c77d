"""The traffic log: every prediction as one JSON line, written off the request path.

``TrafficLog.append`` only puts entries on a bounded in-memory queue; a writer thread drains it
in batches to ``<folder>/<YYYY-MM-DD>/traffic-<pid>-<n>.jsonl``. A file is closed and the next
one started when the day changes or the file passes ``max_bytes``, and every process writes its
own files, so workers never share one. Nothing here can fail a request: a full queue drops the
entry and a failed write (disk full, folder unwritable) loses the batch, and both are counted
and reported through ``on_lost`` so the service can export them (``on_written`` reports
progress and the queue depth). ``close`` drains the queue
before it returns (graceful shutdown loses nothing).

Lines are strict JSON (RFC 8259), which every reader accepts: an entry holding a non-finite
number (Python's ``json`` would write a bare ``NaN``) is not written but counted as lost
(``not_json``); the service's request model refuses such numbers, so none should arrive.

We wrote this instead of using BentoML's monitoring log, which writes through a ``logging``
handler on the request thread and counts neither queue depth nor lost records.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

logger = logging.getLogger(__name__)

Entry = dict[str, Any]
_STOP = object()


class TrafficLog:
    def __init__(
        self,
        folder: str | Path,
        *,
        max_queue: int = 100_000,
        max_bytes: int = 64 * 2**20,
        on_lost: Callable[[str, int], None] = lambda reason, count: None,
        on_written: Callable[[int, int], None] = lambda count, depth: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.on_lost = on_lost
        self.on_written = on_written
        self.clock = clock
        self.written = 0
        self._queue: queue.Queue[Entry | object] = queue.Queue(maxsize=max_queue)
        self._file: IO[str] | None = None
        self._day = ""
        self._sequence = 0
        self._thread = threading.Thread(target=self._drain, name="traffic-log", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Entries waiting to be written."""
        return self._queue.qsize()

    def append(self, entries: Iterable[Entry]) -> None:
        """Queue ``entries`` without waiting; those that do not fit are dropped and counted."""
        dropped = 0
        for entry in entries:
            try:
                self._queue.put_nowait(entry)
            except queue.Full:
                dropped += 1
        if dropped:
            self.on_lost("queue_full", dropped)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- the writer thread ---------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 4096:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(entry is _STOP for entry in batch)
            entries = [entry for entry in batch if entry is not _STOP]
            if entries:
                self._write(entries)  # type: ignore[arg-type]
            if stop:
                return

    def _write(self, entries: list[Entry]) -> None:
        lines = _json_lines(entries)
        if refused := len(entries) - len(lines):
            logger.warning(
                "traffic log: %d entries lost: not strict JSON (NaN or infinity)", refused
            )
            self.on_lost("not_json", refused)
        if not lines:
            return
        try:
            handle = self._current_file()
            handle.write("".join(lines))
            handle.flush()
            self.written += len(lines)
            self.on_written(len(lines), self.depth)
        except OSError as err:
            logger.warning("traffic log: %d entries lost: %s", len(lines), err)
            self._file = None
            self.on_lost("write_failed", len(lines))

    def _current_file(self) -> IO[str]:
        day = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")
        handle = self._file
        if handle is not None and day == self._day and handle.tell() < self.max_bytes:
            return handle
        if handle is not None:
            handle.close()
        self._day = day
        folder = self.folder / day
        folder.mkdir(parents=True, exist_ok=True)
        while (path := folder / f"traffic-{os.getpid()}-{self._sequence:04d}.jsonl").exists():
            self._sequence += 1
        self._file = path.open("a", encoding="utf-8")
        return self._file


def _json_lines(entries: list[Entry]) -> list[str]:
    """The entries that strict JSON can hold, one line each (the others are left out)."""
    lines = []
    for entry in entries:
        try:
            lines.append(json.dumps(entry, default=str, allow_nan=False) + "\n")
        except ValueError:  # a NaN or an infinity
            continue
    return lines


def traffic_files(folder: str | Path, start: str, end: str) -> Iterator[Path]:
    """The log files of the days ``start``..``end`` (inclusive, ``YYYY-MM-DD``), in order."""
    for day in sorted(p for p in Path(folder).glob("????-??-??") if start <= p.name <= end):
        yield from sorted(day.glob("traffic-*.jsonl"))


def read_traffic(
    folder: str | Path, start: str, end: str, *, max_rows: int | None = None, seed: int = 0
) -> tuple[pd.DataFrame, int]:
    """Logged predictions of the days ``start``..``end``: one row per prediction, its features
    flattened beside ``ts``, ``request_id``, ``model_version``, ``churn_probability`` and
    ``churn``. Returns the frame and the number of entries in the window; when that passes
    ``max_rows``, a uniform sample of ``max_rows`` is kept (reservoir sampling: memory stays
    bounded by ``max_rows``, whatever the window holds)."""
    chooser = random.Random(seed)
    kept: list[Entry] = []
    seen = 0
    for path in traffic_files(folder, start, end):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if not line.endswith("\n"):  # a line still being written
                    continue
                seen += 1
                if max_rows is None or len(kept) < max_rows:
                    kept.append(json.loads(line))
                elif (slot := chooser.randrange(seen)) < max_rows:
                    kept[slot] = json.loads(line)
    if not kept:
        return pd.DataFrame(), seen
    features = pd.DataFrame([entry.pop("features") for entry in kept])
    return pd.concat([pd.DataFrame(kept), features], axis=1), seen
