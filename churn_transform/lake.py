"""The lake: one root (a local folder or ``s3://bucket/prefix``) with bronze, silver and gold areas.

Every version is written as an immutable folder, audited, and only then made current by
rewriting one small ``CURRENT`` pointer object (one PUT on S3, one rename locally). Silver's four
tables are one snapshot: ``silver/<version>/<table>/`` behind the single ``silver/CURRENT``, so
they go live together or not at all. Bronze and gold have a pointer per table
(``<area>/<table>/<version>/``, ``<area>/<table>/CURRENT``). Readers follow the pointers, so a run
that fails or is killed at any moment leaves the previous good versions in place, and publishing
a version that already exists does nothing (re-runs are idempotent). One writer at a time holds
the lake's ``_LOCK`` (``lock``).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.core import url_to_fs

if TYPE_CHECKING:
    from churn_transform.settings import Settings

log = logging.getLogger(__name__)

AREAS = ("bronze", "silver", "gold")
#: Areas whose tables are one snapshot: one version folder holds them all, one pointer names it.
SNAPSHOT_AREAS = ("silver",)
POINTER = "CURRENT"
SUCCESS = "_SUCCESS"
AUDIT = "_AUDIT.json"
#: Written in a version's folder when it is first made current.
PUBLISHED = "_PUBLISHED"
LOCK = "_LOCK"
#: A lock older than this is taken to be left by a writer that died without releasing it.
STALE_LOCK_SECONDS = 24 * 3600


class TableNotFoundError(FileNotFoundError):
    """A table has no published version yet."""


class LakeLockedError(RuntimeError):
    """Another writer holds the lake's lock."""


class Lake:
    """Paths, publishing and the writers' lock of a lake rooted at ``uri``."""

    def __init__(self, uri: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs: fsspec.AbstractFileSystem
        self.fs, self._root = url_to_fs(self.uri, **self.storage_options)
        self._protocol = "" if "://" not in self.uri else self.uri.split("://", 1)[0] + "://"

    def _key(self, *parts: str) -> str:
        return posixpath.join(self._root, *parts)

    def url(self, *parts: str) -> str:
        """A URL that pandas, Dask and pyarrow can open with ``storage_options``."""
        return self._protocol + self._key(*parts) if self._protocol else self._key(*parts)

    def path_of(self, url: str) -> str:
        """The filesystem path (no protocol) of a URL in this lake, for ``self.fs`` calls."""
        return str(fsspec.core.strip_protocol(url))

    def write_bytes(self, data: bytes, *parts: str) -> str:
        """Write one small object (a report) at ``parts`` under the root; returns its URL."""
        key = self._key(*parts)
        self.fs.makedirs(posixpath.dirname(key), exist_ok=True)
        self.fs.pipe_file(key, data)
        return self.url(*parts)

    # -- layout -------------------------------------------------------------------------------

    def _check(self, area: str) -> None:
        if area not in AREAS:
            raise ValueError(f"unknown lake area {area!r}; expected one of {AREAS}")

    def version_parts(self, area: str, table: str, version: str) -> tuple[str, ...]:
        """Where a version's folder lies: the snapshot's in a snapshot area, else the table's."""
        self._check(area)
        return (area, version) if area in SNAPSHOT_AREAS else (area, table, version)

    def versions_parts(self, area: str, table: str) -> tuple[str, ...]:
        """The folder that holds the versions (and the pointer) of ``area/table``."""
        self._check(area)
        return (area,) if area in SNAPSHOT_AREAS else (area, table)

    def version_url(self, area: str, table: str, version: str) -> str:
        """URL of ``table`` in ``version``, published or not."""
        parts = self.version_parts(area, table, version)
        return self.url(*parts, table) if area in SNAPSHOT_AREAS else self.url(*parts)

    def current_version(self, area: str, table: str) -> str:
        """The version name the table's pointer names; raises if never published."""
        pointer = self._key(*self.versions_parts(area, table), POINTER)
        if not self.fs.exists(pointer):
            raise TableNotFoundError(f"{area}/{table} has no published version in {self.uri}")
        return self.fs.cat_file(pointer).decode().strip()

    def current(self, area: str, table: str) -> str:
        """URL of the current version of ``area/table``."""
        return self.version_url(area, table, self.current_version(area, table))

    def has_version(self, area: str, table: str, version: str) -> bool:
        """Whether ``version`` was written completely (published or not)."""
        return self.fs.exists(self._key(*self.version_parts(area, table, version), SUCCESS))

    def versions(self, area: str, table: str) -> list[str]:
        """Every version folder of ``area/table``, complete or not, current or not."""
        folder = self._key(*self.versions_parts(area, table))
        if not self.fs.exists(folder):
            return []
        names = [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(folder, detail=False)]
        return sorted(n for n in names if n != POINTER and not n.startswith((POINTER, "_")))

    def completed_at(self, area: str, table: str, version: str) -> float:
        """When a complete version was written (0 for one written before this was recorded)."""
        marker = self.fs.cat_file(self._key(*self.version_parts(area, table, version), SUCCESS))
        return float(marker.decode() or 0)

    # -- publishing ---------------------------------------------------------------------------

    def stage(self, area: str, tables: list[str], version: str) -> dict[str, str]:
        """URLs to write each table of ``version`` into, or none if it is complete already.

        A leftover of an interrupted run (the folder without its ``_SUCCESS``) is removed first.
        """
        if "/" in version or version in ("", POINTER) or version.startswith("_"):
            raise ValueError(f"bad version name {version!r}")
        if all(self.has_version(area, table, version) for table in tables):
            log.info("%s %s version %s already written", area, ",".join(tables), version)
            return {}
        for table in tables:
            folder = self._key(*self.version_parts(area, table, version))
            if self.fs.exists(folder) and not self.has_version(area, table, version):
                self.fs.rm(folder, recursive=True)
        return {table: self.version_url(area, table, version) for table in tables}

    def complete(self, area: str, table: str, version: str) -> None:
        """Mark a written version complete (its ``_SUCCESS`` holds the time it was written)."""
        key = self._key(*self.version_parts(area, table, version), SUCCESS)
        self.fs.makedirs(posixpath.dirname(key), exist_ok=True)
        self.fs.pipe_file(key, repr(time.time()).encode())

    def record_audit(self, area: str, table: str, version: str, report: dict[str, Any]) -> str:
        """Keep a version's audit report beside it and under ``reports/audit/``; its URL there."""
        data = json.dumps(report, indent=1, default=str).encode()
        self.fs.pipe_file(self._key(*self.version_parts(area, table, version), AUDIT), data)
        name = "-".join(self.version_parts(area, table, version)) + ".json"
        return self.write_bytes(data, "reports", "audit", name)

    def audit_of(self, area: str, table: str, version: str) -> dict[str, Any] | None:
        """The audit report kept beside a version, if it was audited."""
        key = self._key(*self.version_parts(area, table, version), AUDIT)
        return json.loads(self.fs.cat_file(key)) if self.fs.exists(key) else None

    def publish(
        self, area: str, table: str, version: str, write: Callable[[str], None], point: bool = True
    ) -> str:
        """Write ``version`` of a table with ``write(url)`` unless it exists, then point to it."""
        urls = self.stage(area, [table], version)
        if urls:
            write(urls[table])
            self.complete(area, table, version)
        if point:
            self.point(area, table, version)
        return self.version_url(area, table, version)

    def was_published(self, area: str, table: str, version: str) -> bool:
        """Whether a version was ever made current (and so passed its audit)."""
        return self.fs.exists(self._key(*self.version_parts(area, table, version), PUBLISHED))

    def mark_published(self, area: str, table: str, version: str) -> None:
        """Record that a complete, audited version is part of what is published (a lower
        layer of the snapshot about to go live) without making it current."""
        if not self.has_version(area, table, version):
            raise TableNotFoundError(f"{area}/{table} has no complete version {version!r}")
        self.fs.pipe_file(self._key(*self.version_parts(area, table, version), PUBLISHED), b"")

    def point(self, area: str, table: str, version: str) -> None:
        """Make a complete version current: one atomic write of the pointer."""
        self.mark_published(area, table, version)
        self.replace(self._key(*self.versions_parts(area, table), POINTER), version.encode())

    def replace(self, path: str, data: bytes) -> None:
        """Replace the small object at ``path`` (a path of this lake's filesystem) whole:
        readers see the old bytes or the new, never a part. One PUT on an object store (S3
        replaces an object atomically), a rename of a finished temporary file on a disk."""
        if self._protocol:
            self.fs.pipe_file(path, data)
            return
        staged = f"{path}.{uuid.uuid4().hex[:8]}.new"
        self.fs.pipe_file(staged, data)
        os.replace(staged, path)

    # -- cleaning up -------------------------------------------------------------------------

    def remove(self, url: str) -> int:
        """Delete a folder or object of the lake; the bytes it held."""
        path = self.path_of(url)
        size = sum(self.fs.du(path, total=False).values())
        self.fs.rm(path, recursive=True)
        log.info("removed %s (%.1f MB)", url, size / 2**20)
        return size

    def _unpublished(self, area: str, table: str, version: str) -> bool:
        """Never made current: incomplete, or complete and audited (failed, or killed before
        its pointer moved). A complete version without an audit predates audits: it is left to
        retention (``garbage``)."""
        root = self._key(*self.version_parts(area, table, version))
        if self.was_published(area, table, version):
            return False
        return not self.fs.exists(f"{root}/{SUCCESS}") or self.fs.exists(f"{root}/{AUDIT}")

    def remove_unpublished(self, area: str, table: str) -> list[tuple[str, int]]:
        """Delete the versions of ``area/table`` never made current and the pointer's leftover
        temporary files; each removed URL and its bytes. Hold the lock (``lock``): a version
        being written by another process looks unpublished too."""
        try:
            current = self.current_version(area, table)
        except TableNotFoundError:
            current = None
        removed = []
        for version in self.versions(area, table):
            if version != current and self._unpublished(area, table, version):
                url = self.url(*self.version_parts(area, table, version))
                removed.append((url, self.remove(url)))
        holder = self.versions_parts(area, table)
        if self.fs.exists(self._key(*holder)):
            for path in self.fs.ls(self._key(*holder), detail=False):
                name = posixpath.basename(path.rstrip("/"))
                if name.startswith(f"{POINTER}.") and name.endswith(".new"):
                    removed.append((self.url(*holder, name), self.remove(self.url(*holder, name))))
        return removed

    # -- one writer at a time -----------------------------------------------------------------

    @contextmanager
    def lock(self, owner: str) -> Iterator[None]:
        """Hold the lake's ``_LOCK`` while writing; a second writer stops, naming the holder.

        The lock is created exclusively: ``O_EXCL`` locally, a conditional PUT
        (``If-None-Match: *``) on S3, then read back, so a server that ignores the condition
        is still caught when the other writer's object is the one that stayed. A lock left by a
        dead process (same host) or older than ``STALE_LOCK_SECONDS`` is taken over, with a
        warning naming it.
        """
        key = self._key(LOCK)
        holder = {
            "owner": owner,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "token": uuid.uuid4().hex,
        }
        self._acquire(key, holder)
        try:
            yield
        finally:
            if self._holder(key).get("token") == holder["token"]:
                self.fs.rm_file(key)

    def _acquire(self, key: str, holder: dict[str, Any]) -> None:
        self.fs.makedirs(self._root, exist_ok=True)
        data = json.dumps(holder).encode()
        try:
            self.fs.pipe_file(key, data, mode="create")
        except FileExistsError:
            other = self._holder(key)
            if not _stale(other):
                raise LakeLockedError(
                    f"the lake {self.uri} is being written by {_describe(other)}; wait for it to "
                    f"finish (if that process is gone, delete {self.url(LOCK)})"
                ) from None
            log.warning("taking over the stale lock of %s", _describe(other))
            self.fs.pipe_file(key, data)
        if self._holder(key).get("token") != holder["token"]:
            raise LakeLockedError(f"the lake {self.uri} was locked by {self._describe_lock()}")

    def _holder(self, key: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self.fs.cat_file(key)))
        except (FileNotFoundError, ValueError):
            return {}

    def _describe_lock(self) -> str:
        return _describe(self._holder(self._key(LOCK)))


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "an unknown writer"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
    age = time.time() - holder.get("since", 0)
    return (
        f"{holder.get('owner')} (pid {holder.get('pid')} on {holder.get('host')}, "
        f"since {since}, {age:.0f} s ago)"
    )


def _stale(holder: dict[str, Any]) -> bool:
    """Whether a lock's holder is gone: its process is dead on this host, or it is too old."""
    if time.time() - holder.get("since", 0) > STALE_LOCK_SECONDS:
        return True
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def lake_of(settings: Settings) -> Lake:
    """The lake the settings name, with the S3 credentials and endpoint it needs."""
    return Lake(settings.lake_uri, settings.storage_options(settings.lake_uri))
