"""The project's MLproject as MLflow documents it, and the run ``mlflow run`` opens for one of its
entry points: what ``_cli.project_step`` needs to run a step in its caller's process.

MLflow has no public API for either but ``mlflow.projects.run``, which starts a new interpreter
for every step; its own code for them is private (``mlflow.projects._project_spec``,
``mlflow.projects.utils``). Both are small and documented: the MLproject format (entry points,
parameters with a type and a default, a command with ``{name}`` placeholders) and the system
tags MLflow gives a project run (``mlflow.source.*``, ``mlflow.project.entryPoint``,
``mlflow.parentRunId``, ``mlflow.user``), so they are written here with public APIs only.
"""

from __future__ import annotations

import getpass
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow
import yaml
from mlflow.entities import Param

#: The parameter types whose values MLflow hands to the command as given. It also knows ``path``
#: (a local path, or a URI it downloads) and ``uri`` (checked): no entry point here uses them.
VERBATIM = ("string", "float")


@dataclass(frozen=True)
class EntryPoint:
    """An entry point of an MLproject: its parameters (name -> type and default, in order) and
    its command."""

    name: str
    parameters: dict[str, dict[str, Any]]
    command: str

    def values(self, given: Mapping[str, object]) -> dict[str, str]:
        """Every parameter's value, the given one else its default, then any other given: each
        shell-quoted, as MLflow puts them into the command and logs them on the run."""
        missing = [n for n, p in self.parameters.items() if n not in given and p["default"] is None]
        if missing:
            raise ValueError(f"entry point {self.name!r}: no value for {', '.join(missing)}")
        values = {n: given[n] if n in given else p["default"] for n, p in self.parameters.items()}
        values.update((name, value) for name, value in given.items() if name not in values)
        return {shlex.quote(name): shlex.quote(str(value)) for name, value in values.items()}

    def argv(self, values: Mapping[str, str]) -> list[str]:
        """The command's words, ``values`` (from ``values``) in its placeholders; any value of a
        parameter it does not declare is appended as ``--name value``, as MLflow does."""
        declared = {name: values[name] for name in self.parameters}
        others = [f"--{name} {value}" for name, value in values.items() if name not in declared]
        return shlex.split(" ".join([self.command.format(**declared), *others]))


def entry_point(project: Path, name: str) -> EntryPoint:
    """Entry point ``name`` of the MLproject in ``project``. A parameter given by its type alone
    has no default; a type MLflow would resolve or check (``path``, ``uri``) is refused."""
    entries = yaml.safe_load((project / "MLproject").read_text())["entry_points"]
    if name not in entries:
        raise ValueError(f"MLproject has no entry point {name!r}")
    parameters: dict[str, dict[str, Any]] = {}
    for parameter, spec in entries[name].get("parameters", {}).items():
        declared = spec if isinstance(spec, dict) else {"type": spec}
        kind = declared.get("type", "string")
        if kind not in VERBATIM:
            raise ValueError(f"entry point {name!r}: parameter {parameter!r} has type {kind!r}")
        parameters[parameter] = {"type": kind, "default": declared.get("default")}
    return EntryPoint(name, parameters, entries[name]["command"])


def open_run(project: Path, entry: EntryPoint, values: Mapping[str, str], experiment: str) -> str:
    """A new run of ``entry`` in ``experiment``, as ``mlflow run`` opens one: named after the
    entry point, with the system tags of a project run, the active run (if any) as its parent,
    and ``values`` (from ``EntryPoint.values``) as its parameters; its id."""
    tags = {
        "mlflow.user": _user(),
        "mlflow.source.type": "PROJECT",
        "mlflow.project.entryPoint": entry.name,
        **_source_tags(project),
    }
    if (active := mlflow.active_run()) is not None:
        tags["mlflow.parentRunId"] = active.info.run_id
    client = mlflow.MlflowClient()
    run_id: str = client.create_run(experiment, tags=tags, run_name=entry.name).info.run_id
    client.log_batch(run_id, params=[Param(name, value) for name, value in values.items()])
    return run_id


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        return "unknown"


def _source_tags(project: Path) -> dict[str, str]:
    """The source of a project run: its git repository as a ``file://`` URL (``#`` the project's
    folder in it, unless it is the repository's root), the commit checked out and the first
    remote's URL without credentials; outside a repository, or without git, its path alone."""
    try:
        top, commit = _git(project, "rev-parse", "--show-toplevel", "HEAD").splitlines()
    except (OSError, subprocess.CalledProcessError, ValueError):
        return {"mlflow.source.name": str(project)}
    folder = project.resolve().relative_to(Path(top).resolve()).as_posix()
    tags = {
        "mlflow.source.name": f"file://{top}" + ("" if folder == "." else f"#{folder}"),
        "mlflow.source.git.commit": commit,
    }
    try:  # exits 1 when there is no remote
        remotes = _git(project, "config", "--get-regexp", r"^remote\..*\.url$").splitlines()
    except subprocess.CalledProcessError:
        remotes = []
    if remotes:
        tags["mlflow.source.git.repoURL"] = _without_credentials(remotes[0].split(" ", 1)[1])
    return tags


def _git(project: Path, *arguments: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(project), *arguments], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _without_credentials(url: str) -> str:
    """``url`` without a user and token (``https://user:token@host/repo``): it becomes a tag
    anyone who can read the run can see."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url  # no credentials, or an SSH remote (git@host:repo)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
