"""Keeping the lake's size: unpublished versions and scratch files go, old versions are pruned.

``Lake.remove_unpublished`` runs at the start of every ingest and feature run, under the lake's
lock: a version never made current (half written by a killed run, or failed its audit; its
report stays under ``reports/audit/``) and a pointer's leftover temporary file are deleted.
``collect_garbage`` (the ``gc`` step) does that everywhere and keeps, per table, the current
version and the newest published ones up to ``keep``, and any gold version whose content hash is in
``referenced`` (what DVC's workspace or a registered model was built on), with the silver and
bronze snapshots those came from; a kept snapshot keeps the lower layers it is built on (monthly
increments, ``silver.layers``). Bronze folders are kept while a kept snapshot's manifest names
them (an unchanged raw file is copied once, ``bronze``), and so are increments' copies.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from churn_transform.etl.bronze import bronze_manifest
from churn_transform.etl.gold import gold_summary
from churn_transform.etl.increments import INCREMENTS
from churn_transform.etl.silver import snapshot_layers
from churn_transform.etl.silver.read import MANIFEST
from churn_transform.lake import Lake, TableNotFoundError

log = logging.getLogger(__name__)


@dataclass
class GarbageReport:
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept: dict[str, list[str]] = field(default_factory=dict)

    def text(self) -> str:
        return (
            f"removed {len(self.removed)} folder(s), {self.bytes_freed / 2**20:,.1f} MB; kept "
            + ", ".join(f"{table}: {len(versions)}" for table, versions in self.kept.items())
        )


def _current(lake: Lake, area: str, table: str) -> str | None:
    try:
        return lake.current_version(area, table)
    except TableNotFoundError:
        return None


def _remove(lake: Lake, report: GarbageReport, *parts: str) -> None:
    url = lake.url(*parts)
    report.bytes_freed += lake.remove(url)
    report.removed.append(url)


def _remove_unpublished(lake: Lake, area: str, table: str, report: GarbageReport) -> None:
    for url, size in lake.remove_unpublished(area, table):
        report.removed.append(url)
        report.bytes_freed += size


def _prune(
    lake: Lake,
    area: str,
    table: str,
    keep: int,
    protected: set[str],
    report: GarbageReport,
    needs: Callable[[str], Iterable[str]] = lambda version: (),
) -> list[str]:
    """Keep the current version, the newest published ones up to ``keep`` and ``protected``,
    and what each of those ``needs`` (a snapshot's lower layers); the kept ones. A complete
    version that was never published (never audited, or killed before its pointer moved) is
    not among the newest: it never passed an audit, so it cannot stand in for one that did."""
    current = _current(lake, area, table)
    complete = [v for v in lake.versions(area, table) if lake.has_version(area, table, v)]
    published = [v for v in complete if lake.was_published(area, table, v)]
    newest = sorted(published, key=lambda v: lake.completed_at(area, table, v), reverse=True)
    kept = {v for v in [current, *[n for n in newest if n != current][: max(keep - 1, 0)]] if v}
    kept |= protected & set(complete)
    kept |= {needed for version in set(kept) for needed in needs(version)} & set(complete)
    for version in complete:
        if version not in kept:
            _remove(lake, report, *lake.version_parts(area, table, version))
    report.kept[f"{area}/{table}".rstrip("/")] = sorted(kept)
    return sorted(kept)


def _summary(lake: Lake, table: str, version: str) -> dict[str, object]:
    try:
        return gold_summary(lake, lake.version_url("gold", table, version))
    except FileNotFoundError:  # written before summaries were
        return {}


def _tables(lake: Lake, area: str) -> list[str]:
    folder = lake.path_of(lake.url(area))
    if not lake.fs.exists(folder):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in lake.fs.ls(folder, detail=False))


def collect_garbage(lake: Lake, keep: int, referenced: Iterable[str] = ()) -> GarbageReport:
    """Remove unpublished versions and scratch files everywhere, and prune old versions (see the
    module's docstring); ``referenced``: gold content hashes that must stay."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the current version), got {keep}")
    hashes = set(referenced)
    report = GarbageReport()
    with lake.lock("gc"):
        for area, tables in (
            ("gold", _tables(lake, "gold")),
            ("silver", [""]),
            ("bronze", ["raw", INCREMENTS]),
        ):
            for table in tables:
                _remove_unpublished(lake, area, table, report)
        silver_needed: set[str] = set()
        for table in _tables(lake, "gold"):
            built_from = {
                version: _summary(lake, table, version) for version in lake.versions("gold", table)
            }
            protected = {v for v, summary in built_from.items() if summary.get("hash") in hashes}
            _prune(lake, "gold", table, keep, protected, report)
            silver_needed |= {str(built_from[v].get("silver")) for v in protected}
        silver = _prune(
            lake, "silver", "", keep, silver_needed, report, lambda v: snapshot_layers(lake, v)
        )
        _prune_bronze(lake, {v.split("-f", 1)[0] for v in silver}, report)
        _prune_bronze_increments(lake, silver, report)
    log.info("gc: %s", report.text())
    return report


def _prune_bronze(lake: Lake, snapshots: set[str], report: GarbageReport) -> None:
    """Keep the bronze snapshots of the kept silver (and the current one), and every folder
    their manifests name; remove the rest."""
    current = _current(lake, "bronze", "raw")
    kept = {s for s in snapshots | {current} if s and lake.has_version("bronze", "raw", s)}
    folders = set(kept)
    for version in kept:
        folders |= {str(entry["folder"]) for entry in bronze_manifest(lake, version).values()}
    for version in lake.versions("bronze", "raw"):
        if version not in folders:
            _remove(lake, report, "bronze", "raw", version)
    report.kept["bronze/raw"] = sorted(folders)


def _prune_bronze_increments(lake: Lake, silver: list[str], report: GarbageReport) -> None:
    """Keep the bronze copy of every increment a kept silver snapshot holds; remove the rest."""
    kept = set()
    for version in silver:
        manifest = lake.fs.cat_file(lake.path_of(lake.url("silver", version, MANIFEST)))
        kept |= {f"{m}-{i}" for m, i in json.loads(manifest).get("increments", {}).items()}
    for version in lake.versions("bronze", INCREMENTS):
        if version not in kept:
            _remove(lake, report, "bronze", INCREMENTS, version)
    report.kept[f"bronze/{INCREMENTS}"] = sorted(kept)
