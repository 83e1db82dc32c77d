"""Prints what the segment table with bootstrap intervals costs (``segments.segment_metrics``):
wall and CPU seconds for a judged cohort of each size, one model's table (``train`` builds the
candidate's, and the gate the champion's on the same users).

    python benchmarks/calibration.py --users 2400 12000 120000

The cohort is made up (eight segments of a few values, 7% churn, scores that rank churners
higher); only its size matters to the cost. About 12% of a generated population is a cohort:
2,400 judged users at MLproject's 20,000, 120,000 at a million.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from churn_transform.modelling.bootstrap import RESAMPLES
from churn_transform.modelling.segments import segment_metrics


def _cohort(users: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame(
        {
            "last_payment_method_id": rng.choice([36.0, 38.0, 40.0, 41.0], users),
            "last_plan_days": rng.choice([7.0, 30.0, 90.0], users),
            "last_is_auto_renew": rng.choice([0.0, 1.0], users, p=[0.15, 0.85]),
            "tenure_days": rng.integers(10, 2000, users).astype(float),
            "city": rng.choice([1.0, 5.0, 13.0, 22.0], users),
            "gender": pd.array(rng.choice(["male", "female", None], users), dtype="string"),
            "bd": rng.integers(15, 60, users).astype(float),
            "registered_via": rng.choice([4.0, 7.0, 9.0], users),
        }
    )
    label = (rng.random(users) < 0.07).astype(int)
    probability = np.clip(0.05 + 0.3 * label + rng.normal(0, 0.1, users), 0.001, 0.999)
    return gold, label, probability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[2400, 12000])
    args = parser.parse_args()
    print(f"| judged users | wall s | CPU s |  ({RESAMPLES:,} resamples, 9 cuts of the cohort)")
    print("|---|---|---|")
    for users in args.users:
        gold, label, probability = _cohort(users)
        wall, cpu = time.perf_counter(), time.process_time()
        segment_metrics(gold, label, probability, probability >= 0.2)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"| {users:,} | {wall:.1f} | {cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
