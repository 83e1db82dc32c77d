"""The MLproject read as MLflow documents it, and the run opened for a step run in its caller's
process with MLflow's tags of a project run (``steps._mlproject``), without MLflow's private
modules."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml

from churn_transform.settings import PROJECT_ROOT
from steps._mlproject import EntryPoint, entry_point, open_run
from tests.conftest import tracking_store

ENTRY_POINTS = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]
GOLD = EntryPoint(
    "gold",
    {"cohort": {"type": "string", "default": "2017-03"}, "seed": {"type": "float", "default": 1}},
    "python -m steps.gold --cohort {cohort} --seed {seed}",
)


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_entry_point_reads_as_a_step_with_its_defaults(name: str) -> None:
    spec = entry_point(PROJECT_ROOT, name)
    words = spec.argv(spec.values({}))
    assert words[:2] == ["python", "-m"] and words[2].startswith("steps."), words
    defaults = {n: str(p["default"]) for n, p in ENTRY_POINTS[name].get("parameters", {}).items()}
    assert words == ENTRY_POINTS[name]["command"].format(**defaults).split()


def test_given_values_replace_the_defaults_and_others_are_appended() -> None:
    values = GOLD.values({"cohort": "2017-04", "extra": 2})
    assert values == {"cohort": "2017-04", "seed": "1", "extra": "2"}
    assert GOLD.argv(values) == [
        *("python", "-m", "steps.gold"),
        *("--cohort", "2017-04", "--seed", "1", "--extra", "2"),
    ]


def test_a_value_reaches_the_command_as_one_word_whatever_it_holds() -> None:
    values = GOLD.values({"cohort": "2017-04; rm -rf ~"})
    assert GOLD.argv(values)[4] == "2017-04; rm -rf ~"
    assert values["cohort"] == "'2017-04; rm -rf ~'"  # logged as MLflow logs it


def test_a_parameter_without_default_or_value_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(
        "entry_points:\n  score:\n    parameters:\n      cohort: string\n"
        "    command: python -m steps.score --cohort {cohort}\n"
    )
    with pytest.raises(ValueError, match="entry point 'score': no value for cohort"):
        entry_point(tmp_path, "score").values({})


@pytest.mark.parametrize("kind", ["path", "uri"])
def test_a_type_mlflow_would_resolve_is_refused(tmp_path: Path, kind: str) -> None:
    (tmp_path / "MLproject").write_text(
        f"entry_points:\n  score:\n    parameters:\n      data: {{type: {kind}, default: x}}\n"
        "    command: python -m steps.score --data {data}\n"
    )
    with pytest.raises(ValueError, match=f"parameter 'data' has type '{kind}'"):
        entry_point(tmp_path, "score")


def test_an_unknown_entry_point_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="MLproject has no entry point 'nope'"):
        entry_point(PROJECT_ROOT, "nope")


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[mlflow.MlflowClient]:
    uri = tracking_store(tmp_path / "mlflow.db")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(None)


def _git(folder: Path, *arguments: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    done = subprocess.run(
        ["git", *identity, "-C", str(folder), *arguments], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_run_carries_mlflow_s_tags_of_a_project_run_and_its_parameters(
    tracking: mlflow.MlflowClient, tmp_path: Path
) -> None:
    repo, project = tmp_path / "repo", tmp_path / "repo" / "project"
    project.mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "remote", "add", "origin", "https://someone:s3cret@git.example.com/kkbox.git")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    values = GOLD.values({"cohort": "2017-04"})
    with mlflow.start_run() as parent:
        run = tracking.get_run(open_run(project, GOLD, values, "0"))
    assert run.info.run_name == "gold" and run.data.params == values
    tags = {k: v for k, v in run.data.tags.items() if k != "mlflow.user"}
    assert tags == {
        "mlflow.runName": "gold",
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": f"file://{repo.resolve()}#project",
        "mlflow.source.git.commit": _git(repo, "rev-parse", "HEAD"),
        "mlflow.source.git.repoURL": "https://git.example.com/kkbox.git",
        "mlflow.project.entryPoint": "gold",
        "mlflow.parentRunId": parent.info.run_id,
    }
    assert run.data.tags["mlflow.user"]


def test_outside_a_repository_the_source_is_the_project_s_path(
    tracking: mlflow.MlflowClient, tmp_path: Path
) -> None:
    run = tracking.get_run(open_run(tmp_path, GOLD, GOLD.values({}), "0"))
    assert run.data.tags["mlflow.source.name"] == str(tmp_path)
    assert not {"mlflow.source.git.commit", "mlflow.parentRunId"} & set(run.data.tags)
