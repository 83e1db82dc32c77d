"""Write, audit, then publish: what a raw folder and a new version must pass before going live.

Before converting: each raw file's header must name the expected columns in the expected order
(``check_headers``), and no file may have lost every row it had in the previous snapshot
(``check_files_kept``). After converting, before publishing: no table may have shrunk beyond the
allowed share (``check_tables_kept``) and the Pandera checks must pass; a version that fails
stays unpublished, its report kept beside it and under ``reports/audit/``. A monthly increment's
files are judged against what a month usually brings (``check_increment_kept``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fsspec.core import url_to_fs

from churn_transform.etl.fingerprint import RawFingerprint
from churn_transform.schema import RAW_FILES, raw_columns

#: Enough of a file to hold its header and the start of its first row.
_HEAD_BYTES = 64 * 2**10


class RawHeaderError(ValueError):
    """A raw file's header does not name the expected columns in the expected order."""


class DataLossError(RuntimeError):
    """The new raw snapshot lost data the previous one had; the run needs an explicit override."""


class ChangedIncrementError(DataLossError):
    """A month's increment changed after it was ingested: its predictions and realized quality
    were made from what it held. No override: the files ingested are put back, or a new lake
    takes the new data."""


class AuditError(RuntimeError):
    """A new version failed its audit and was not published; ``report`` says why."""

    def __init__(self, message: str, report: dict[str, Any], text: str = "") -> None:
        super().__init__(f"{message}:\n{text}" if text else message)
        self.report = report
        self.text = text or message


@dataclass(frozen=True)
class RawHead:
    """What the first bytes of a raw file show: its header's columns and whether a row follows."""

    columns: tuple[str, ...]
    has_rows: bool


def parse_head(head: bytes) -> RawHead:
    """The header and whether a data row follows, tolerating a UTF-8 BOM and CRLF line ends."""
    lines = head.decode("utf-8-sig", errors="replace").split("\n")
    header = lines[0].rstrip("\r").strip()
    columns = tuple(c.strip() for c in header.split(",")) if header else ()
    return RawHead(columns, any(line.strip() for line in lines[1:]))


def read_heads(
    raw_url: str, storage_options: dict[str, object], names: Iterable[str] = RAW_FILES
) -> dict[str, RawHead]:
    """The head of every raw file (or of ``names``, under ``raw_url``): a few kilobytes each."""
    fs, root = url_to_fs(raw_url, **storage_options)
    heads = {}
    for name in names:
        path = posixpath.join(root, name)
        size = int(fs.info(path)["size"])
        heads[name] = parse_head(
            fs.cat_file(path, start=0, end=min(size, _HEAD_BYTES)) if size else b""
        )
    return heads


def check_headers(heads: dict[str, RawHead]) -> None:
    """Every file with a header names its columns (``schema.raw_columns``), by name and in
    order."""
    problems = []
    for name, head in heads.items():
        expected = raw_columns(name)
        if not head.columns or head.columns == expected:  # an empty file: check_files_kept's
            continue
        missing = [c for c in expected if c not in head.columns]
        extra = [c for c in head.columns if c not in expected]
        detail = ", ".join(
            part
            for part in (
                f"missing {missing}" if missing else "",
                f"unexpected {extra}" if extra else "",
                "same columns in another order" if not (missing or extra) else "",
            )
            if part
        )
        problems.append(
            f"{name}: expected columns {list(expected)}, found {list(head.columns)} ({detail})"
        )
    if problems:
        raise RawHeaderError("raw file header mismatch:\n  " + "\n  ".join(problems))


def check_files_kept(
    heads: dict[str, RawHead],
    previous: dict[str, Any],
    allow_shrink: bool = False,
    sizes: dict[str, int] | None = None,
    max_shrink: float = 1.0,
) -> list[str]:
    """Files that were not empty in the previous snapshot (``previous``: name -> ``has_rows``
    and ``size``) and now have no row (empty or header only), or whose bytes (``sizes``) fell
    by more than ``max_shrink``: a file cut short loses its rows even where its table, summed
    over several files (``transactions.csv`` and ``transactions_v2.csv``), hardly shrinks.
    Raises unless ``allow_shrink``, else the warnings to log."""
    lost = [
        f"{name} has no rows (an empty or header-only file) where the previous snapshot had rows"
        for name, head in heads.items()
        if not head.has_rows and previous.get(name, {}).get("has_rows")
    ]
    for name, size in (sizes or {}).items():
        before = int(previous.get(name, {}).get("size") or 0)
        if heads.get(name, RawHead((), False)).has_rows and size < (1 - max_shrink) * before:
            lost.append(
                f"{name} has {size:,} bytes where the previous snapshot had {before:,} (down "
                f"{1 - size / before:.0%}, more than the allowed {max_shrink:.0%})"
            )
    if lost and not allow_shrink:
        raise DataLossError(_refusal(lost))
    return lost


def check_tables_kept(
    rows: dict[str, int], previous: dict[str, int], max_shrink: float, allow_shrink: bool = False
) -> list[str]:
    """Tables whose raw rows fell by more than ``max_shrink`` (a share) since the previous
    snapshot; raises unless ``allow_shrink``, else the warnings to log."""
    shrunk = [
        f"{table} has {rows[table]:,} raw rows where the previous snapshot had {before:,} "
        f"(down {1 - rows[table] / before:.0%}, more than the allowed {max_shrink:.0%})"
        for table, before in previous.items()
        if table in rows and before and rows[table] < (1 - max_shrink) * before
    ]
    if shrunk and not allow_shrink:
        raise DataLossError(_refusal(shrunk))
    return shrunk


#: The files of an increment that a month always brings, and the base file holding one month of
#: the same rows (March 2017), the measure of the first increment; members.csv (the month's new
#: profiles) is judged against earlier increments only.
MONTHLY_FILES: dict[str, str | None] = {
    "transactions.csv": "transactions_v2.csv",
    "user_logs.csv": "user_logs_v2.csv",
    "members.csv": None,
}


def usual_month(manifest: dict[str, Any]) -> dict[str, int]:
    """The bytes a month usually brings of each of ``MONTHLY_FILES``, from the silver manifest
    below a new increment: the median over the earlier increments (``increment_bytes``), else
    the size of the base's one-month file; a file with neither is not judged."""
    earlier = manifest.get("increment_bytes", {}).values()
    usual = {}
    for name, base in MONTHLY_FILES.items():
        sizes = sorted(int(month[name]) for month in earlier if month.get(name))
        if sizes:
            usual[name] = sizes[len(sizes) // 2]
        elif base and manifest.get("files", {}).get(base, {}).get("size"):
            usual[name] = int(manifest["files"][base]["size"])
    return usual


def check_increment_kept(
    month: str,
    heads: dict[str, RawHead],
    sizes: dict[str, int],
    usual: dict[str, int],
    max_shrink: float,
    allow_shrink: bool = False,
) -> list[str]:
    """The base files' rules for the files of the increment of ``month`` (``heads``, ``sizes``),
    against what a month usually brings (``usual``, bytes): a file with no row (rule
    ``empty_file``) or with fewer bytes than ``1 - max_shrink`` of the usual (rule
    ``shrunk_file``). Raises ``DataLossError`` unless ``allow_shrink``, else the warnings to
    log. A file of 0 bytes, without even its header, is refused whatever ``allow_shrink``
    (``RawHeaderError``): no table can be read from it."""
    blank = [name for name, size in sorted(sizes.items()) if size == 0]
    if blank:
        raise RawHeaderError(
            f"increment {month}: {', '.join(blank)} is empty (0 bytes, not even its header)"
        )
    lost = []
    for name, before in usual.items():
        if name not in heads:
            continue
        if not heads[name].has_rows:
            lost.append(
                f"increments/{month}/{name} has no rows (rule empty_file: a header-only file) "
                f"where a month usually brings {before:,} bytes of them"
            )
        elif sizes[name] < (1 - max_shrink) * before:
            lost.append(
                f"increments/{month}/{name} has {sizes[name]:,} bytes where a month usually "
                f"brings {before:,} (rule shrunk_file: down {1 - sizes[name] / before:.0%}, more "
                f"than the allowed {max_shrink:.0%})"
            )
    if lost and not allow_shrink:
        raise DataLossError(_refusal(lost, f"the increment of {month} lacks data"))
    return lost


def _refusal(problems: list[str], lead: str = "the new raw snapshot loses data") -> str:
    return (
        f"{lead}:\n  "
        + "\n  ".join(problems)
        + "\nnothing was published; if this is intended, run ingest again with allow_shrink=true"
        " (KKBOX_MAX_SHRINK sets the share a table or a file may shrink by)"
    )


def files_record(snapshot: RawFingerprint, heads: dict[str, RawHead]) -> dict[str, dict[str, Any]]:
    """What a silver manifest keeps of each raw file, for the next run's ``check_files_kept``."""
    return {
        name: {"size": size, "stamp": stamp, "has_rows": heads[name].has_rows}
        for name, (size, stamp) in snapshot.files.items()
    }
