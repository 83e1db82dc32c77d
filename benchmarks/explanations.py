"""Prints how far the model's reasons agree with the generator's oracle, on fresh synthetic data.

    python benchmarks/explanations.py --users 20000 --folder /tmp/explain-bench

Generates a dataset, builds gold for February and March, fits the model on February as
``train`` does (the library's TrainConfig), explains every March user and compares the reasons
with the oracle's own terms (``churn_transform.synthetic.agreement``): the median per-user rank
correlation over the oracle's drivers and how often the top reason is the oracle's largest term.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dask

from churn_transform.etl.gold import build_gold
from churn_transform.etl.ingest import ingest
from churn_transform.lake import Lake
from churn_transform.modelling.explanation import explain
from churn_transform.modelling.training import TrainConfig, evaluate, fit
from churn_transform.schema import FEATURES
from churn_transform.synthetic import GeneratorConfig, generate
from churn_transform.synthetic.agreement import agreement
from churn_transform.synthetic.report import oracle_terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args()
    data = args.folder / "data"
    generate(GeneratorConfig(users=args.users, seed=args.seed), data / "raw", data / "oracle")
    lake = Lake(str(args.folder / "lake"))
    with dask.config.set(scheduler="threads"):
        ingest(lake, str(data / "raw"), {}, buckets=1)
        gold = {c: build_gold(lake, c)[0] for c in ("2017-02", "2017-03")}
    import pandas as pd

    train, held_out = (pd.read_parquet(lake.current("gold", f"features_{c}")) for c in gold)
    fitted = fit(train, TrainConfig())
    terms = oracle_terms(str(data / "oracle"), "2017-03", held_out["msno"])
    assert terms is not None, "the dataset has no oracle terms"
    found = agreement(explain(fitted.model, held_out[list(FEATURES)]).contributions, terms)
    scores = evaluate(fitted.model, held_out, fitted.threshold)
    print(json.dumps({"users": found.users, **found.as_metrics(), "roc_auc": scores["roc_auc"]}))


if __name__ == "__main__":
    main()
