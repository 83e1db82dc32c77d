"""The prediction service's read of the online feature store, without Feast.

Feast defines and loads the store (``feature_store.py``, the ``materialize`` step); the service
reads what Feast wrote directly, because Feast's package requires Dask (and mypy) and the Bento
must not carry the batch pipeline (``tests/unit/test_deployment_files.py``). The read follows
Feast's own layout, checked against Feast's client in ``tests/integration/test_feature_store.py``:

- an entity key is Feast's serialization version 3 of ``{"msno": id}``;
- SQLite: one table ``<project>_<view>``, a row per (entity key, feature), the value a
  serialized ``feast.types.Value``;
- Redis: a hash per entity (key + project name), a field per feature (murmur3 of
  ``<view>:<feature>``) and ``_ts:<view>``, written only for rows Feast loaded.

Which view serves a cohort is kept in the store itself (``<project>__served`` in SQLite, the
hash ``<project>:served`` in Redis), written by ``feature_store.publish_cohort`` after Feast
materialized the view and pointed its feature service at it: one write moves readers to a new
version only once it is complete.
"""

from __future__ import annotations

import math
import re
import sqlite3
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn_transform.schema import FEATURES
from churn_transform.settings import Settings

_STRING = 2  # feast.value_type.ValueType.STRING
_DOUBLE_TAG, _STRING_TAG, _NULL_TAG = 0x29, 0x12, 0x98  # fields 5 (double), 2 (string), 19
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class UnknownCohortError(LookupError):
    """No version of the cohort was loaded into the online store."""


def entity_key(msno: str) -> bytes:
    """Feast's entity key (serialization version 3) of the subscriber ``msno``."""
    key, value = b"msno", msno.encode()
    head = struct.pack("<III", 1, _STRING, len(key))
    return head + key + struct.pack("<II", _STRING, len(value)) + value


def decode_value(data: bytes) -> float | str | None:
    """A serialized ``feast.types.Value`` holding a double, a string or nothing (null)."""
    if not data or data[0] == _NULL_TAG:
        return None
    if data[0] == _DOUBLE_TAG and len(data) == 9:
        return float(struct.unpack("<d", data[1:])[0])
    if data[0] == _STRING_TAG:
        length, shift, at = 0, 0, 1
        while True:  # protobuf varint
            byte = data[at]
            length |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if byte < 0x80:
                break
        return data[at : at + length].decode()
    raise ValueError(f"a feature value Feast should not have written: {data[:16]!r}")


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a Feast project or view name: {name!r}")
    return name


class OnlineStore(ABC):
    """Rows of the feature views Feast loaded, and which view serves each cohort."""

    def __init__(self, project: str) -> None:
        self.project = _checked(project)

    @abstractmethod
    def served(self) -> dict[str, str]:
        """Cohort -> the feature view that serves it."""

    @abstractmethod
    def point(self, cohort: str, view: str) -> None:
        """Serve ``cohort`` from ``view`` (which Feast has loaded whole)."""

    @abstractmethod
    def read(self, view: str, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The features of each id in ``view``; None for an id the view does not hold."""


class SqliteStore(OnlineStore):
    """Feast's SQLite online store, one connection per thread."""

    def __init__(self, path: str, project: str) -> None:
        super().__init__(project)
        self.path = path
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = sqlite3.connect(self.path, timeout=10)
        return connection

    def served(self) -> dict[str, str]:
        if not Path(self.path).exists():  # nothing loaded yet: do not create the file
            return {}
        try:
            rows = self._connection().execute(f'SELECT cohort, view FROM "{self.project}__served"')
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return {}
            raise
        return dict(rows.fetchall())

    def point(self, cohort: str, view: str) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as connection:
            connection.execute(
                f'CREATE TABLE IF NOT EXISTS "{self.project}__served" '
                "(cohort TEXT PRIMARY KEY, view TEXT NOT NULL)"
            )
            connection.execute(
                f'INSERT OR REPLACE INTO "{self.project}__served" VALUES (?, ?)',
                (cohort, _checked(view)),
            )

    def read(self, view: str, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        keys = [entity_key(msno) for msno in ids]
        rows = self._connection().execute(
            f'SELECT entity_key, feature_name, value FROM "{self.project}_{_checked(view)}" '
            f"WHERE entity_key IN ({','.join('?' * len(keys))})",
            keys,
        )
        found: dict[bytes, dict[str, Any]] = {}
        for key, name, value in rows.fetchall():
            found.setdefault(key, {})[name] = decode_value(value)
        return [found.get(key) for key in keys]


def _redis_options(connection_string: str) -> dict[str, Any]:
    """redis-py's options from Feast's ``host:port,password=...,ssl=true,db=0``."""
    parts = connection_string.split(",")
    host, _, port = parts[0].rpartition(":")
    options: dict[str, Any] = {"host": host or "localhost", "port": int(port or 6379)}
    for part in parts[1:]:
        name, _, value = part.partition("=")
        options[name] = {"true": True, "false": False}.get(value.lower(), value)
    if "db" in options:
        options["db"] = int(options["db"])
    return options


class RedisStore(OnlineStore):
    """Feast's Redis online store (redis-py's client is thread-safe: one pool per process)."""

    def __init__(self, connection_string: str, project: str) -> None:
        import redis

        super().__init__(project)
        self.client = redis.Redis(**_redis_options(connection_string))
        self._fields: dict[str, list[bytes]] = {}

    def _view_fields(self, view: str) -> list[bytes]:
        if view not in self._fields:
            import mmh3

            self._fields[view] = [
                struct.pack("<I", mmh3.hash(f"{view}:{name}", signed=False)) for name in FEATURES
            ] + [f"_ts:{view}".encode()]
        return self._fields[view]

    def served(self) -> dict[str, str]:
        served: dict[bytes, bytes] = self.client.hgetall(f"{self.project}:served")  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in served.items()}

    def point(self, cohort: str, view: str) -> None:
        self.client.hset(f"{self.project}:served", cohort, _checked(view))

    def read(self, view: str, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        fields = self._view_fields(view)
        pipe = self.client.pipeline(transaction=False)
        for msno in ids:
            pipe.hmget(entity_key(msno) + self.project.encode(), fields)  # type: ignore[arg-type]
        answers: list[dict[str, Any] | None] = []
        for values in pipe.execute():
            if values[-1] is None:  # no timestamp: the view never wrote this entity
                answers.append(None)
                continue
            answers.append(
                {name: decode_value(v or b"") for name, v in zip(FEATURES, values, strict=False)}
            )
        return answers


def online_store(settings: Settings) -> OnlineStore:
    """The online store the settings name."""
    if settings.online_store == "redis":
        return RedisStore(settings.redis_connection, settings.feature_project)
    return SqliteStore(settings.online_path, settings.feature_project)


@dataclass(frozen=True)
class Lookup:
    """Features found by id, in the order asked, and the ids the cohort does not hold."""

    cohort: str
    found: list[dict[str, Any]]
    unknown: list[str]


class OnlineFeatures:
    """Lookups by id. The cohort -> view map is read again after ``ttl`` seconds, so a cohort
    loaded or moved to a new version is served within that time."""

    def __init__(self, store: OnlineStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._served: tuple[float, dict[str, str]] = (-math.inf, {})

    def served(self) -> dict[str, str]:
        """Cohort -> view, as of at most ``ttl`` seconds ago."""
        if time.monotonic() - self._served[0] >= self.ttl:
            self._served = (time.monotonic(), self.store.served())
        return self._served[1]

    def cohorts(self) -> list[str]:
        """The cohorts served, oldest first."""
        return sorted(self.served())

    def lookup(self, ids: Sequence[str], cohort: str | None = None) -> Lookup:
        """The gold features of ``ids`` in ``cohort`` (default: the newest served). Raises
        ``UnknownCohortError`` when the cohort was never loaded."""
        served = self.served()
        if not served:
            raise UnknownCohortError("no cohort was loaded into the feature store yet")
        cohort = cohort or max(served)
        if cohort not in served:
            raise UnknownCohortError(
                f"cohort {cohort} is not in the feature store (cohorts served: "
                f"{', '.join(sorted(served))})"
            )
        found, unknown = [], []
        for msno, features in zip(ids, self.store.read(served[cohort], ids), strict=True):
            if features is None:
                unknown.append(msno)
            else:
                found.append({"msno": msno, **{name: features.get(name) for name in FEATURES}})
        return Lookup(cohort, found, unknown)
