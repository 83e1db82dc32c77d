"""The campaign log read where the raw files are (``churn_transform.etl.campaign_log``): a local
folder and an S3 bucket (moto) alike; none, a missing column, and the newest campaign."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from churn_transform.etl.campaign_log import (
    latest_campaign,
    read_campaign_log,
    read_landed_campaign,
)
from churn_transform.schema import CAMPAIGN_FILE

LOG = (
    "msno,campaign_id,offered_date,treated\n"
    "a,retention-2017-03,20170301,1\n"
    "b,retention-2017-03,20170301,0\n"
    "a,retention-2017-05,20170501,0\n"
)


@pytest.fixture(params=["local", "s3"])
def raw_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, object]]:
    """An empty raw folder: a local one, or a prefix of a fresh bucket of the S3 server."""
    if request.param == "local":
        return str(tmp_path / "raw"), {}
    bucket = request.getfixturevalue("s3_bucket")
    return f"{bucket}/raw", request.getfixturevalue("s3_options")


def _write(url: str, options: dict[str, object], text: str) -> None:
    with fsspec.open(f"{url}/{CAMPAIGN_FILE}", "w", auto_mkdir=True, **options) as handle:
        handle.write(text)


@pytest.mark.integration
def test_the_log_is_read_where_the_raw_files_are(raw_url: tuple[str, dict[str, object]]) -> None:
    url, options = raw_url
    assert read_campaign_log(url, options) is None
    _write(url, options, LOG)
    log = read_campaign_log(url, options)
    assert log is not None and list(log["msno"]) == ["a", "b", "a"]
    campaign, cohort, rows = latest_campaign(log)
    assert (campaign, cohort, list(rows["msno"])) == ("retention-2017-05", "2017-05", ["a"])


@pytest.mark.integration
def test_a_log_without_the_treated_column_is_refused_naming_it(tmp_path: Path) -> None:
    _write(str(tmp_path), {}, "msno,campaign_id,offered_date\na,x,20170301\n")
    with pytest.raises(ValueError, match=f"{CAMPAIGN_FILE} has no column treated"):
        read_campaign_log(str(tmp_path), {})


@pytest.mark.integration
def test_a_played_campaign_is_read_from_its_cohort_s_increment(
    raw_url: tuple[str, dict[str, object]],
) -> None:
    url, options = raw_url
    assert read_landed_campaign(url, options, "2017-05") is None
    played = "msno,campaign_id,offered_date,treated\na,retention-2017-05,20170501,1\n"
    _write(f"{url}/increments/2017-05", options, played + "b,retention-2017-05,20170501,0\n")
    log = read_landed_campaign(url, options, "2017-05")
    assert log is not None and list(log["treated"]) == [1, 0]
    assert read_landed_campaign(url, options, "2017-06") is None
    _write(f"{url}/increments/2017-06", options, played + "b,retention-2017-06,20170601,0\n")
    with pytest.raises(ValueError, match=r"campaigns \['retention-2017-05'\] beside retention-20"):
        read_landed_campaign(url, options, "2017-06")
