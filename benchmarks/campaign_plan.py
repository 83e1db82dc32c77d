"""Prints the campaign action plan's forecast beside what its contacted subscribers truly save,
for the list ranked by uplift and the list ranked by churn probability (issue 35, point 3).

    python benchmarks/campaign_plan.py --users 20000 --workspace /tmp/uplift-20k

The data, churn model and uplift model are ``benchmarks/uplift.py``'s (the same workspace is
reused): the churn model trained on February 2017, the uplift model on the March campaign's users
outside ``--holdout``. On the held-out users, ``modelling.plan.action_plan`` writes the list both
ways (``KKBOX_OFFER_COST``, ``KKBOX_OFFER_ACCEPTANCE``, ``KKBOX_CONTROL_SHARE``); each plan's
forecast (its ``PlanSummary``) is printed beside the oracle's truth for the subscribers it
contacts: their true saves (``churn_probability - churn_probability_offered``) and the net value
of those saves at the uplift rule's lifetime value, less the offers' cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.uplift import TRAIN_COHORT, build_lake, split_campaign  # noqa: E402
from churn_transform.etl.gold import read_gold  # noqa: E402
from churn_transform.modelling.plan import action_plan, expected_months  # noqa: E402
from churn_transform.modelling.training import TrainConfig, fit  # noqa: E402
from churn_transform.modelling.uplift import (  # noqa: E402
    TREATED,
    UpliftConfig,
    fit_uplift,
    save_value,
)
from churn_transform.schema import FEATURES, LABEL  # noqa: E402
from churn_transform.settings import Settings  # noqa: E402
from churn_transform.synthetic.campaign import CAMPAIGN_COHORT  # noqa: E402


def held_out_scores(workspace: Path, users: int, seed: int, holdout: float) -> pd.DataFrame:
    """The held-out campaign users as ``score`` gives them (probability, plan columns), with
    their uplift and the oracle's true effect."""
    lake = build_lake(workspace, users, seed, 0.5)
    train, judged, effect = split_campaign(workspace, lake, holdout)
    churn = fit(read_gold(lake, TRAIN_COHORT)[0], TrainConfig()).model
    uplift = fit_uplift(
        train[list(FEATURES)], train[TREATED], train[LABEL].to_numpy(), UpliftConfig()
    )
    features = judged[list(FEATURES)]
    return pd.DataFrame(
        {
            "msno": judged["msno"],
            "churn_probability": churn.predict_proba(features)[:, 1],
            "churn": False,
            "last_list_price": judged["last_list_price"],
            "last_plan_days": judged["last_plan_days"],
            "days_to_expiry": judged["days_to_expiry"],
            "uplift": uplift.predict(features),
            "true_effect": effect,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--workspace", type=Path, help="kept and reused (default: a temporary one)")
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as temporary:
        workspace = args.workspace or Path(temporary)
        workspace.mkdir(parents=True, exist_ok=True)
        users = held_out_scores(workspace, args.users, args.seed, args.holdout)
    truth = users.set_index("msno")["true_effect"]
    months = expected_months(1 - float(users["churn_probability"].mean()))
    worth = pd.Series(save_value(users) * months, index=users["msno"].to_numpy())
    print(f"{len(users):,} held-out campaign users; a save is worth {months:.1f} months of plan")
    for frame in (users.drop(columns=["uplift", "true_effect"]), users.drop(columns="true_effect")):
        listed, plan = action_plan(
            frame,
            CAMPAIGN_COHORT,
            settings.offer_cost,
            settings.offer_acceptance,
            settings.control_share,
        )
        contacted = listed.loc[listed["contact"], "msno"].to_numpy()
        saves = float(truth[contacted].sum())
        earned = float(np.sum(truth[contacted] * worth[contacted])) - plan.cost
        print(f"{plan.said}\n  oracle: true saves {saves:,.1f}, true net value {earned:,.0f} NTD")


if __name__ == "__main__":
    main()
