"""The lake: one root (a local folder or ``s3://bucket/prefix``) with bronze, silver and gold areas.

Every table is published as an immutable version folder, then made current by rewriting a small
``CURRENT`` pointer object (one PUT on S3, one rename locally). Readers follow the pointer, so a
run that fails or is interrupted half way leaves the previous good version in place, and
publishing a version that already exists does nothing (re-runs are idempotent).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.core import url_to_fs

if TYPE_CHECKING:
    from churn_transform.settings import Settings

log = logging.getLogger(__name__)

AREAS = ("bronze", "silver", "gold")
POINTER = "CURRENT"
SUCCESS = "_SUCCESS"


class TableNotFoundError(FileNotFoundError):
    """A table has no published version yet."""


class Lake:
    """Paths and publishing in a lake rooted at ``uri``."""

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
        return str(self.fs._strip_protocol(url))

    def write_bytes(self, data: bytes, *parts: str) -> str:
        """Write one small object (a report) at ``parts`` under the root; returns its URL."""
        key = self._key(*parts)
        self.fs.makedirs(posixpath.dirname(key), exist_ok=True)
        self.fs.pipe_file(key, data)
        return self.url(*parts)

    def _check(self, area: str) -> None:
        if area not in AREAS:
            raise ValueError(f"unknown lake area {area!r}; expected one of {AREAS}")

    def current_version(self, area: str, table: str) -> str:
        """The version name the table's pointer names; raises if never published."""
        self._check(area)
        pointer = self._key(area, table, POINTER)
        if not self.fs.exists(pointer):
            raise TableNotFoundError(f"{area}/{table} has no published version in {self.uri}")
        return self.fs.cat_file(pointer).decode().strip()

    def current(self, area: str, table: str) -> str:
        """URL of the current version of ``area/table``."""
        return self.url(area, table, self.current_version(area, table))

    def has_version(self, area: str, table: str, version: str) -> bool:
        return self.fs.exists(self._key(area, table, version, SUCCESS))

    def publish(
        self, area: str, table: str, version: str, write: Callable[[str], None], point: bool = True
    ) -> str:
        """Write ``version`` of a table with ``write(url)`` unless it exists, then point to it.

        With ``point=False`` the version is written but not made current: call ``point`` once
        every table of a consistent set is written, so a failure leaves the old set current.
        """
        return self.publish_set(area, [table], version, lambda urls: write(urls[table]), point)[
            table
        ]

    def publish_set(
        self,
        area: str,
        tables: list[str],
        version: str,
        write: Callable[[dict[str, str]], None],
        point: bool = True,
    ) -> dict[str, str]:
        """``publish`` for several tables written together: ``write`` gets the URL of each table
        whose ``version`` is not published yet (none: not called), and each is marked complete
        only once ``write`` has returned."""
        self._check(area)
        if "/" in version or version in ("", POINTER):
            raise ValueError(f"bad version name {version!r}")
        todo = {}
        for table in tables:
            if self.has_version(area, table, version):
                log.info(
                    "%s/%s version %s already published: nothing to write", area, table, version
                )
                continue
            folder = self._key(area, table, version)
            if self.fs.exists(folder):  # left over by an interrupted run
                self.fs.rm(folder, recursive=True)
            todo[table] = self.url(area, table, version)
        if todo:
            write(todo)
            for table in todo:
                self.fs.pipe_file(self._key(area, table, version, SUCCESS), b"")
        if point:
            for table in tables:
                self.point(area, table, version)
        return {table: self.url(area, table, version) for table in tables}

    def point(self, area: str, table: str, version: str) -> None:
        """Make a published version current."""
        if not self.has_version(area, table, version):
            raise TableNotFoundError(f"{area}/{table} has no complete version {version!r}")
        pointer = self._key(area, table, POINTER)
        if self._protocol:
            self.fs.pipe_file(pointer, version.encode())
            return
        staged = pointer + ".new"
        self.fs.pipe_file(staged, version.encode())
        self.fs.mv(staged, pointer)


def lake_of(settings: Settings) -> Lake:
    """The lake the settings name, with the S3 credentials and endpoint it needs."""
    return Lake(settings.lake_uri, settings.storage_options(settings.lake_uri))
