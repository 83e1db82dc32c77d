"""Servers of this project started as local processes on 127.0.0.1, for the tests, the load
tests and the benchmarks: a free port, and a server (``bentoml serve`` of the service unless
told otherwise) started on it, awaited until its ``/readyz`` answers, and stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
#: ``bentoml serve`` of the project's service; ``--host`` and ``--port`` are added.
SERVICE = (str(Path(sys.executable).parent / "bentoml"), "serve", "service:ChurnService")
#: The same champion behind ``baseline.py``'s bare app (Starlette on uvicorn).
BARE_APP = (sys.executable, str(ROOT / "loadtests" / "baseline.py"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 when asked (nothing holds it for the caller)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[Any], timeout: float = 10.0, group: bool = False) -> None:
    """SIGTERM, then SIGKILL if ``process`` is still there after ``timeout`` seconds; with
    ``group``, to its whole process group (it leads a session of its own), workers included."""

    def send(number: signal.Signals) -> None:
        if not group:
            process.send_signal(number)  # nothing once the process has been waited for
            return
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(process.pid, number)

    send(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


class Server:
    """``command`` with ``--host 127.0.0.1 --port PORT`` added, started in the project's root
    when made, so that several can start at once; ``ready()`` (or entering it as a context
    manager, which gives the URL) waits until ``/readyz`` answers 200, and ``stop()`` (or
    leaving) stops it.

    ``env`` is the server's whole environment (this process's by default); ``port`` a free
    one by default; its output is appended to ``log`` or discarded. With ``session`` it runs in
    a session of its own and is stopped as a process group, its workers with it (the caller may
    also signal ``process.pid``'s group itself). ``ready_within`` and ``stop_within`` are
    seconds: a server that exits or is not ready in time is stopped and raises."""

    def __init__(
        self,
        command: Sequence[str] = SERVICE,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log: Path | None = None,
        session: bool = False,
        ready_within: float = 60.0,
        stop_within: float = 30.0,
    ) -> None:
        self.name = " ".join(Path(part).name for part in command[:2])  # bentoml serve
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log, self.session = log, session
        self.ready_within, self.stop_within = ready_within, stop_within
        with log.open("ab") if log else open(os.devnull, "wb") as output:
            self.process = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=session,
            )

    def ready(self) -> str:
        """The URL, once ``/readyz`` answers 200."""
        deadline = time.monotonic() + self.ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.log.read_text()[-3000:] if self.log else ""
                self.stop()  # its workers, when it leads a group
                raise RuntimeError(
                    f"{self.name} on {self.url} exited with {self.process.returncode}: {said}"
                )
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self.url
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.url} did not become ready in {self.ready_within:g} s")

    def stop(self) -> None:
        stop(self.process, self.stop_within, group=self.session)

    def __enter__(self) -> str:
        return self.ready()

    def __exit__(self, *_: object) -> None:
        self.stop()
