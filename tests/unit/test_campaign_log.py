"""The newest campaign of a campaign log (``churn_transform.etl.campaign_log``); reading one
from a folder or S3 is in tests/integration/test_campaign_log.py."""

from __future__ import annotations

import pandas as pd
import pytest

from churn_transform.etl.campaign_log import latest_campaign


def test_the_newest_campaign_is_the_one_offered_last_with_its_cohort() -> None:
    log = pd.DataFrame(
        {
            "msno": ["a", "b", "a"],
            "campaign_id": ["retention-2017-05", "retention-2017-03", "retention-2017-03"],
            "offered_date": [20170501, 20170301, 20170301],
            "treated": [1, 0, 1],
        }
    )
    campaign, cohort, rows = latest_campaign(log)
    assert (campaign, cohort, list(rows["msno"])) == ("retention-2017-05", "2017-05", ["a"])


def test_an_offer_day_that_is_not_a_day_is_refused_naming_its_row() -> None:
    log = pd.DataFrame(
        {"msno": ["a", "b"], "campaign_id": ["x", "x"], "offered_date": [20170301, 2017]}
    )
    with pytest.raises(ValueError, match="row 1: offered_date 2017 is not a day"):
        latest_campaign(log.assign(treated=[1, 0]))
