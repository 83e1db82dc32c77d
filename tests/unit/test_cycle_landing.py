"""A cycle starts only on whole months in order (issue #30, 8): every month since the base data
landed, the month's cohort file there, no file of it without a byte; otherwise it stops naming
what is missing, before writing anything."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from steps.cycle import main

CYCLE = (
    "--max-auc-drop 0.03 --max-age-months 6 --retrain-on-drift true --max-client-share 0.5 "
    "--drift-days 30 "
    "--min-segment-users 500 --train-months 2 --holdout 0.3 --margin 0.005 --min-auc 0.6 "
    "--min-oracle-share 0.9 --max-segment-auc-drop 0.05 --env-manager local"
)
COHORT = "msno,is_churn\nAAAA=,0\n"


@pytest.fixture
def raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MLFLOW_RUN_ID", "KKBOX_RAW_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KKBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KKBOX_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    folder = tmp_path / "data" / "raw" / "increments"
    folder.mkdir(parents=True)
    return folder


def _land(raw: Path, month: str, files: dict[str, str]) -> None:
    (raw / month).mkdir()
    for name, text in files.items():
        (raw / month / name).write_text(text)


def _refusal(month: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(["--month", month, *shlex.split(CYCLE)])
    return str(stopped.value.code)


def test_a_month_run_before_the_previous_one_landed_is_refused_naming_it(
    raw: Path, tmp_path: Path
) -> None:
    _land(raw, "2017-05", {"cohort_2017-06.csv": COHORT})
    said = _refusal("2017-05")
    assert (
        f"no increment has landed for 2017-04 (before 2017-05, which needs every month since "
        f"2017-04): {raw}/2017-04/ is missing or empty" in said
    )
    assert not (tmp_path / "lake").exists() and not (tmp_path / "mlflow.db").exists()


def test_an_increment_without_its_cohort_file_is_refused_naming_the_file(raw: Path) -> None:
    _land(raw, "2017-04", {"labels_2017-03.csv": COHORT})
    assert f"{raw}/2017-04/cohort_2017-05.csv is missing" in _refusal("2017-04")


def test_an_increment_file_without_a_byte_is_refused_naming_it(raw: Path) -> None:
    _land(raw, "2017-04", {"cohort_2017-05.csv": COHORT, "user_logs.csv": ""})
    assert _refusal("2017-04").startswith(f"cycle: {raw}/2017-04/user_logs.csv is empty (0 bytes)")
