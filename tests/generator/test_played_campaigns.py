"""A campaign the platform planned, played in the synthetic world: its offered users decide with
the offer on the draw they had without it, the files before its month stay as they were, and
its log is handed over with its month's increment."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_transform.schema import CAMPAIGN_COLUMNS, CAMPAIGN_FILE, RAW_FILES
from churn_transform.synthetic.campaign import PlayedCampaigns, played_logs
from tests.generator.conftest import Dataset, make

CONFIG = {"users": 3000, "seed": 11, "log_start": "2016-11-01", "chunk_users": 1600, "months": 2}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.csv"))
    }


def _log(without: Dataset, cohort: str) -> pd.DataFrame:
    """A plan's log over the cohort's users of ``without``: a quarter not targeted (not in the
    log), a quarter held out as control, half contacted."""
    oracle = without.oracle()
    users = oracle.loc[oracle["cohort"] == cohort, "msno"].sort_values(ignore_index=True)
    kind = np.arange(len(users)) % 4
    listed = users[kind > 0]
    return pd.DataFrame(
        {
            "msno": listed,
            "campaign_id": f"retention-{cohort}",
            "offered_date": int(cohort.replace("-", "") + "01"),
            "treated": (kind[kind > 0] > 1).astype(int),
        }
    ).reset_index(drop=True)


@pytest.fixture(scope="module")
def without(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make(tmp_path_factory.mktemp("without"), **CONFIG)


def _played(root: Path, log: pd.DataFrame, **config: object) -> Dataset:
    root.mkdir(parents=True, exist_ok=True)
    log.to_csv(root / "log.csv", index=False)
    return make(root, **{**CONFIG, **config}, campaign_log=str(root / "log.csv"))


@pytest.fixture(scope="module")
def april(tmp_path_factory: pytest.TempPathFactory, without: Dataset) -> Dataset:
    return _played(tmp_path_factory.mktemp("april"), _log(without, "2017-04"))


def _cohort(data: Dataset, cohort: str) -> pd.DataFrame:
    oracle = data.oracle()
    return oracle[oracle["cohort"] == cohort].set_index("msno").sort_index()


def test_the_base_files_are_byte_for_byte_those_of_a_run_without(
    without: Dataset, april: Dataset
) -> None:
    before, after = _digests(without.root / "raw"), _digests(april.root / "raw")
    for name in RAW_FILES:
        assert after[name] == before[name], name
    assert CAMPAIGN_FILE not in after  # the past campaign's log: none was asked for


def test_control_and_untargeted_users_decide_as_without(without: Dataset, april: Dataset) -> None:
    log = _log(without, "2017-04").set_index("msno")
    before, after = _cohort(without, "2017-04"), _cohort(april, "2017-04")
    assert after.index.equals(before.index)
    pd.testing.assert_series_equal(after["churn_probability"], before["churn_probability"])
    untreated = ~after.index.isin(log.index[log["treated"] == 1])
    assert untreated.sum() > 0.4 * len(after)
    pd.testing.assert_series_equal(after["is_churn"][untreated], before["is_churn"][untreated])
    for cohort in ("2017-02", "2017-03"):
        pd.testing.assert_frame_equal(
            _cohort(april, cohort)[before.columns], _cohort(without, cohort)
        )


def test_offered_users_decide_on_the_offered_probability_with_the_same_draw(
    without: Dataset, april: Dataset
) -> None:
    log = _log(without, "2017-04").set_index("msno")
    after = _cohort(april, "2017-04")
    before = _cohort(without, "2017-04")["is_churn"]
    offered = log.index[log["treated"] == 1]
    assert after["treated"].to_dict() == {m: int(m in set(offered)) for m in after.index}
    treated = after.loc[offered]
    # churned with the offer when u < p_offered, without it when u < p: one draw u for both
    saving = treated["churn_probability_offered"] < treated["churn_probability"]
    assert (treated["is_churn"][saving] <= before[offered][saving]).all()
    assert (treated["is_churn"][~saving] >= before[offered][~saving]).all()
    assert (treated["is_churn"] != before[offered]).sum() > 0  # the offer moved some
    assert april.summary.played_offers == {"2017-04": len(offered)}
    assert april.summary.label_mismatches == 0


def test_the_log_is_handed_over_with_the_increment_of_its_month(
    without: Dataset, april: Dataset
) -> None:
    handed = pd.read_csv(april.root / "raw" / "increments" / "2017-04" / CAMPAIGN_FILE)
    pd.testing.assert_frame_equal(handed, _log(without, "2017-04"))
    assert tuple(handed.columns) == CAMPAIGN_COLUMNS
    assert not (april.root / "raw" / "increments" / "2017-05" / CAMPAIGN_FILE).exists()


def test_a_campaign_of_a_further_cohort_leaves_the_months_before_it(
    without: Dataset, tmp_path: Path
) -> None:
    may = _played(tmp_path, _log(without, "2017-05"))
    before, after = _digests(without.root / "raw"), _digests(may.root / "raw")
    changed = {name for name in before if before[name] != after[name]}
    # April's listening rows are those of a run without; only its drawn quirk of days over
    # 86,400 s is drawn anew (the draw runs over every further month's rows)
    assert {n for n in changed if not n.startswith("increments/2017-05/")} <= {
        "increments/2017-04/user_logs.csv"
    }
    logs = [pd.read_csv(d.root / "raw/increments/2017-04/user_logs.csv") for d in (without, may)]
    pd.testing.assert_frame_equal(
        logs[0].drop(columns="total_secs"), logs[1].drop(columns="total_secs")
    )
    assert "increments/2017-05/campaigns.csv" in after
    for cohort in ("2017-02", "2017-03", "2017-04"):
        earlier = _cohort(may, cohort)
        pd.testing.assert_frame_equal(
            earlier[["churn_probability", "is_churn"]],
            _cohort(without, cohort)[["churn_probability", "is_churn"]],
        )
        assert not earlier["treated"].any()
    assert may.summary.played_offers == {"2017-05": int(_log(without, "2017-05")["treated"].sum())}


def test_two_processes_play_it_as_one(without: Dataset, april: Dataset, tmp_path: Path) -> None:
    two = _played(tmp_path, _log(without, "2017-04"), processes=2)
    assert _digests(two.root / "raw") == _digests(april.root / "raw")
    assert _digests(two.root / "oracle") == _digests(april.root / "oracle")


def test_a_log_of_another_dataset_is_refused(without: Dataset, tmp_path: Path) -> None:
    other = _log(without, "2017-04").assign(msno=lambda log: log["msno"].str[::-1])
    with pytest.raises(ValueError, match="none of the .* users the campaign of 2017-04 offered"):
        _played(tmp_path, other)
    assert not (tmp_path / "raw").exists()


def _text(**rows: list[str]) -> pd.DataFrame:
    base = {"msno": ["a", "b"], "campaign_id": ["retention-2017-04"] * 2}
    base |= {"offered_date": ["20170401"] * 2, "treated": ["1", "0"]}
    return pd.DataFrame(base | rows)


def test_a_log_is_split_per_cohort_in_its_order_and_typed() -> None:
    log = pd.DataFrame(
        {
            "msno": ["a", "b", "a", "c"],
            "campaign_id": [
                "retention-2017-05",
                "retention-2017-04",
                "spring",
                "retention-2017-04",
            ],
            "offered_date": ["20170501", "20170401", "20170415", "20170401"],
            "treated": ["1", "0", "0", "1"],
        }
    )
    logs = played_logs(log, ["2017-04", "2017-05"])
    assert sorted(logs) == ["2017-04", "2017-05"]
    assert logs["2017-04"]["msno"].tolist() == ["b", "a", "c"]  # "spring": its day's month
    assert logs["2017-04"]["offered_date"].tolist() == [20170401, 20170415, 20170401]
    assert logs["2017-04"].dtypes["treated"] == np.int64
    played = PlayedCampaigns.of(logs)
    assert played.assign("2017-04", np.array(["a", "b", "c", "d"])).tolist() == [
        False,
        False,
        True,
        False,
    ]
    assert played.assign("2017-06", np.array(["c"])).tolist() == [False]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"treated": ["1", "yes"]}, "row 1: treated 'yes' is not 0 or 1"),
        ({"msno": ["a", ""]}, "row 1: msno '' is empty"),
        ({"msno": ["é", "b"]}, "row 0: msno 'é' is not a KKBox id"),
        (
            {"offered_date": ["2017-04-01", "20170401"]},
            "row 0: offered_date '2017-04-01' is not a day",
        ),
        (
            {"offered_date": ["20170401", "20170501"]},
            "row 1: campaign_id 'retention-2017-04' names another month",
        ),
        ({"msno": ["a", "a"]}, "row 1: msno 'a' is already in the campaign of its month"),
        (
            {"campaign_id": ["retention-2017-03"] * 2, "offered_date": ["20170301"] * 2},
            r"row 0: offered_date '20170301' is in a month whose campaign cannot be played: .* "
            "increments for 2017-04, 2017-05",
        ),
    ],
)
def test_a_bad_row_is_named_with_its_field(rows: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        played_logs(_text(**rows), ["2017-04", "2017-05"])


def test_without_further_months_no_campaign_can_be_played() -> None:
    with pytest.raises(ValueError, match=r"increments for no month \(months=0\)"):
        played_logs(_text(), [])


def test_a_log_without_a_column_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="campaign log has no column treated"):
        played_logs(_text().drop(columns="treated"), ["2017-04"])
