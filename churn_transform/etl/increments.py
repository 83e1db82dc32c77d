"""Monthly increments as they land beside the raw files: ``<raw>/increments/<YYYY-MM>/``.

Each month's folder holds that month's rows in the KKBox formats, any of: ``transactions.csv``,
``user_logs.csv``, ``members.csv`` (members newly registered, or whose profile changed; the
columns of ``members_v3.csv``), ``labels_<YYYY-MM>.csv`` (a cohort's labels, once known),
``cohort_<YYYY-MM>.csv`` (a cohort to score) and ``campaigns.csv`` (the log of a campaign played
in the month, which the campaign's verdict reads: no silver table does). Rows may repeat rows
already delivered, or be dated in an earlier month (late rows): silver handles both
(``silver.layers``).

An increment is fingerprinted like the raw folder (size and modification time or ETag of each
file), so a month already ingested is recognised and a month whose files changed is not.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass

from fsspec.core import url_to_fs

from churn_transform.dates import months_between, shift_month
from churn_transform.etl.silver.tables import SOURCES
from churn_transform.schema import INCREMENT_CAMPAIGN_FILE, INCREMENT_FILES, INCREMENT_LABEL_FILE

#: The folder of the raw folder that increments land in.
INCREMENTS = "increments"
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_TABLE_OF = {name: table for table, names in SOURCES.items() for name in names}


@dataclass(frozen=True)
class Increment:
    """One landed month: its folder's URL and files (name -> (bytes, fingerprint))."""

    month: str
    url: str
    files: dict[str, tuple[int, str]]

    @property
    def id(self) -> str:
        text = json.dumps([self.month, self.files], sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()[:16]

    @property
    def bytes(self) -> int:
        return sum(size for size, _ in self.files.values())

    def sources(self) -> dict[str, tuple[str, ...]]:
        """The files of each silver table, in name order (tables it has no file of: none); the
        campaign log is none of them."""
        found: dict[str, tuple[str, ...]] = {table: () for table in SOURCES}
        for name in sorted(self.files):
            if name == INCREMENT_CAMPAIGN_FILE:
                continue
            table = (
                "labels"
                if INCREMENT_LABEL_FILE.fullmatch(name)
                else _TABLE_OF[INCREMENT_FILES[name]]
            )
            found[table] += (name,)
        return found


def landed_increments(raw_url: str, storage_options: dict[str, object]) -> list[Increment]:
    """Every month under ``<raw_url>/increments``, oldest first; raises ``ValueError`` naming
    a folder that is not a month or a file that is not one of an increment's."""
    fs, root = url_to_fs(raw_url, **storage_options)
    folder = posixpath.join(root, INCREMENTS)
    if not fs.isdir(folder):
        return []
    increments = []
    for entry in sorted(fs.ls(folder, detail=True), key=lambda e: str(e["name"])):
        month = posixpath.basename(str(entry["name"]).rstrip("/"))
        if entry["type"] != "directory" or not _MONTH.fullmatch(month):
            raise ValueError(
                f"{raw_url}/{INCREMENTS}/{month}: increments land in one folder per month, "
                "named YYYY-MM"
            )
        files = {}
        for info in fs.ls(str(entry["name"]), detail=True):
            name = posixpath.basename(str(info["name"]).rstrip("/"))
            if not _of_an_increment(name):
                raise ValueError(
                    f"{raw_url}/{INCREMENTS}/{month}/{name} is not a file of an increment: "
                    f"expected {sorted(INCREMENT_FILES)}, labels_YYYY-MM.csv, "
                    f"cohort_YYYY-MM.csv or {INCREMENT_CAMPAIGN_FILE}"
                )
            stamp = info.get("ETag") or info.get("etag") or info.get("mtime")
            files[name] = (int(info["size"]), str(stamp or info.get("LastModified")))
        if files:
            increments.append(
                Increment(month, f"{raw_url.rstrip('/')}/{INCREMENTS}/{month}", files)
            )
    return increments


def _of_an_increment(name: str) -> bool:
    return (
        name in INCREMENT_FILES
        or name == INCREMENT_CAMPAIGN_FILE
        or INCREMENT_LABEL_FILE.fullmatch(name) is not None
    )


class MissingIncrementError(LookupError):
    """A month whose increment has not landed."""


def landed_increment(
    raw_url: str, storage_options: dict[str, object], month: str, since: str | None = None
) -> Increment:
    """The increment of ``month``, once whole and in order: raises ``MissingIncrementError``
    naming the folder of a month from ``since`` (default: ``month``) to ``month`` that has not
    landed (a month run on top of a gap would build its cohorts with that month missing), the
    cohort file ``cohort_<month + 1>.csv`` it lacks (the users to score), or a file of it with
    no byte."""
    landed = {
        increment.month: increment for increment in landed_increments(raw_url, storage_options)
    }
    root = f"{raw_url.rstrip('/')}/{INCREMENTS}"
    first = since or month
    months = [shift_month(first, k) for k in range(months_between(first, month) + 1)] or [month]
    for missing in (m for m in months if m not in landed):
        before = (
            f" (before {month}, which needs every month since {first})" if missing != month else ""
        )
        raise MissingIncrementError(
            f"no increment has landed for {missing}{before}: {root}/{missing}/ is missing or empty"
        )
    increment = landed[month]
    cohort = f"cohort_{shift_month(month, 1)}.csv"
    if cohort not in increment.files:
        raise MissingIncrementError(
            f"{increment.url}/{cohort} is missing: the increment of {month} lists the users of "
            f"cohort {shift_month(month, 1)}, to score"
        )
    for name, (size, _) in sorted(increment.files.items()):
        if not size:
            raise MissingIncrementError(f"{increment.url}/{name} is empty (0 bytes)")
    return increment


def layer_version(previous: str, increment: Increment, silver_format: str, buckets: int) -> str:
    """The silver version of ``increment`` ingested on top of snapshot ``previous``."""
    token = hashlib.sha256(f"{previous}+{increment.id}".encode()).hexdigest()[:16]
    return f"{increment.month}-{token}-f{silver_format}-b{buckets}"
