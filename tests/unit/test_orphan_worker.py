"""A worker whose server died before the worker could ask to die with it stops by itself
(issue 30: killing `bentoml serve`'s process group seconds after start left a worker serving)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from churn_transform.settings import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

# the parent starts the child, says both pids, and dies at once; the child asks only after
CHILD = (
    "import os, pathlib, sys, time; from churn_transform.serving.runtime import die_with_parent; "
    "parent = int(sys.argv[2]); time.sleep(0.5); "
    "die_with_parent(parent=parent); pathlib.Path(sys.argv[1]).write_text(str(os.getppid()))"
)
PARENT = (
    "import os, subprocess, sys; "
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2], str(os.getpid())]); "
    "print(child.pid, flush=True); os._exit(0)"
)


def _run(tmp_path: Path, child: str) -> tuple[Path, int]:
    survived = tmp_path / "survived"
    with subprocess.Popen(
        [sys.executable, "-c", PARENT, child, str(survived)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
    return survived, pid


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_an_orphan_stops_when_it_finds_its_server_gone(tmp_path: Path) -> None:
    survived, pid = _run(tmp_path, CHILD)
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert not survived.exists()  # it stopped at the check, before going on to serve


def test_without_the_server_s_pid_an_orphan_is_not_noticed(tmp_path: Path) -> None:
    """What the check adds: the same child, not told its server's pid, goes on."""
    survived, pid = _run(tmp_path, CHILD.replace("parent=parent", "parent=None"))
    deadline = time.monotonic() + 20
    while not survived.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survived.exists()
