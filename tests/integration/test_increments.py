"""Monthly increments (issue 15, point 2): a month landed in ``<raw>/increments/<YYYY-MM>/`` is
added to silver as a layer, without rewriting the history, and the lake then reads exactly as
if everything had been ingested at once.

A generated raw folder is cut in two at 2017-03-15: the base holds what came before, the
increment the rest of March's transactions and listening (with repeats of earlier rows and a
late row), and some members' profiles.
"""

from __future__ import annotations

import os
from pathlib import Path

import dask
import pandas as pd
import pytest

from churn_transform.etl.audit import ChangedIncrementError, DataLossError, RawHeaderError
from churn_transform.etl.gold import build_gold, gold_summary
from churn_transform.etl.ingest import ingest
from churn_transform.etl.retention import collect_garbage
from churn_transform.etl.silver import SOURCES, read_bucket, silver_snapshot
from churn_transform.lake import Lake
from churn_transform.synthetic import GeneratorConfig, generate

BUCKETS = 3
CUT = 20170315


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``whole``: the generated raw folder; ``base``: it before the cut; ``month``: the
    increment of 2017-03 (what ``base`` lacks, plus repeats and a late row)."""
    root = tmp_path_factory.mktemp("increments")
    whole = root / "whole"
    generate(GeneratorConfig(users=1500, seed=5, log_start="2016-11-01"), whole, root / "oracle")
    base, month = root / "base", root / "month"
    for name in os.listdir(whole):
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes((whole / name).read_bytes())
    transactions = _csv(whole / "transactions_v2.csv")
    late = transactions["transaction_date"].astype(int) >= CUT
    _write(transactions[~late], base / "transactions_v2.csv")
    logs = _csv(whole / "user_logs_v2.csv")
    late_logs = logs["date"].astype(int) >= CUT
    _write(logs[~late_logs], base / "user_logs_v2.csv")
    members = _csv(whole / "members_v3.csv")
    _write(members.iloc[: len(members) * 9 // 10], base / "members_v3.csv")
    # the increment: the rest of March, three rows delivered again, the held-back members
    repeats = transactions[~late].head(3)
    _write(pd.concat([transactions[late], repeats]), month / "transactions.csv")
    _write(pd.concat([logs[late_logs], logs[~late_logs].tail(2)]), month / "user_logs.csv")
    _write(members.iloc[len(members) * 9 // 10 :], month / "members.csv")
    return {"whole": whole, "base": base, "month": month}


def _land(raw: Path, month: Path, name: str = "2017-03") -> None:
    target = raw / "increments" / name
    target.mkdir(parents=True, exist_ok=True)
    for path in month.iterdir():
        (target / path.name).write_bytes(path.read_bytes())


def _ingest(lake: Lake, raw: Path) -> str:
    with dask.config.set(scheduler="threads"):
        return ingest(lake, str(raw), {}, buckets=BUCKETS).version


def read_gold_table(lake: Lake, url: str) -> pd.DataFrame:
    return pd.read_parquet(lake.path_of(url), filesystem=lake.fs)


def _table(lake: Lake, table: str) -> pd.DataFrame:
    frame = pd.concat([read_bucket(lake, table, b) for b in range(BUCKETS)], ignore_index=True)
    return frame.sort_values(list(frame.columns), ignore_index=True)


@pytest.fixture(scope="module")
def whole_lake(landed: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = Lake(str(tmp_path_factory.mktemp("whole-lake")))
    _ingest(lake, landed["whole"])
    return lake


def _base(landed: dict[str, Path], tmp_path: Path) -> tuple[Path, Lake]:
    """A raw folder holding the base alone, and an empty lake."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in landed["base"].iterdir():
        (raw / path.name).write_bytes(path.read_bytes())
    return raw, Lake(str(tmp_path / "lake"))


def test_base_then_increment_reads_as_one_ingest_of_everything(
    landed: dict[str, Path], whole_lake: Lake, tmp_path: Path
) -> None:
    raw, lake = _base(landed, tmp_path)
    base_version = _ingest(lake, raw)
    base_parts = {p: p.stat().st_mtime_ns for p in (tmp_path / "lake").rglob("part-*.parquet")}
    _land(raw, landed["month"])
    version = _ingest(lake, raw)

    assert version != base_version
    assert silver_snapshot(lake).layers == (base_version, version)
    for table in SOURCES:
        pd.testing.assert_frame_equal(_table(lake, table), _table(whole_lake, table))
    # the history was not rewritten, and the layer holds the increment's rows only
    assert {p: p.stat().st_mtime_ns for p in base_parts} == base_parts
    added = sum(len(read_bucket(lake, "transactions", b)) for b in range(BUCKETS))
    layer = sum(
        len(read_bucket(lake, "transactions", b, newest_layer_only=True)) for b in range(BUCKETS)
    )
    assert layer == len(_csv(landed["month"] / "transactions.csv"))
    assert layer < added / 5
    with dask.config.set(scheduler="threads"):
        for cohort in ("2017-03", "2017-04"):
            mine, whole = (
                gold_summary(lake, build_gold(lake, cohort)[0])["hash"],
                gold_summary(whole_lake, build_gold(whole_lake, cohort)[0])["hash"],
            )
            assert mine == whole, cohort

    # the same increment again changes nothing: no new version, the same snapshot
    folders = sorted(p.name for p in (tmp_path / "lake" / "silver").iterdir())
    assert _ingest(lake, raw) == version
    assert sorted(p.name for p in (tmp_path / "lake" / "silver").iterdir()) == folders

    # gc keeps what the current snapshot is built on
    collect_garbage(lake, keep=1)
    assert silver_snapshot(lake).layers == (base_version, version)
    pd.testing.assert_frame_equal(_table(lake, "user_logs"), _table(whole_lake, "user_logs"))


def test_a_campaign_log_landed_with_a_month_is_kept_in_bronze_and_read_by_no_table(
    landed: dict[str, Path], whole_lake: Lake, tmp_path: Path
) -> None:
    raw, lake = _base(landed, tmp_path)
    _land(raw, landed["month"])
    member = _csv(landed["month"] / "members.csv")["msno"].iloc[0]
    log = f"msno,campaign_id,offered_date,treated\n{member},retention-2017-03,20170301,1\n"
    (raw / "increments" / "2017-03" / "campaigns.csv").write_text(log)
    _ingest(lake, raw)
    for table in SOURCES:
        pd.testing.assert_frame_equal(_table(lake, table), _table(whole_lake, table))
    copies = list((tmp_path / "lake" / "bronze").rglob("campaigns.csv"))
    assert [copy.read_text() for copy in copies] == [log]


def test_a_failed_increment_leaves_silver_as_it_was(
    landed: dict[str, Path], tmp_path: Path
) -> None:
    raw, lake = _base(landed, tmp_path)
    before = _ingest(lake, raw)
    rows = _table(lake, "transactions")

    _land(raw, landed["month"])
    bad = raw / "increments" / "2017-03" / "transactions.csv"
    text = bad.read_text().splitlines()
    header = text[0].split(",")
    header[1], header[2] = header[2], header[1]
    bad.write_text("\n".join([",".join(header), *text[1:]]) + "\n")
    with pytest.raises(RawHeaderError, match="transactions.csv"):
        _ingest(lake, raw)
    assert lake.current_version("silver", "") == before
    pd.testing.assert_frame_equal(_table(lake, "transactions"), rows)

    bad.write_text(bad.read_text().replace(",".join(header), ",".join(sorted(header)), 1))
    (raw / "increments" / "2017-03" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is not a file of an increment"):
        _ingest(lake, raw)
    assert lake.current_version("silver", "") == before


def test_labels_arrive_with_a_later_month(landed: dict[str, Path], tmp_path: Path) -> None:
    """A cohort listed to score (``sample_submission``, or ``cohort_<month>.csv``) takes its
    labels when ``labels_<month>.csv`` lands; the newest layer's row wins."""
    raw, lake = _base(landed, tmp_path)
    _ingest(lake, raw)
    april = _csv(raw / "sample_submission_v2.csv")
    labels = april.assign(is_churn=[str(i % 2) for i in range(len(april))])
    may = april.head(10).assign(is_churn="0")
    _write(labels, raw / "increments" / "2017-05" / "labels_2017-04.csv")
    _write(may, raw / "increments" / "2017-05" / "cohort_2017-05.csv")
    _ingest(lake, raw)

    table = _table(lake, "labels")
    got = table[table["cohort"] == "2017-04"].set_index("msno")
    assert len(got) == len(april)
    assert got["is_churn"].notna().all()
    expected = labels.set_index("msno")["is_churn"].astype(int)
    assert (got["is_churn"].astype(int) == expected.reindex(got.index)).all()
    later = table[table["cohort"] == "2017-05"]
    assert len(later) == 10 and later["is_churn"].isna().all()
    # gold of both: April now labelled, May still to score (each validated before publishing)
    with dask.config.set(scheduler="threads"):
        april_gold = read_gold_table(lake, build_gold(lake, "2017-04")[0])
        may_gold = read_gold_table(lake, build_gold(lake, "2017-05")[0])
    assert april_gold["is_churn"].notna().all() and len(april_gold) == len(april)
    assert may_gold["is_churn"].isna().all() and len(may_gold) == 10


@pytest.mark.parametrize(
    ("kept", "refusal", "rule"),
    [
        (1, DataLossError, r"increments/2017-03/user_logs.csv has no rows \(rule empty_file"),
        (3, DataLossError, r"user_logs.csv has [\d,]+ bytes where a month usually brings"),
        (0, RawHeaderError, r"increment 2017-03: user_logs.csv is empty \(0 bytes"),
    ],
)
def test_an_increment_short_of_a_month_s_rows_is_refused_naming_the_file_and_the_rule(
    landed: dict[str, Path], tmp_path: Path, kept: int, refusal: type[Exception], rule: str
) -> None:
    """Issue #30, 6: a month's user_logs.csv with its header only (or two rows, or no byte)
    changed most of May's gold and went on to be scored; the increment is judged against what a
    month brings (here the base's one-month user_logs_v2.csv), not against the table's total."""
    raw, lake = _base(landed, tmp_path)
    before = _ingest(lake, raw)
    _land(raw, landed["month"])
    logs = raw / "increments" / "2017-03" / "user_logs.csv"
    logs.write_text("".join(f"{line}\n" for line in logs.read_text().splitlines()[:kept]))
    with pytest.raises(refusal, match=rule):
        _ingest(lake, raw)
    assert lake.current_version("silver", "") == before  # nothing published
    if refusal is DataLossError:
        with dask.config.set(scheduler="threads"):
            report = ingest(lake, str(raw), {}, buckets=BUCKETS, allow_shrink=True)
        assert report.increments == ["2017-03"]
        assert any("user_logs.csv" in warning for warning in report.warnings)


def test_a_later_increment_is_judged_against_the_months_before_it(
    landed: dict[str, Path], tmp_path: Path
) -> None:
    raw, lake = _base(landed, tmp_path)
    _land(raw, landed["month"])
    march = _ingest(lake, raw)
    usual = (landed["month"] / "transactions.csv").stat().st_size
    transactions = _csv(landed["month"] / "transactions.csv")
    _write(
        transactions.head(len(transactions) // 10),
        raw / "increments" / "2017-04" / "transactions.csv",
    )
    with pytest.raises(
        DataLossError, match=f"a month usually brings {usual:,} \\(rule shrunk_file"
    ):
        _ingest(lake, raw)
    assert lake.current_version("silver", "") == march


def test_an_ingested_increment_that_changes_or_goes_is_refused_and_silver_stays(
    landed: dict[str, Path], tmp_path: Path
) -> None:
    raw, lake = _base(landed, tmp_path)
    _land(raw, landed["month"])
    first = _ingest(lake, raw)
    members = raw / "increments" / "2017-03" / "members.csv"

    # the same bytes written again (a new modification time): nothing to refuse, the month
    # is taken again as a layer of its own
    members.write_bytes(members.read_bytes())
    os.utime(members, (1_000_000_000, 1_000_000_000))
    ingested = _ingest(lake, raw)
    assert ingested != first

    # other rows in a month already ingested: its predictions were made from the first ones
    rows = members.read_text().splitlines()
    members.write_text("\n".join([rows[0], *rows[2:]]) + "\n")
    with pytest.raises(ChangedIncrementError, match=r"increment of 2017-03 changed.*members\.csv"):
        _ingest(lake, raw)
    assert lake.current_version("silver", "") == ingested

    # a month ingested whose folder is gone: refused unless silver may lose it
    for path in (raw / "increments" / "2017-03").iterdir():
        path.unlink()
    (raw / "increments" / "2017-03").rmdir()
    with pytest.raises(DataLossError, match="2017-03 were ingested but have not landed"):
        _ingest(lake, raw)
    assert lake.current_version("silver", "") == ingested
