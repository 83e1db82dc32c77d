"""The traffic log: every prediction as one JSON line, written off the request path.

``TrafficLog.append`` only puts entries on a bounded in-memory queue; a writer thread wakes every
``interval`` seconds (or when the queue holds a batch) and drains it in batches to
``<folder>/<YYYY-MM-DD>/traffic-<replica>-<pid>-<n>.jsonl``. A file is closed and
the next one started when the day changes or the file passes ``max_bytes``, and every process of
every replica writes its own files, so neither workers nor pods sharing a volume share one.

With ``ship_to`` (an ``s3://bucket/prefix`` or a folder), the writer thread copies each file it
closes to ``<ship_to>/<YYYY-MM-DD>/<same name>``, so readers find every replica's traffic in one
place. A file appears there whole (one S3 object, or a local copy renamed into place) and only
once closed, so a reader never sees half of one. The local copy is kept. A failed copy is counted
through ``on_shipped("failed", 1)`` and tried again at the next rotation and at ``close``.

Nothing here can fail a request: a full queue drops the entry and a failed write (disk full,
folder unwritable) loses the batch, and both are counted and reported through ``on_lost`` so the
service can export them (``on_written`` reports progress and the queue depth). ``close`` drains
the queue before it returns (graceful shutdown loses nothing).

Lines are strict JSON (RFC 8259), which every reader accepts: an entry holding a non-finite
number (Python's ``json`` would write a bare ``NaN``) is not written but counted as lost
(``not_json``); the service's request model refuses such numbers, so none should arrive.

We wrote this instead of using BentoML's monitoring log, which writes through a ``logging``
handler on the request thread and counts neither queue depth nor lost records.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import json
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import fsspec
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from churn_transform.settings import replica_token

logger = logging.getLogger(__name__)

Entry = dict[str, Any]
#: Entries written at once, and the queue length at which ``append`` wakes the writer early.
_BATCH = 4096
#: One encoder for every line: ``json.dumps`` with options builds a new one at each call.
_ENCODER = json.JSONEncoder(default=str, allow_nan=False)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The opening of a line as the service writes it (``runtime.traffic_entries``, encoded by
#: ``_ENCODER``): its time and model version, read without parsing the whole line (13 times
#: faster than ``json.loads`` on a line of 1.2 kB); any other line is parsed whole.
_SERVED = re.compile(
    r'\{"ts": ([-+.0-9eE]+), "request_id": (?:"[^"\\]*"|null), "model_version": "([^"\\]*)"'
)


class TrafficLog:
    def __init__(
        self,
        folder: str | Path,
        *,
        max_queue: int = 100_000,
        max_bytes: int = 64 * 2**20,
        on_lost: Callable[[str, int], None] = lambda reason, count: None,
        on_written: Callable[[int, int], None] = lambda count, depth: None,
        replica: str | None = None,
        ship_to: str | None = None,
        storage_options: dict[str, Any] | None = None,
        on_shipped: Callable[[str, int], None] = lambda outcome, files: None,
        clock: Callable[[], float] = time.time,
        interval: float = 0.2,
    ) -> None:
        """``interval`` is how long an entry may wait for the writer (which is not woken at
        every entry: on a busy machine each wake-up of a thread costs the request path);
        ``replica`` names this replica in every file name (default: the host name);
        ``ship_to`` and its fsspec ``storage_options`` say where closed files are copied
        (none: they stay local); ``on_shipped`` counts files shipped and failed attempts."""
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.on_lost = on_lost
        self.on_written = on_written
        self.replica = replica_token(replica or socket.gethostname())
        self.ship_to = ship_to.rstrip("/") if ship_to else None
        self.storage_options = storage_options or {}
        self.on_shipped = on_shipped
        self.unshipped: list[Path] = []
        self.clock = clock
        self.written = 0
        self.max_queue = max_queue
        self.interval = interval
        # a deque's append and popleft are atomic: no lock, no wake-up per entry
        self._queue: collections.deque[Entry] = collections.deque()
        self._wake = threading.Event()
        self._closing = False
        self._file: IO[str] | None = None
        self._day = ""
        self._sequence = 0
        self._thread = threading.Thread(target=self._drain, name="traffic-log", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Entries waiting to be written."""
        return len(self._queue)

    def append(self, entries: Iterable[Entry]) -> None:
        """Queue ``entries`` without waiting; those that do not fit are dropped and counted."""
        dropped = 0
        for entry in entries:
            if len(self._queue) < self.max_queue:
                self._queue.append(entry)
            else:
                dropped += 1
        if dropped:
            self.on_lost("queue_full", dropped)
        if len(self._queue) >= _BATCH:
            self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, close (and ship) the last file, then stop the
        writer."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("traffic log: the writer did not finish within %.0f s", timeout)

    # -- the writer thread ---------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            closing = self._closing  # read first: what was queued before close is written
            while self._queue:
                pending = self._queue
                self._write([pending.popleft() for _ in range(min(_BATCH, len(pending)))])
            if closing:
                self._retire()
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
            self._retire()
            self.on_lost("write_failed", len(lines))

    def _current_file(self) -> IO[str]:
        day = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")
        handle = self._file
        if handle is not None and day == self._day and handle.tell() < self.max_bytes:
            return handle
        self._retire()
        self._day = day
        folder = self.folder / day
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"traffic-{self.replica}-{os.getpid()}"
        while (path := folder / f"{stem}-{self._sequence:04d}.jsonl").exists():
            self._sequence += 1
        self._file = path.open("a", encoding="utf-8")
        return self._file

    def _retire(self) -> None:
        """Close the current file, if any, and ship it with those a failure left behind."""
        handle, self._file = self._file, None
        if handle is not None:
            try:
                handle.close()
            except OSError as err:  # its last lines were counted lost when their write failed
                logger.warning("traffic log: closing %s: %s", handle.name, err)
            if self.ship_to:
                self.unshipped.append(Path(handle.name))
        if self.ship_to:
            self._ship(self.ship_to)

    def _ship(self, destination: str) -> None:
        while self.unshipped:
            path = self.unshipped[0]
            try:
                _copy_whole(
                    path, f"{destination}/{path.parent.name}/{path.name}", self.storage_options
                )
            # any failure of the destination (network, credentials, a full disk) is retried at
            # the next rotation: the writer thread must outlive it
            except Exception as err:
                logger.warning(
                    "traffic log: shipping %s to %s failed (%d files wait): %s",
                    path.name,
                    destination,
                    len(self.unshipped),
                    err,
                )
                self.on_shipped("failed", 1)
                return
            self.unshipped.pop(0)
            self.on_shipped("shipped", 1)


def _copy_whole(path: Path, url: str, storage_options: dict[str, Any]) -> None:
    """Copy ``path`` to ``url`` so that a reader sees all of it or nothing."""
    fs, target = fsspec.core.url_to_fs(url, **storage_options)
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(os.path.dirname(target), exist_ok=True)
        partial = f"{target}.partial"  # not a traffic-*.jsonl name: readers pass it by
        fs.put_file(str(path), partial)
        fs.mv(partial, target)
    else:  # an S3 object appears whole, whether put at once or in parts
        fs.put_file(str(path), target)


def _json_lines(entries: list[Entry]) -> list[str]:
    """The entries that strict JSON can hold, one line each (the others are left out)."""
    lines = []
    for entry in entries:
        try:
            lines.append(_ENCODER.encode(entry) + "\n")
        except ValueError:  # a NaN or an infinity
            continue
    return lines


def traffic_files(
    uri: str | Path, start: str, end: str, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """The log files of every replica for the days ``start``..``end`` (inclusive,
    ``YYYY-MM-DD``) under ``uri`` (a folder or an fsspec URL), day by day."""
    fs, root = fsspec.core.url_to_fs(str(uri), **(storage_options or {}))
    return _traffic_files(fs, root, start, end)


def _traffic_files(fs: Any, root: str, start: str, end: str) -> list[str]:
    fs.invalidate_cache()  # a long-lived reader (the dashboard) must see files shipped since
    try:
        days = fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    files: list[str] = []
    for day in sorted(days):
        name = day.rstrip("/").rsplit("/", 1)[-1]
        if _DAY.fullmatch(name) and start <= name <= end:
            found = fs.ls(day, detail=False)
            files += sorted(f for f in found if _is_traffic_file(f.rsplit("/", 1)[-1]))
    return files


def _lines(fs: Any, root: str, start: str, end: str) -> Iterator[str]:
    """Every whole line of the log files of the days ``start``..``end``, in order (a line still
    being written, without its newline, is left for the next read)."""
    for path in _traffic_files(fs, root, start, end):
        with fs.open(path, "rt", encoding="utf-8") as lines:
            yield from (line for line in lines if line.endswith("\n"))


def _is_traffic_file(name: str) -> bool:
    return name.startswith("traffic-") and name.endswith(".jsonl")


def read_traffic(
    uri: str | Path,
    start: str,
    end: str,
    *,
    max_rows: int | None = None,
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Logged predictions of the days ``start``..``end`` under ``uri`` (a folder, or an fsspec
    URL such as the ``s3://`` prefix the replicas ship to, read with ``storage_options``): one
    row per prediction, its features flattened beside ``ts``, ``request_id``,
    ``model_version``, ``churn_probability`` and ``churn``. Returns the frame and the number of
    entries in the window; when that passes ``max_rows``, a uniform sample of ``max_rows`` is
    kept (reservoir sampling: memory stays bounded by ``max_rows``, whatever the window
    holds)."""
    fs, root = fsspec.core.url_to_fs(str(uri), **(storage_options or {}))
    chooser = random.Random(seed)
    kept: list[Entry] = []
    seen = 0
    for line in _lines(fs, root, start, end):
        seen += 1
        if max_rows is None or len(kept) < max_rows:
            kept.append(json.loads(line))
        elif (slot := chooser.randrange(seen)) < max_rows:
            kept[slot] = json.loads(line)
    return _frame(kept), seen


def _frame(kept: list[Entry]) -> pd.DataFrame:
    """Entries as one frame, their features flattened beside the rest."""
    if not kept:
        return pd.DataFrame()
    features = pd.DataFrame([entry.pop("features") for entry in kept])
    return pd.concat([pd.DataFrame(kept), features], axis=1)


def read_served(
    uri: str | Path, start: str, end: str, *, storage_options: dict[str, Any] | None = None
) -> pd.DataFrame:
    """``ts`` and ``model_version`` of every prediction logged on the days ``start``..``end``
    under ``uri`` (as ``read_traffic`` finds them): no sample, whatever the window holds, as
    only these two fields of each line are kept (``monitoring.timeline`` reads them)."""
    fs, root = fsspec.core.url_to_fs(str(uri), **(storage_options or {}))
    times: list[float] = []
    versions: list[str] = []
    for line in _lines(fs, root, start, end):
        if opening := _SERVED.match(line):
            times.append(float(opening[1]))
            versions.append(opening[2])
        else:
            entry = json.loads(line)
            times.append(entry["ts"])
            versions.append(entry["model_version"])
    return pd.DataFrame({"ts": times, "model_version": pd.Categorical(versions)})


def read_subscribers(
    uri: str | Path,
    start: str,
    end: str,
    *,
    max_subscribers: int,
    storage_options: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, int]:
    """The newest logged prediction of each subscriber (``msno``) of the days ``start``..``end``
    under ``uri``, as ``read_traffic`` lays them out, and the number of entries in the window.
    When more than ``max_subscribers`` subscribers were served, a uniform sample of them is kept
    whatever their number of requests (the ones whose id hashes lowest, a bottom-k sketch:
    memory stays bounded by ``max_subscribers``); sampling predictions instead would favour the
    subscribers a client asked about most often."""
    fs, root = fsspec.core.url_to_fs(str(uri), **(storage_options or {}))
    newest: dict[str, Entry] = {}
    largest: list[tuple[int, str]] = []  # the kept ids' hashes, negated: a max-heap
    seen = 0
    for line in _lines(fs, root, start, end):
        seen += 1
        entry = json.loads(line)
        key = str(entry.get("msno") or entry.get("request_id"))
        if key in newest:
            if entry.get("ts", 0) >= newest[key].get("ts", 0):
                newest[key] = entry
            continue
        rank = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest())
        if len(newest) < max_subscribers:
            heapq.heappush(largest, (-rank, key))
            newest[key] = entry
        elif rank < -largest[0][0]:
            _, evicted = heapq.heapreplace(largest, (-rank, key))
            del newest[evicted]
            newest[key] = entry
    return _frame(list(newest.values())), seen
