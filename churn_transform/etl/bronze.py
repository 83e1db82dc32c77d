"""Bronze: the raw files copied as they are into ``bronze/raw/<snapshot>``, each file once.

A file unchanged since the current bronze snapshot (same size and modification time or ETag) is
not copied again: the new snapshot's ``_manifest.json`` names the folder that holds each file.
The copy streams between any two filesystems; between local folders it is a kernel-side copy,
or, when the conversion running beside it reads the raw files itself, a direct-I/O copy that
leaves the page cache to the conversion.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import posixpath
import shutil

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from churn_transform.etl.audit import ChangedIncrementError, DataLossError
from churn_transform.etl.fingerprint import RawFingerprint
from churn_transform.etl.increments import INCREMENTS, Increment
from churn_transform.lake import Lake, TableNotFoundError
from churn_transform.schema import RAW_FILES

_DIRECT_CHUNK = 16 * 2**20
MANIFEST = "_manifest.json"


def copy_to_bronze(
    lake: Lake,
    raw_url: str,
    storage_options: dict[str, object],
    snapshot: RawFingerprint,
    cached: bool = True,
) -> dict[str, str]:
    """Stream the raw files that changed, as they are, into ``bronze/raw/<snapshot>`` (not made
    current: ``ingest`` points to it with the silver it feeds); the URL of every raw file's copy.

    ``cached=False`` says nothing reads the copy soon (the conversion reads the raw files): a
    local copy then bypasses the page cache (``copy_uncached``).
    """
    previous = bronze_manifest(lake)

    def copy(url: str) -> None:
        source_fs, root = url_to_fs(raw_url, **storage_options)
        lake.fs.makedirs(lake.path_of(url), exist_ok=True)
        local = isinstance(source_fs, LocalFileSystem) and isinstance(lake.fs, LocalFileSystem)
        manifest = {}
        for name in RAW_FILES:
            size, stamp = snapshot.files[name]
            known = previous.get(name, {})
            if (known.get("size"), known.get("stamp")) == (size, stamp):
                manifest[name] = known  # unchanged: the copy already in the lake serves
                continue
            manifest[name] = {"size": size, "stamp": stamp, "folder": snapshot.id}
            source, target = posixpath.join(root, name), posixpath.join(lake.path_of(url), name)
            if local and not cached:
                copy_uncached(source, target)
            elif local:  # a kernel-side copy (copy_file_range/sendfile), not through Python
                shutil.copyfile(source, target)
            else:
                with source_fs.open(source, "rb") as src, lake.fs.open(target, "wb") as dst:
                    while block := src.read(16 * 2**20):
                        dst.write(block)
        lake.fs.pipe_file(
            posixpath.join(lake.path_of(url), MANIFEST), json.dumps(manifest).encode()
        )

    lake.publish("bronze", "raw", snapshot.id, copy, point=False)
    return bronze_files(lake, snapshot.id)


def copy_increment_to_bronze(
    lake: Lake, increment: Increment, storage_options: dict[str, object]
) -> str:
    """Copy a monthly increment's files, as they are, into
    ``bronze/increments/<month>-<id>/`` (once); the folder's URL."""

    def copy(url: str) -> None:
        source_fs, root = url_to_fs(increment.url, **storage_options)
        lake.fs.makedirs(lake.path_of(url), exist_ok=True)
        for name in increment.files:
            target = posixpath.join(lake.path_of(url), name)
            source = posixpath.join(root, name)
            with source_fs.open(source, "rb") as src, lake.fs.open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 16 * 2**20)

    version = f"{increment.month}-{increment.id}"
    return lake.publish("bronze", INCREMENTS, version, copy, point=False)


def check_increments_kept(
    lake: Lake,
    ingested: dict[str, str],
    landed: list[Increment],
    storage_options: dict[str, object],
    allow_shrink: bool = False,
) -> None:
    """Refuse landed increments that are not the ones the lake ingested. ``ingested`` is the
    live silver's month -> increment id. A month whose files now differ from the bronze copy
    made when it was ingested raises ``ChangedIncrementError`` naming the files (files only
    touched again, the same bytes, pass); a month ingested that has not landed any more raises
    ``DataLossError`` unless ``allow_shrink``."""
    by_month = {increment.month: increment for increment in landed}
    gone = sorted(set(ingested) - set(by_month))
    if gone and not allow_shrink:
        raise DataLossError(
            f"the increments of {', '.join(gone)} were ingested but have not landed any more "
            "(their folders are gone); put them back, or pass allow_shrink to let silver lose them"
        )
    for month, known in sorted(ingested.items()):
        increment = by_month.get(month)
        if increment is None or increment.id == known:
            continue
        copy = lake.path_of(lake.version_url("bronze", INCREMENTS, f"{month}-{known}"))
        changed = _changed_files(lake, copy, increment, storage_options)
        if changed:
            raise ChangedIncrementError(
                f"the increment of {month} changed after it was ingested ({', '.join(changed)} "
                f"differ from the copy ingested, {lake.fs.unstrip_protocol(copy)}): its "
                "predictions and realized quality were made from that copy. Put those files "
                f"back in {increment.url}, or take the new data into a new lake (KKBOX_LAKE_URI)"
            )


def _changed_files(
    lake: Lake, copy: str, increment: Increment, storage_options: dict[str, object]
) -> list[str]:
    """The names of ``increment``'s files whose bytes are not those of the bronze copy in
    ``copy`` (a file in one of the two only counts as changed; the lake's own files there, the
    manifest among them, start with an underscore)."""
    names = (posixpath.basename(path) for path in lake.fs.ls(copy, detail=False))
    copied = {name for name in names if not name.startswith("_")}
    source_fs, root = url_to_fs(increment.url, **storage_options)
    changed = set(increment.files) ^ copied
    for name in set(increment.files) & copied:
        ours, theirs = posixpath.join(copy, name), posixpath.join(root, name)
        same_size = lake.fs.size(ours) == increment.files[name][0]
        if not same_size or _digest(lake.fs, ours) != _digest(source_fs, theirs):
            changed.add(name)
    return sorted(changed)


def _digest(fs: AbstractFileSystem, path: str) -> str:
    with fs.open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def bronze_manifest(lake: Lake, version: str | None = None) -> dict[str, dict[str, object]]:
    """Raw file name -> size, stamp and the bronze folder holding it, of the current bronze
    snapshot (or ``version``); empty when there is none (or it predates manifests)."""
    try:
        version = version or lake.current_version("bronze", "raw")
    except TableNotFoundError:
        return {}
    path = posixpath.join(lake.path_of(lake.version_url("bronze", "raw", version)), MANIFEST)
    return dict(json.loads(lake.fs.cat_file(path))) if lake.fs.exists(path) else {}


def bronze_files(lake: Lake, version: str) -> dict[str, str]:
    """The URL of each raw file of bronze ``version``, wherever its copy lies."""
    manifest = bronze_manifest(lake, version)
    return {
        name: lake.url("bronze", "raw", str(manifest.get(name, {}).get("folder", version)), name)
        for name in RAW_FILES
    }


def copy_uncached(source: str, target: str) -> None:
    """Copy a local file with direct I/O (``O_DIRECT``): the copy's pages neither fill the page
    cache nor wait in it to be written back, so they do not slow the conversion running beside
    it.

    Direct writes need aligned, whole-block lengths: every full chunk is written directly, and
    the tail through the cache. Where direct I/O is not supported, a plain copy is made.
    """
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    except (AttributeError, OSError):  # no O_DIRECT (macOS) or not on this filesystem (tmpfs)
        shutil.copyfile(source, target)
        return
    buffer = mmap.mmap(-1, _DIRECT_CHUNK)  # page-aligned, as direct I/O requires
    view = memoryview(buffer)
    try:
        with open(source, "rb", buffering=0) as src:
            while filled := _fill(src, view):
                if filled < _DIRECT_CHUNK:  # the last, partial chunk
                    os.close(fd)
                    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
                os.write(fd, view[:filled])
    finally:
        os.close(fd)
        view.release()
        buffer.close()
    if os.path.getsize(target) != os.path.getsize(source):
        raise OSError(f"copying {source} to {target} wrote {os.path.getsize(target)} bytes")


def _fill(source: io.RawIOBase, view: memoryview) -> int:
    """Read into ``view`` until it is full or the file ends; returns the bytes read."""
    filled = 0
    while filled < len(view) and (read := source.readinto(view[filled:])):
        filled += read
    return filled
