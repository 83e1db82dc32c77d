"""Every run parameter that is text is checked where it enters: no path reaches a step unchecked."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from churn_transform.settings import PROJECT_ROOT

ENTRY_POINTS = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]
HOSTILE = "2017-03/../../victim"
#: Free text that never becomes part of a path (a rollback's reason, kept as a tag).
FREE_TEXT = {("rollback", "reason")}
TEXT_PARAMETERS = [
    (entry, name)
    for entry, spec in ENTRY_POINTS.items()
    for name, parameter in spec.get("parameters", {}).items()
    if parameter["type"] == "string" and (entry, name) not in FREE_TEXT
]


def _argv(entry: str, **values: str) -> tuple[str, list[str]]:
    """The module and arguments MLproject's command gives, defaults filled in."""
    spec = ENTRY_POINTS[entry]
    parameters = {name: str(p["default"]) for name, p in spec["parameters"].items()}
    command = shlex.split(spec["command"].format(**{**parameters, **values}))
    assert command[:2] == ["python", "-m"], command
    return command[2], command[3:]


def test_every_entry_point_with_text_parameters_is_covered() -> None:
    covered = {entry for entry, _ in TEXT_PARAMETERS}
    assert {
        "gold",
        "feature",
        "validate",
        "version",
        "train",
        "score",
        "drift",
        "main",
        "ingest",
    } <= covered


@pytest.mark.parametrize(("entry", "name"), TEXT_PARAMETERS)
def test_a_traversing_value_is_refused_naming_its_parameter(
    entry: str,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    victim = tmp_path / "data" / "victim"
    victim.mkdir(parents=True)
    monkeypatch.setenv("KKBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KKBOX_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    module, argv = _argv(entry, **{name: HOSTILE})
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(module).main(argv)
    assert stopped.value.code == 2  # argparse's refusal, before the step does anything
    flag = "--" + name.replace("_", "-")
    assert re.search(f"argument {flag}: .*{re.escape(repr(HOSTILE))}", capsys.readouterr().err)
    assert victim.is_dir() and not (tmp_path / "lake").exists()


@pytest.mark.parametrize("entry", ["generate", "drift", "main"])
def test_the_defaults_pass_the_checks(entry: str) -> None:
    module, argv = _argv(entry)
    importlib.import_module(module)._arguments(argv)
