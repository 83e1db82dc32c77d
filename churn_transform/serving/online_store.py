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


#: How many ids a refusal of unknown ids names as examples of ids the cohort holds.
EXAMPLE_IDS = 3
#: Where subscriber ids come from, as a refusal of unknown ids says it.
IDS_COME_FROM = (
    "Ids are the msno of the cohort's members, whose gold features the materialize step "
    "(mlflow run . -e materialize) loaded into the online feature store"
)
# Redis keys a search for ids of a view reads at most (``RedisStore.some_ids``).
_MAX_SCANNED = 10_000


class UnknownCohortError(LookupError):
    """No version of the cohort was loaded into the online store."""


class UnknownIdsError(LookupError):
    """Ids the cohort does not hold: the message names them, where ids come from and a few ids
    the cohort holds."""

    def __init__(self, message: str, ids: list[str]) -> None:
        super().__init__(message)
        self.ids = ids


def entity_key(msno: str) -> bytes:
    """Feast's entity key (serialization version 3) of the subscriber ``msno``."""
    key, value = b"msno", msno.encode()
    head = struct.pack("<III", 1, _STRING, len(key))
    return head + key + struct.pack("<II", _STRING, len(value)) + value


def msno_of(key: bytes) -> str | None:
    """The subscriber of a Feast entity key made by ``entity_key``; None for any other bytes."""
    head = struct.calcsize("<III") + 4
    if len(key) < head + 8 or key[:head] != entity_key("")[:head]:
        return None
    kind, length = struct.unpack("<II", key[head : head + 8])
    value = key[head + 8 :]
    if kind != _STRING or length != len(value):
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


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

    @abstractmethod
    def some_ids(self, view: str, count: int) -> list[str]:
        """Up to ``count`` ids that ``view`` holds (any of them)."""


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

    def some_ids(self, view: str, count: int) -> list[str]:
        rows = self._connection().execute(
            f'SELECT DISTINCT entity_key FROM "{self.project}_{_checked(view)}" LIMIT ?', (count,)
        )
        return [msno for (key,) in rows.fetchall() if (msno := msno_of(key)) is not None]


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

    def some_ids(self, view: str, count: int) -> list[str]:
        """The first ids found among the project's keys whose hash holds ``view``, reading at
        most ``_MAX_SCANNED`` keys (Redis keeps no index of a view's entities)."""
        suffix, stamp = self.project.encode(), f"_ts:{_checked(view)}"
        found: list[str] = []
        cursor, scanned = 0, 0
        while len(found) < count and scanned < _MAX_SCANNED:
            cursor, keys = self.client.scan(cursor, match=b"*" + suffix, count=1000)  # type: ignore[misc]
            scanned += 1000
            named = {key: msno_of(key[: -len(suffix)]) for key in keys}
            pipe = self.client.pipeline(transaction=False)
            for key in named:
                pipe.hexists(key, stamp)
            held = zip(named.values(), pipe.execute(), strict=True)
            found += [msno for msno, has in held if has and msno is not None]
            if cursor == 0:
                break
        return found[:count]


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

    def _view(self, cohort: str | None) -> tuple[str, str]:
        """The cohort (default: the newest served) and the view that serves it. Raises
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
        return cohort, served[cohort]

    def lookup(self, ids: Sequence[str], cohort: str | None = None) -> Lookup:
        """The gold features of ``ids`` in ``cohort`` (default: the newest served). Raises
        ``UnknownCohortError`` when the cohort was never loaded."""
        cohort, view = self._view(cohort)
        found, unknown = [], []
        for msno, features in zip(ids, self.store.read(view, ids), strict=True):
            if features is None:
                unknown.append(msno)
            else:
                found.append({"msno": msno, **{name: features.get(name) for name in FEATURES}})
        return Lookup(cohort, found, unknown)

    def features(self, ids: Sequence[str], cohort: str | None = None) -> list[dict[str, Any]]:
        """``lookup``'s features of every id, or ``UnknownIdsError`` when the cohort does not
        hold them all (``UnknownCohortError`` when it was never loaded)."""
        found = self.lookup(ids, cohort)
        if found.unknown:
            some = self.some_ids(EXAMPLE_IDS, found.cohort)
            raise UnknownIdsError(
                f"unknown subscriber ids in cohort {found.cohort}: {', '.join(found.unknown)}. "
                f"{IDS_COME_FROM}{': e.g. ' + ', '.join(some) if some else ''}.",
                found.unknown,
            )
        return found.found

    def some_ids(self, count: int, cohort: str | None = None) -> list[str]:
        """Up to ``count`` ids that ``cohort`` (default: the newest served) holds."""
        _, view = self._view(cohort)
        return self.store.some_ids(view, count)
