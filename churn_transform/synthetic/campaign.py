"""A past retention campaign: a random share of one cohort offered a discount, the rest a control.

At the campaign cohort's cutoff each cohort user is offered with chance ``share``, from a random
stream of its own; an offered user's churn decision is drawn from the oracle's probability with
the offer (``oracle.offer_change``), every other user's from the one without. Both decisions
take the same uniform number the decision took before campaigns existed: the control's decisions
are exactly those of a run without the campaign, and an offered user's differs only when the
offer moved the probability across that number. The history after the cutoff follows the
decisions taken, so from there on it is another draw than without the campaign.

The campaign log (``CAMPAIGN_FILE``, in the raw folder, as a retention team would hand it over)
has a row per cohort user: the campaign, the day of the offer (the cutoff) and whether the user
was offered (``treated`` 1) or held out (0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_transform.dates import month_bounds, to_yyyymmdd

# the log's contract lives in schema, re-exported for the generator
from churn_transform.schema import CAMPAIGN_COLUMNS as CAMPAIGN_COLUMNS
from churn_transform.schema import CAMPAIGN_FILE as CAMPAIGN_FILE

#: The cohort of the past campaign: March 2017, the latest labelled cohort of the base files.
CAMPAIGN_COHORT = "2017-03"

#: The random stream of the chunk (``decisions.stream``) that assigns the offers.
CAMPAIGN_STREAM = 15


def campaign_id(cohort: str) -> str:
    """The campaign's name in the log: ``retention-`` and its cohort month."""
    return f"retention-{cohort}"


@dataclass(frozen=True)
class Campaign:
    """The campaign of a chunk: offers to a ``share`` of the users of ``cohort``."""

    share: float
    rng: np.random.Generator
    cohort: str = CAMPAIGN_COHORT

    def assign(self, cohort: str, users: int) -> np.ndarray:
        """Who of the ``users`` of ``cohort`` is offered (none outside the campaign's cohort)."""
        if cohort != self.cohort:
            return np.zeros(users, dtype=bool)
        return self.rng.random(users) < self.share


def campaign_log(decided: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """The log rows of the campaign of ``cohort`` from the oracle's decisions of that cohort
    (``msno`` and ``treated`` per user)."""
    offered = int(to_yyyymmdd(np.array([month_bounds(cohort)[0]]))[0])
    return pd.DataFrame(
        {
            "msno": decided["msno"].to_numpy(),
            "campaign_id": campaign_id(cohort),
            "offered_date": offered,
            "treated": decided["treated"].to_numpy(np.int64),
        }
    )
