"""The promotion gate refuses a candidate far below the champion on one segment (issue 16,
point 3), the segment degraded by the generator's behaviour shift, not by editing labels.

With ``shift=1`` from March 2017 the truth turns among auto-renew-off subscribers (their
listening stops meaning they stay: docs/generator.md). The champion learned March; a candidate
trained on February never saw the turn: on March's held-out users it ranks that segment far
worse, and the gate says so even though the overall margin would let it through.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dask
import mlflow
import pandas as pd
import pytest

from churn_transform.etl.gold import build_gold
from churn_transform.etl.ingest import ingest
from churn_transform.lake import Lake
from churn_transform.modelling.training import TrainConfig
from churn_transform.synthetic import GeneratorConfig, generate
from tests.conftest import run_step, step_env, train_arguments

pytestmark = pytest.mark.integration
SMALL = TrainConfig(n_estimators=600, min_child_samples=50)
#: March's users judged (a hash of their msno): the champion never trained on them.
HOLDOUT = 0.5


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shifted")
    config = GeneratorConfig(
        users=40_000, seed=7, log_start="2016-10-01", shift=1.0, shift_start="2017-03"
    )
    generate(config, root / "raw", root / "oracle")
    lake = Lake(str(root / "lake"))
    with dask.config.set(scheduler="threads"):
        ingest(lake, str(root / "raw"), {}, buckets=2)
        for cohort in ("2017-02", "2017-03"):
            build_gold(lake, cohort)
    return root


def _train(root: Path, tmp_path: Path, train_cohort: str, **gate: float) -> str:
    arguments = train_arguments(
        SMALL, train_cohort=train_cohort, holdout=HOLDOUT, min_oracle_share=0.5, **gate
    )
    env = step_env(tmp_path, KKBOX_DATA_DIR=str(root), KKBOX_LAKE_URI=str(root / "lake"))
    return run_step(env, sys.executable, "-m", "steps.train", *arguments)


def test_a_candidate_that_missed_the_shift_in_one_segment_is_refused(
    shifted: Path, tmp_path: Path
) -> None:
    # the champion: 50% of March's users, judged on the other 50%
    assert "is the new champion" in _train(shifted, tmp_path, "2017-03")
    # a candidate from before the shift; margin -1: the overall comparison would promote it
    said = _train(shifted, tmp_path, "2017-02", margin=-1.0)
    assert "version 2 is refused and will not serve: " in said

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("kkbox-churn", "champion").version) == "1"
    refusal = client.get_model_version("kkbox-churn", "2").tags["refusal"]
    assert "auto_renew=off (" in refusal and "below the champion's" in refusal
    assert refusal in said
    segments = {}
    for version in ("1", "2"):
        run = client.get_model_version("kkbox-churn", version).run_id
        table = client.download_artifacts(run, "evaluation/segments.json", str(tmp_path))
        frame = pd.read_json(table, orient="split").set_index(["segment", "value"])
        segments[version] = frame.loc[("auto_renew", "off"), "roc_auc"]
    # the segment the shift turned is where the candidate falls behind, by far
    assert segments["1"] - segments["2"] > 0.1
    assert "holdout" in client.get_run(run).data.tags
