"""Prints the prediction cost of the registered model next to its bare LightGBM Booster.

    python benchmarks/predict.py                       # champion of the settings' MLflow, eval gold
    python benchmarks/predict.py --model-uri models:/kkbox-churn/3 --cohort 2017-03

Single-row latency (median and p99 over ``--repeats`` calls) and rows/s at batches of 64 and
1024 rows, for the full model (ChurnFeatures + LightGBM + calibration, as served) and for the
Booster alone on already-transformed rows. "model, lists" feeds the same model a mapping of
column name to Python list, as the service does with JSON records; "with reasons" is what
``/explain`` adds: every feature's reason (``modelling.explanation``) as JSON records.
Rows are real gold rows.
"""

from __future__ import annotations

import argparse
import time

import mlflow
import numpy as np

from churn_transform.etl.gold import read_gold
from churn_transform.lake import lake_of
from churn_transform.modelling.artifact import load_model
from churn_transform.modelling.explanation import explain
from churn_transform.schema import FEATURES
from churn_transform.settings import Settings


def _timed(call, repeats: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    seconds = np.empty(repeats)
    for i in range(repeats):
        began = time.perf_counter()
        call()
        seconds[i] = time.perf_counter() - began
    return seconds


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--model-uri", default=f"models:/{settings.model_name}@{settings.champion_alias}"
    )
    parser.add_argument("--cohort", default="2017-03")
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = load_model(mlflow.artifacts.download_artifacts(artifact_uri=args.model_uri))
    gold = read_gold(lake_of(settings), args.cohort)[0][list(FEATURES)]
    pipeline = model.pipeline
    transformer, booster = pipeline.named_steps["features"], pipeline.named_steps["model"].booster_
    numeric = transformer.transform(gold)
    # Inputs are sliced before the clock starts: the timings are the model's, not pandas'.
    frames = {n: gold.iloc[:n] for n in (1, 64, 1024)}
    records = {n: {c: frames[n][c].tolist() for c in gold.columns} for n in frames}
    candidates = {
        "full model": lambda n: model.predict_proba(frames[n]),
        "model, lists": lambda n: model.predict_proba(records[n]),
        "bare Booster": lambda n: booster.predict(numeric[:n]),
        "with reasons": lambda n: explain(model, records[n]).records(records[n]),
    }
    print(f"{len(gold):,} gold rows of {args.cohort}; model {args.model_uri}")
    print(f"{'':<14}{'1 row p50 ms':>14}{'1 row p99 ms':>14}{'rows/s @64':>12}{'rows/s @1024':>14}")
    for name, predict in candidates.items():
        single = _timed(lambda p=predict: p(1), args.repeats) * 1000
        rates = []
        for batch in (64, 1024):
            took = _timed(lambda p=predict, b=batch: p(b), max(10, args.repeats // 20))
            rates.append(len(frames[batch]) / np.median(took))
        print(
            f"{name:<14}{np.median(single):>14.3f}{np.percentile(single, 99):>14.3f}"
            f"{rates[0]:>12,.0f}{rates[1]:>14,.0f}"
        )


if __name__ == "__main__":
    main()
