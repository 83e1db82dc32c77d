"""Training on the pipeline's gold tables: a time split, calibrated, near the oracle, no leakage."""

from __future__ import annotations

from pathlib import Path

import dask
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.features import cohort_features
from churn_transform.gold import build_gold
from churn_transform.ingest import SOURCES, ingest, read_bucket
from churn_transform.lake import Lake
from churn_transform.synthetic import GeneratorConfig, generate
from churn_transform.training import TrainConfig, evaluate, fit


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Path]:
    root = tmp_path_factory.mktemp("training")
    generate(GeneratorConfig(users=12_000, seed=5, log_start="2016-10-01"), root / "raw",
             root / "oracle")  # fmt: skip
    lake = Lake(str(root / "lake"))
    with dask.config.set(scheduler="threads"):
        ingest(lake, str(root / "raw"), {}, buckets=2)
        for cohort in ("2017-02", "2017-03"):
            build_gold(lake, cohort)
    return lake, root


def _gold(lake: Lake, cohort: str) -> pd.DataFrame:
    return pd.read_parquet(lake.current("gold", f"features_{cohort}"))


@pytest.fixture(scope="module")
def trained(lake: tuple[Lake, Path]):  # type: ignore[no-untyped-def]
    return fit(_gold(lake[0], "2017-02"), TrainConfig(n_estimators=600))


def test_near_the_oracle_on_the_later_cohort(lake: tuple[Lake, Path], trained) -> None:  # type: ignore[no-untyped-def]
    march = _gold(lake[0], "2017-03")
    scores = evaluate(trained.model, march, trained.threshold)
    oracle = pd.read_csv(lake[1] / "oracle" / "oracle.csv")
    oracle = oracle[oracle["cohort"] == "2017-03"].set_index("msno").loc[march["msno"]]
    best_auc = roc_auc_score(oracle["is_churn"], oracle["churn_probability"])
    best_loss = log_loss(oracle["is_churn"], oracle["churn_probability"])
    # A loose bound at this small size: it catches a broken pipeline, not a weak tuning.
    assert scores["roc_auc"] > best_auc - 0.05
    assert scores["log_loss"] < best_loss * 1.25
    assert 0.0 < trained.threshold < 1.0 and 0 < scores["recall"] <= 1


def test_probabilities_are_calibrated(lake: tuple[Lake, Path], trained) -> None:  # type: ignore[no-untyped-def]
    scores = evaluate(trained.model, _gold(lake[0], "2017-03"), trained.threshold)
    assert scores["mean_probability"] == pytest.approx(scores["churn_rate"], abs=0.02)


def test_the_month_s_own_data_would_inflate_the_score(lake: tuple[Lake, Path], trained) -> None:  # type: ignore[no-untyped-def]
    lake_, _ = lake
    tables = [{name: read_bucket(lake_, name, b) for name in SOURCES} for b in range(2)]

    def gold(cohort: str, cutoff: pd.Timestamp | None) -> pd.DataFrame:
        parts = [cohort_features(t["labels"], t["transactions"], t["user_logs"], t["members"],
                                 cohort, cutoff) for t in tables]  # fmt: skip
        return pd.concat(parts, ignore_index=True)

    leaky = fit(gold("2017-02", pd.Timestamp("2017-03-01")), TrainConfig(n_estimators=600))
    leaky_auc = evaluate(leaky.model, gold("2017-03", pd.Timestamp("2017-04-01")), 0.5)["roc_auc"]
    honest_auc = evaluate(trained.model, _gold(lake_, "2017-03"), 0.5)["roc_auc"]
    assert leaky_auc > 0.97  # the renewals that define the label are in the features
    assert honest_auc < leaky_auc - 0.03
    # the default cutoff is the one the pipeline's gold tables were built with
    pd.testing.assert_frame_equal(
        gold("2017-03", None).sort_values("msno", ignore_index=True),
        _gold(lake_, "2017-03").sort_values("msno", ignore_index=True),
    )
