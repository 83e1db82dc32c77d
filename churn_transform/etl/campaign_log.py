"""A retention campaign's log in the raw folder (``campaigns.csv``: a row per user of the
campaign, offered or held out as the control), read where the raw files are, a folder or an
s3:// prefix; the real KKBox files have none. The log of a campaign played from the platform's
own plan lands with its cohort's increment (``<raw>/increments/<cohort>/campaigns.csv``)."""

from __future__ import annotations

import posixpath

import pandas as pd
from fsspec.core import url_to_fs

from churn_transform.etl.increments import INCREMENTS
from churn_transform.schema import CAMPAIGN_COLUMNS, CAMPAIGN_FILE


def read_campaign_log(raw_url: str, storage_options: dict[str, object]) -> pd.DataFrame | None:
    """The campaign log under ``raw_url``, or None when there is none; raises ValueError naming
    a missing column."""
    fs, root = url_to_fs(raw_url, **storage_options)
    path = posixpath.join(root, CAMPAIGN_FILE)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as handle:
        log = pd.read_csv(handle, dtype={"msno": str, "campaign_id": str})
    missing = [column for column in CAMPAIGN_COLUMNS if column not in log.columns]
    if missing:
        raise ValueError(f"{raw_url}/{CAMPAIGN_FILE} has no column {', '.join(missing)}")
    return log


def latest_campaign(log: pd.DataFrame) -> tuple[str, str, pd.DataFrame]:
    """The newest campaign of ``log`` (by its offer day): its id, its cohort (the month of the
    offer, ``YYYY-MM``) and its rows."""
    if log.empty:
        raise ValueError(f"the campaign log ({CAMPAIGN_FILE}) has no rows")
    offered = pd.to_datetime(log["offered_date"].astype(str), format="%Y%m%d", errors="coerce")
    if offered.isna().any():
        row = int(offered.isna().to_numpy().argmax())
        raise ValueError(
            f"campaign log row {row}: offered_date {log['offered_date'].iloc[row]} is not "
            "a day like 20170301"
        )
    newest = str(log["campaign_id"].iloc[int(offered.to_numpy().argmax())])
    rows = log[log["campaign_id"] == newest].reset_index(drop=True)
    cohort = offered[log["campaign_id"] == newest].min().strftime("%Y-%m")
    return newest, cohort, rows


def read_landed_campaign(
    raw_url: str, storage_options: dict[str, object], cohort: str
) -> pd.DataFrame | None:
    """The log of the campaign played on ``cohort``, landed with its increment, or None when
    none landed; raises ValueError naming a missing column, an offer day that is not a day, or
    a second campaign in the one log."""
    folder = posixpath.join(raw_url.rstrip("/"), INCREMENTS, cohort)
    log = read_campaign_log(folder, storage_options)
    if log is None:
        return None
    campaign, _, rows = latest_campaign(log)  # checks every offer day
    if len(rows) != len(log):
        others = sorted(set(log["campaign_id"].astype(str)) - {campaign})
        raise ValueError(
            f"{folder}/{CAMPAIGN_FILE} holds the campaigns {others} beside {campaign}: "
            "a landed log is one campaign's"
        )
    return log
