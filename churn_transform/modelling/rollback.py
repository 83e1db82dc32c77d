"""The champion's history in the registry, and the rollback that walks it back.

Every time the champion alias moves, the version it moves to is stamped: the promotion gate
tags it ``promoted_at`` (``mark_promoted``), a rollback tags it ``restored_at`` with
``restored_by``, ``restored_reason`` and ``restored_from``, and tags the version it leaves
``rolled_back_at`` with ``rolled_back_by``, ``rolled_back_reason`` and ``rolled_back_to``. A
version's reign starts at the later of its ``promoted_at`` and ``restored_at``; it was withdrawn
when its ``rolled_back_at`` is later still. Times are UTC, ISO 8601 to the microsecond.

The previous champion (``previous``) is the version whose reign started last, leaving out the
current one and every withdrawn one. So a second rollback walks further back: the version the
first one left is withdrawn and is not chosen again, and once no earlier champion is left the
rollback is refused. A withdrawn version (or any that was champion once) can still be named
(``VERSION=``); a version that never was champion cannot. Versions promoted before these tags
existed have no reign and are never chosen.

The tags are written before the alias moves: a rollback stopped in between leaves the alias
where it was, and running it again picks the same version (its ``restored_at`` is the newest
reign). The registry has no compare-and-set on an alias: a promotion at the same moment as a
rollback wins or loses by which call comes last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import mlflow
from mlflow.exceptions import MlflowException

from churn_transform.settings import Settings

PROMOTED_AT = "promoted_at"
RESTORED = ("restored_at", "restored_by", "restored_reason", "restored_from")
ROLLED_BACK = ("rolled_back_at", "rolled_back_by", "rolled_back_reason", "rolled_back_to")
#: A reason is a sentence or two, kept as a tag (refused before any tag is written).
MAX_REASON = 1000


class RollbackRefused(ValueError):
    """The rollback cannot be done as asked; the message says why and what to do."""


class Versioned(Protocol):
    """What the rules read of a registry version (MLflow's ``ModelVersion``)."""

    @property
    def version(self) -> Any: ...
    @property
    def tags(self) -> Mapping[str, str]: ...


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def mark_promoted(client: Any, name: str, version: str, at: datetime | None = None) -> None:
    """The champion history's record of a promotion: ``version`` became champion ``at`` (now)."""
    client.set_model_version_tag(name, version, PROMOTED_AT, stamp(at or datetime.now(UTC)))


@dataclass(frozen=True)
class Reign:
    """A version's latest time as champion, from its tags: ``since`` it started (None: never
    champion, as far as the tags tell), and whether it was then ``withdrawn`` by a rollback."""

    version: str
    since: datetime | None
    withdrawn: bool


def _time(tags: Mapping[str, str], key: str) -> datetime | None:
    value = tags.get(key)
    return datetime.fromisoformat(value) if value else None


def reign_of(version: Versioned) -> Reign:
    tags = version.tags
    starts = [t for t in (_time(tags, PROMOTED_AT), _time(tags, RESTORED[0])) if t is not None]
    since = max(starts, default=None)
    left = _time(tags, ROLLED_BACK[0])
    return Reign(str(version.version), since, left is not None and (since is None or left > since))


def previous(reigns: Iterable[Reign], current: str) -> str:
    """The version to roll back to from ``current``: the latest reign that is neither the current
    champion's nor withdrawn; RollbackRefused when there is none."""
    earlier = [r for r in reigns if r.since is not None and r.version != current]
    candidates = [r for r in earlier if not r.withdrawn]
    if not candidates:
        left = sorted((r.version for r in earlier), key=int)
        named = ""
        if left:
            were = f"versions {', '.join(left)} were" if left[1:] else f"version {left[0]} was"
            named = f" ({were} rolled back from)"
        raise RollbackRefused(
            f"no earlier champion to roll back to from version {current}{named}: name one "
            "that was champion with VERSION=N, or promote a new one"
        )
    return max(candidates, key=lambda r: (r.since, int(r.version))).version


def chosen(reigns: Iterable[Reign], current: str, wanted: str | None) -> str:
    """``wanted`` when it was champion once and is not the current one, else refused; the
    previous champion when ``wanted`` is None."""
    every = {r.version: r for r in reigns}
    if wanted is None:
        return previous(every.values(), current)
    if wanted == current:
        raise RollbackRefused(f"version {wanted} is the champion already")
    if wanted not in every:
        raise RollbackRefused(f"there is no version {wanted} to roll back to")
    if every[wanted].since is None:
        raise RollbackRefused(
            f"version {wanted} was never champion (no {PROMOTED_AT} or {RESTORED[0]} tag): "
            "only a former champion can be rolled back to"
        )
    return wanted


@dataclass(frozen=True)
class Rollback:
    """A rollback done: the ``alias`` of ``name`` moved from version ``left`` to ``restored``."""

    name: str
    alias: str
    left: str
    restored: str
    by: str
    reason: str
    at: str

    def text(self) -> str:
        return (
            f"{self.name}@{self.alias} is version {self.restored} again (was {self.left}), "
            f"rolled back by {self.by} at {self.at}: {self.reason}"
        )


def rollback(
    settings: Settings, wanted: str | None, by: str, reason: str, at: datetime | None = None
) -> Rollback:
    """Move the champion alias back to the previous champion (or to ``wanted``), the rollback
    recorded on both versions before the alias moves. ``by`` and ``reason`` must not be blank."""
    if not reason.strip():
        raise RollbackRefused('a rollback needs a reason: say why (REASON="...")')
    if not by.strip():
        raise RollbackRefused("a rollback needs the name of who does it")
    if len(reason) > MAX_REASON:
        raise RollbackRefused(f"the reason has {len(reason)} characters, more than {MAX_REASON}")
    client = mlflow.MlflowClient(settings.tracking_uri)
    name, alias = settings.model_name, settings.champion_alias
    try:
        current = str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        first = str(error).splitlines()[0]
        raise RollbackRefused(f"no {alias!r} version of {name!r} to roll back ({first})") from None
    versions = client.search_model_versions(f"name = '{name}'")
    restored = chosen([reign_of(v) for v in versions], current, wanted)
    done = Rollback(
        name, alias, current, restored, by.strip(), reason.strip(), stamp(at or datetime.now(UTC))
    )
    for key, value in zip(ROLLED_BACK, (done.at, done.by, done.reason, restored), strict=True):
        client.set_model_version_tag(name, current, key, value)
    for key, value in zip(RESTORED, (done.at, done.by, done.reason, current), strict=True):
        client.set_model_version_tag(name, restored, key, value)
    client.set_registered_model_alias(name, alias, restored)
    return done


@dataclass(frozen=True)
class ChampionEvent:
    """A move of the champion alias as the tags keep it: ``promoted`` (``version`` became
    champion) or ``rolled back`` (from ``left`` to ``version``, ``by`` whom and why)."""

    at: datetime
    kind: str
    version: str
    left: str = ""
    by: str = ""
    reason: str = ""


def events(versions: Iterable[Versioned]) -> list[ChampionEvent]:
    """Every promotion and rollback the versions' tags keep, oldest first. Each version keeps
    only its latest promotion, restoration and withdrawal; a rollback is told by both of its
    versions and counted once."""
    found: set[ChampionEvent] = set()
    for version in versions:
        tags, number = version.tags, str(version.version)
        if (promoted := _time(tags, PROMOTED_AT)) is not None:
            found.add(ChampionEvent(promoted, "promoted", number))
        at, by, reason, left = (tags.get(key, "") for key in RESTORED)
        if at:
            found.add(
                ChampionEvent(datetime.fromisoformat(at), "rolled back", number, left, by, reason)
            )
        at, by, reason, restored = (tags.get(key, "") for key in ROLLED_BACK)
        if at:
            found.add(
                ChampionEvent(
                    datetime.fromisoformat(at), "rolled back", restored, number, by, reason
                )
            )
    return sorted(found, key=lambda event: (event.at, int(event.version)))


def champion_events(settings: Settings) -> list[ChampionEvent]:
    """``events`` of every version of the settings' model in its registry."""
    client = mlflow.MlflowClient(settings.tracking_uri)
    return events(client.search_model_versions(f"name = '{settings.model_name}'"))
