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

A campaign the platform planned is played as its log says (``PlayedCampaigns``): a retention
team played the plan (``modelling.plan.contact_log``) and handed back its log, and the users it
offered (``treated`` 1) decide on the probability with the offer, on the same uniform number.
Its log is handed over with the data of the campaign's month: the increment of that month.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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


#: A played campaign's id when a retention team names it as the platform does.
_CAMPAIGN_ID = re.compile(r"retention-(\d{4}-(?:0[1-9]|1[0-2]))")


class CampaignLogError(ValueError):
    """A campaign log that cannot be played: a bad row, a cohort without an increment, a user
    twice in one campaign, or none of its offered users among the cohort's."""


class Offers(Protocol):
    """Who of a cohort's users a campaign offers."""

    def assign(self, cohort: str, msno: np.ndarray) -> np.ndarray:
        """Whether each of the cohort's users ``msno`` is offered."""
        ...


@dataclass(frozen=True)
class Campaign:
    """The campaign of a chunk: offers to a ``share`` of the users of ``cohort``."""

    share: float
    rng: np.random.Generator
    cohort: str = CAMPAIGN_COHORT

    def assign(self, cohort: str, msno: np.ndarray) -> np.ndarray:
        """Who of the users ``msno`` of ``cohort`` is offered (none outside the campaign's
        cohort): a draw per user, in their order."""
        if cohort != self.cohort:
            return np.zeros(len(msno), dtype=bool)
        return self.rng.random(len(msno)) < self.share


@dataclass(frozen=True)
class PlayedCampaigns:
    """Campaigns played as their logs say: per cohort, the msno offered (``treated`` 1), as
    ASCII bytes. Small and picklable, every chunk gets it whole and finds its own users in it: a
    user's chunk is known only once the chunk has drawn its users."""

    offered: dict[str, np.ndarray]

    @classmethod
    def of(cls, logs: dict[str, pd.DataFrame]) -> PlayedCampaigns:
        """From each cohort's log rows (``played_logs``)."""
        return cls(
            {
                cohort: np.sort(rows.loc[rows["treated"] == 1, "msno"].to_numpy().astype("S"))
                for cohort, rows in logs.items()
            }
        )

    def assign(self, cohort: str, msno: np.ndarray) -> np.ndarray:
        """Whether each of the users ``msno`` of ``cohort`` is offered (no draw)."""
        offered = self.offered.get(cohort)
        if offered is None:
            return np.zeros(len(msno), dtype=bool)
        return np.isin(np.asarray(msno).astype("S"), offered)


def played_logs(log: pd.DataFrame, playable: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The rows of a campaign log (``CAMPAIGN_COLUMNS``, every column read as text) per cohort
    they play, typed, in the log's order. A row's cohort is the month its ``campaign_id`` names
    (``retention-YYYY-MM``), else its ``offered_date``'s. Raises ``CampaignLogError`` naming the row
    and field of a bad row, a cohort not among ``playable``, or a user twice in one cohort."""
    missing = [column for column in CAMPAIGN_COLUMNS if column not in log.columns]
    if missing:
        raise CampaignLogError(f"the campaign log has no column {', '.join(missing)}")
    rows = log[list(CAMPAIGN_COLUMNS)].fillna("").astype(str).reset_index(drop=True)
    _refuse_first(rows["msno"].str.strip() == "", rows, "msno", "is empty")
    ascii = rows["msno"].map(str.isascii).astype(bool)
    _refuse_first(~ascii, rows, "msno", "is not a KKBox id (ASCII)")
    _refuse_first(~rows["treated"].isin(["0", "1"]), rows, "treated", "is not 0 or 1")
    day = pd.to_datetime(rows["offered_date"], format="%Y%m%d", errors="coerce")
    _refuse_first(day.isna(), rows, "offered_date", "is not a day like 20170401")
    month = day.dt.strftime("%Y-%m")
    named = rows["campaign_id"].str.extract(_CAMPAIGN_ID.pattern, expand=False)
    _refuse_first(
        named.notna() & (named != month),
        rows,
        "campaign_id",
        "names another month than its offered_date",
    )
    cohort = named.fillna(month)
    months = ", ".join(playable) or "no month (months=0)"
    _refuse_first(
        ~cohort.isin(list(playable)),
        rows,
        "offered_date",
        "is in a month whose campaign "
        "cannot be played: a played campaign's log is handed over with the increment of its "
        f"month, and this run writes increments for {months}",
    )
    typed = rows.assign(
        offered_date=rows["offered_date"].astype(np.int64),
        treated=rows["treated"].astype(np.int64),
    )
    repeated = typed.assign(cohort=cohort).duplicated(["cohort", "msno"])
    _refuse_first(repeated, rows, "msno", "is already in the campaign of its month, above")
    return {
        str(month_of): part.reset_index(drop=True)
        for month_of, part in typed.groupby(cohort.to_numpy(), sort=True)
    }


def _refuse_first(bad: pd.Series, rows: pd.DataFrame, field: str, said: str) -> None:
    """Raise ``CampaignLogError`` naming the first row where ``bad`` holds, its ``field`` and
    value."""
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CampaignLogError(f"campaign log row {row}: {field} {rows[field].iloc[row]!r} {said}")


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
