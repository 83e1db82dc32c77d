"""Kills ``bentoml serve``'s whole process group with SIGKILL seconds after it starts, as an
operator's ``kill -9 -PGID`` does, and says whether a worker still serves the port afterwards.

    python loadtests/orphans.py                     # after `make demo`: kills at 1 to 3 s
    python loadtests/orphans.py --after 2.5 3 --wait 15

Each try serves the store's champion (the settings' stores, as ``make serve``) on a free port on
127.0.0.1 in a session of its own, kills the group after ``--after`` seconds, waits ``--wait``
seconds, then asks ``/readyz``; a worker still answering is an orphan, which it then stops.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENTOML = str(Path(sys.executable).parent / "bentoml")

from loadtests.servers import free_port  # noqa: E402


def _orphan(port: int) -> int | None:
    """The pid listening on ``port``, if any (from /proc, as ``ss -ltnp`` would say)."""
    listening = f":{port:04X} "
    inodes = {
        line.split()[9]
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for line in Path(table).read_text().splitlines()[1:]
        if listening in line and line.split()[3] == "0A"
    }
    for process in Path("/proc").glob("[0-9]*"):
        try:
            links = {os.readlink(fd) for fd in (process / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(process.name)
    return None


def one_try(after: float, wait: float) -> bool:
    """Whether a worker outlived its server killed ``after`` seconds from its start."""
    port = free_port()
    server = subprocess.Popen(
        [BENTOML, "serve", "service:ChurnService", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(after)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    time.sleep(wait)
    try:
        serving = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        serving = False
    if (orphan := _orphan(port)) is not None:
        os.kill(orphan, signal.SIGKILL)
    return serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--after", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0])
    parser.add_argument("--wait", type=float, default=15.0)
    args = parser.parse_args()
    outlived = 0
    for after in args.after:
        serving = one_try(after, args.wait)
        outlived += serving
        print(f"killed after {after} s: {'a worker still serves' if serving else 'port closed'}")
    print(f"{outlived} of {len(args.after)} tries left a worker serving")


if __name__ == "__main__":
    main()
