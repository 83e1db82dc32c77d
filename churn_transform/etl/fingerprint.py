"""The raw folder as found: each raw file's size and fingerprint, and a snapshot id from them.

The id names the bronze copy and the silver version, so an unchanged raw folder is not ingested
twice, and comparing two snapshots tells whether the files changed during an ingest.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass

from fsspec.core import url_to_fs

from churn_transform.schema import RAW_FILES


@dataclass(frozen=True)
class RawFingerprint:
    """The raw files as found: name -> (bytes, fingerprint), and an id derived from them."""

    files: dict[str, tuple[int, str]]

    @property
    def id(self) -> str:
        text = json.dumps(self.files, sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()[:16]

    @property
    def bytes(self) -> int:
        return sum(size for size, _ in self.files.values())


def fingerprint_of(raw_url: str, storage_options: dict[str, object]) -> RawFingerprint:
    """Fingerprint the eight raw files (size and modification time or ETag); names a missing one."""
    fs, root = url_to_fs(raw_url, **storage_options)
    files = {}
    for name in RAW_FILES:
        path = posixpath.join(root, name)
        if not fs.exists(path):
            raise FileNotFoundError(f"raw file {name} is missing from {raw_url}")
        info = fs.info(path)
        stamp = (
            info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
        )
        files[name] = (int(info["size"]), str(stamp))
    return RawFingerprint(files)
