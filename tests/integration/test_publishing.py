"""Issue 21 reproduced on small hand-made raw folders: one snapshot published at once, written
then audited then published, lost data refused, and a lake that keeps its size."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import churn_transform.etl.gold as gold_module
import churn_transform.etl.ingest as ingest_module
import churn_transform.etl.silver.write as silver_write
import churn_transform.lake as lake_module
from churn_transform.etl.audit import AuditError, DataLossError, RawHeaderError
from churn_transform.etl.bronze import bronze_files
from churn_transform.etl.gold import build_gold, gold_summary, read_gold, validate_lake
from churn_transform.etl.ingest import ingest
from churn_transform.etl.retention import collect_garbage
from churn_transform.etl.silver import (
    SOURCES,
    InconsistentSnapshotError,
    read_bucket,
    silver_snapshot,
)
from churn_transform.lake import Lake, LakeLockedError
from churn_transform.schema import RAW_FILES

USERS = [f"{'u' * 40}{i:03d}=" for i in range(12)]


def _rows(name: str, users: list[str]) -> list[str]:
    return {
        "members_v3.csv": [
            f"{u},{1 + i % 5},{20 + i},male,7,20150101" for i, u in enumerate(users)
        ],
        "transactions.csv": [f"{u},41,30,149,149,1,20170115,20170214,0" for u in users],
        "transactions_v2.csv": [f"{u},41,30,149,149,1,20170301,20170331,0" for u in users[::2]],
        "user_logs.csv": [
            f"{u},201701{10 + i % 9},1,0,0,0,5,6,1200.5" for i, u in enumerate(users)
        ],
        "user_logs_v2.csv": [f"{u},20170305,0,1,0,0,3,4,600.0" for u in users],
        "train.csv": [f"{u},{i % 2}" for i, u in enumerate(users)],
        "train_v2.csv": [f"{u},{(i + 1) % 2}" for i, u in enumerate(users)],
        "sample_submission_v2.csv": [f"{u},0" for u in users],
    }[name]


def write_raw(folder: Path, users: list[str] = USERS, **override: str) -> Path:
    """A valid raw folder for ``users``; ``override`` replaces a file's whole text."""
    folder.mkdir(exist_ok=True)
    for name in RAW_FILES:
        key = name.replace(".", "_")
        text = override.get(key)
        if text is None:
            text = ",".join(RAW_FILES[name]) + "\n" + "\n".join(_rows(name, users)) + "\n"
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return write_raw(tmp_path / "raw")


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def _one_snapshot(lake: Lake) -> str:
    """Every reader sees the same, whole silver snapshot; its version."""
    versions = {lake.current_version("silver", table) for table in SOURCES}
    assert len(versions) == 1
    snapshot = silver_snapshot(lake)  # refuses tables that disagree
    members = pd.concat([read_bucket(lake, "members", b) for b in range(snapshot.buckets)])
    assert len(members) == members["msno"].nunique() > 0
    return snapshot.version


class Killed(BaseException):
    """The process dies here (a BaseException: no ``except Exception`` swallows it)."""


def _dies_after(real: Callable[..., object], when: Callable[..., bool] = lambda *a: True):
    def dying(*args: object, **kwargs: object) -> object:
        if when(*args):
            raise Killed
        return real(*args, **kwargs)

    return dying


MOMENTS = {
    "bronze copied": lambda mp: mp.setattr(
        ingest_module, "copy_to_bronze", _dies_after(ingest_module.copy_to_bronze)
    ),
    "some tables compacted": lambda mp: mp.setattr(
        silver_write,
        "compact_bucket",
        _dies_after(silver_write.compact_bucket, lambda table, *a: table == "user_logs"),
    ),
    "all tables written": lambda mp: mp.setattr(
        Lake, "complete", _dies_after(Lake.complete, lambda self, area, *a: area == "silver")
    ),
    "audited": lambda mp: mp.setattr(
        Lake,
        "record_audit",
        _dies_after(Lake.record_audit, lambda self, area, *a: area == "silver"),
    ),
    "pointer staged": lambda mp: mp.setattr(lake_module.os, "replace", _dies_after(os.replace)),
    "silver live, bronze pointer not": lambda mp: mp.setattr(
        Lake, "point", _dies_after(Lake.point, lambda self, area, *a: area == "bronze")
    ),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_kill_at_any_publishing_moment_leaves_one_consistent_snapshot(
    moment: str, raw: Path, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 1: a kill between two tables' pointers left members on one bucket layout and
    user_logs on another; gold then lost most member attributes, and validation passed."""
    first = ingest(lake, str(raw), {}, buckets=2)
    write_raw(raw, USERS + [f"{'w' * 40}{i:03d}=" for i in range(5)])  # a new snapshot
    with monkeypatch.context() as patch:
        MOMENTS[moment](patch)
        with pytest.raises(Killed):
            ingest(lake, str(raw), {}, buckets=3)
    live = _one_snapshot(lake)
    assert live == first.version or moment == "silver live, bronze pointer not"
    _, _, rows = build_gold(lake, "2017-02")
    frame, _ = read_gold(lake, "2017-02")
    assert rows == len(frame) and frame["city"].notna().all()  # every member attribute joined
    assert validate_lake(lake, ["2017-02"]).ok
    second = ingest(lake, str(raw), {}, buckets=3)  # the next run finishes the job
    assert _one_snapshot(lake) == second.version != first.version
    assert sorted(lake.versions("silver", "")) == sorted({first.version, second.version})


def test_gold_and_validation_refuse_tables_of_another_snapshot(raw: Path, lake: Lake) -> None:
    """Finding 1: members of a 4-bucket snapshot read as the 2-bucket one lose 3/4 of users."""
    other = ingest(lake, str(raw), {}, buckets=4)
    write_raw(raw, USERS[:-1])
    live = ingest(lake, str(raw), {}, buckets=2)
    members = lake.path_of(lake.current("silver", "members"))
    lake.fs.rm(members, recursive=True)
    lake.fs.copy(
        lake.path_of(lake.version_url("silver", "members", other.version)), members, recursive=True
    )
    for reader in (lambda: build_gold(lake, "2017-02"), lambda: validate_lake(lake, [])):
        with pytest.raises(InconsistentSnapshotError, match=f"{live.version}/members"):
            reader()


def test_validation_refuses_gold_built_from_another_snapshot(raw: Path, lake: Lake) -> None:
    ingest(lake, str(raw), {}, buckets=2)
    build_gold(lake, "2017-02")
    write_raw(raw, USERS[:-1])
    ingest(lake, str(raw), {}, buckets=2)
    with pytest.raises(InconsistentSnapshotError, match="run gold for 2017-02"):
        validate_lake(lake, ["2017-02"])
    build_gold(lake, "2017-02")
    assert validate_lake(lake, ["2017-02"]).ok


def _swapped(name: str, a: str, b: str) -> str:
    """A raw file with columns ``a`` and ``b`` swapped, header included."""
    header = list(RAW_FILES[name])
    i, j = header.index(a), header.index(b)
    lines = []
    for line in [",".join(RAW_FILES[name]), *_rows(name, USERS)]:
        cells = line.split(",")
        cells[i], cells[j] = cells[j], cells[i]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "a", "b"), [("members_v3.csv", "city", "bd"), ("user_logs.csv", "num_25", "num_100")]
)
def test_swapped_columns_are_refused_before_anything_is_written(
    name: str, a: str, b: str, raw: Path, lake: Lake
) -> None:
    """Finding 2: swapped columns went live (members) or passed silently (user_logs)."""
    good = ingest(lake, str(raw), {}, buckets=2)
    (raw / name).write_text(_swapped(name, a, b))
    with pytest.raises(RawHeaderError, match=rf"{name}: expected columns .*'{a}'.*'{b}'"):
        ingest(lake, str(raw), {}, buckets=2)
    assert _one_snapshot(lake) == good.version
    assert lake.versions("silver", "") == [good.version]


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (",".join([*RAW_FILES["members_v3.csv"], "extra"]), "unexpected \\['extra'\\]"),
        ("msno,city,bd,gender,registered_via", "missing \\['registration_init_time'\\]"),
    ],
)
def test_an_extra_or_missing_column_is_named(
    header: str, named: str, raw: Path, lake: Lake
) -> None:
    """Finding 2: an extra or missing column failed with "Expected 9 columns, got 10"."""
    (raw / "members_v3.csv").write_text(header + "\n")
    with pytest.raises(RawHeaderError, match=rf"members_v3\.csv: .*{named}"):
        ingest(lake, str(raw), {}, buckets=1)


def test_a_snapshot_failing_validation_stays_unpublished_with_its_report(
    raw: Path, lake: Lake
) -> None:
    """Finding 2: bad data was published to silver, failed validation, and stayed current."""
    good = ingest(lake, str(raw), {}, buckets=2)
    rows = _rows("transactions.csv", USERS)
    rows[0] = rows[0].replace(",149,149,", ",149,-149,")  # a negative payment
    (raw / "transactions.csv").write_text(
        ",".join(RAW_FILES["transactions.csv"]) + "\n" + "\n".join(rows) + "\n"
    )
    with pytest.raises(AuditError, match="silver.transactions.actual_amount_paid: in_range"):
        ingest(lake, str(raw), {}, buckets=2)
    assert _one_snapshot(lake) == good.version
    (failed,) = [v for v in lake.versions("silver", "") if v != good.version]
    assert lake.audit_of("silver", "", failed)["ok"] is False
    reports = list(Path(lake.uri, "reports", "audit").iterdir())
    assert [json.loads(r.read_text())["ok"] for r in reports if failed in r.name] == [False]


def test_a_gold_version_failing_validation_stays_unpublished(
    raw: Path, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(lake, str(raw), {}, buckets=2)
    good, _, _ = build_gold(lake, "2017-02")
    real = gold_module.cohort_features

    def leaks(*args: object) -> pd.DataFrame:
        return real(*args).assign(days_since_last_log=0.0)  # a listen on the cutoff day

    monkeypatch.setattr(gold_module, "cohort_features", leaks)
    monkeypatch.setattr(gold_module, "FEATURE_VERSION", "test")  # a new gold version
    with pytest.raises(AuditError, match="days_since_last_log"):
        build_gold(lake, "2017-02")
    assert lake.current("gold", "features_2017-02") == good


@pytest.mark.parametrize("text", ["", ",".join(RAW_FILES["transactions_v2.csv"]) + "\n"])
def test_an_emptied_file_stops_the_run_unless_allowed(text: str, raw: Path, lake: Lake) -> None:
    """Finding 3: a header-only or zero-byte transactions_v2.csv was ingested without a word."""
    good = ingest(lake, str(raw), {}, buckets=2)
    (raw / "transactions_v2.csv").write_text(text)
    with pytest.raises(
        DataLossError, match="(?s)transactions_v2.csv has no rows.*allow_shrink=true"
    ):
        ingest(lake, str(raw), {}, buckets=2)
    assert _one_snapshot(lake) == good.version
    allowed = ingest(lake, str(raw), {}, buckets=2, allow_shrink=True)
    assert _one_snapshot(lake) == allowed.version
    assert allowed.warnings and "transactions_v2.csv" in allowed.warnings[0]


def test_files_shrinking_beyond_the_share_stop_the_run_before_anything_is_written(
    raw: Path, lake: Lake
) -> None:
    good = ingest(lake, str(raw), {}, buckets=2)
    write_raw(raw, USERS[:4])  # every file keeps a third of its rows
    with pytest.raises(DataLossError, match=r"members_v3.csv has [\d,]+ bytes where .* had"):
        ingest(lake, str(raw), {}, buckets=2)
    assert _one_snapshot(lake) == good.version
    assert lake.versions("silver", "") == [good.version]
    assert ingest(lake, str(raw), {}, buckets=2, max_shrink=0.8).warnings == []


def test_files_cut_to_one_row_are_refused_though_their_tables_hardly_shrink(
    raw: Path, lake: Lake
) -> None:
    """Issue 30, finding 6: the three v2 files cut to one data row each were ingested silently."""
    good = ingest(lake, str(raw), {}, buckets=2)
    for name in ("train_v2.csv", "transactions_v2.csv", "user_logs_v2.csv"):
        lines = (raw / name).read_text().splitlines(keepends=True)
        (raw / name).write_text("".join(lines[:2]))
    with pytest.raises(DataLossError) as refused:
        ingest(lake, str(raw), {}, buckets=2)
    for name in ("train_v2.csv", "transactions_v2.csv", "user_logs_v2.csv"):
        assert f"{name} has" in str(refused.value)
    assert _one_snapshot(lake) == good.version


def test_a_killed_run_leaves_nothing_behind_after_the_next(
    raw: Path, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 4: interrupted runs left partial versions and scatter files for ever."""
    good = ingest(lake, str(raw), {}, buckets=2)
    write_raw(raw, USERS[:-1])
    with monkeypatch.context() as patch:
        MOMENTS["some tables compacted"](patch)
        with pytest.raises(Killed):
            ingest(lake, str(raw), {}, buckets=2)
    assert len(lake.versions("silver", "")) == 2  # the partial one, with its scatter files
    assert list(Path(lake.uri).glob("silver/*/*/_scatter"))
    lake.fs.pipe_file(lake.path_of(lake.url("silver", "CURRENT.0badf00d.new")), b"x")
    second = ingest(lake, str(raw), {}, buckets=2)
    assert lake.versions("silver", "") == sorted([good.version, second.version])
    assert sorted(p.name for p in Path(lake.uri, "silver").iterdir()) == sorted(
        ["CURRENT", good.version, second.version]
    )  # the pointer's leftover temporary file is gone too
    assert not list(Path(lake.uri).glob("**/_scatter"))


def test_gc_keeps_the_newest_versions_and_what_a_model_was_trained_on(
    raw: Path, lake: Lake
) -> None:
    """Finding 4: every snapshot was kept, with a full bronze copy."""
    hashes = []
    for n in range(4):
        write_raw(raw, USERS[: 12 - n])
        ingest(lake, str(raw), {}, buckets=1, max_shrink=0.9)
        hashes.append(build_gold(lake, "2017-02")[1])
    report = collect_garbage(lake, keep=2, referenced={hashes[0]})
    kept_hashes = {
        gold_summary(lake, lake.version_url("gold", "features_2017-02", version))["hash"]
        for version in lake.versions("gold", "features_2017-02")
    }
    assert kept_hashes == {hashes[0], hashes[2], hashes[3]}
    assert len(lake.versions("silver", "")) == 3  # the two newest and the model's
    assert len(lake.versions("bronze", "raw")) == 3
    assert report.removed and report.bytes_freed > 0
    _one_snapshot(lake)
    assert read_gold(lake, "2017-02")[1] == hashes[3]


def test_gc_keeps_published_versions_over_a_newer_one_never_audited(raw: Path, lake: Lake) -> None:
    """Issue 30, finding 9: gc kept a never-audited snapshot and deleted a published one."""
    published = []
    for n in range(2):
        write_raw(raw, USERS[: 12 - n])
        published.append(ingest(lake, str(raw), {}, buckets=1, max_shrink=0.9).version)
    # a complete copy of the newest that was never audited nor made current, written last
    newest = Path(lake.path_of(lake.url("silver", published[-1])))
    stray = newest.with_name(newest.name[:-4] + "beef")
    shutil.copytree(newest, stray)
    for marker in (lake_module.AUDIT, lake_module.PUBLISHED):
        (stray / marker).unlink(missing_ok=True)
    (stray / lake_module.SUCCESS).write_text(str(time.time() + 60))
    assert lake.has_version("silver", "", stray.name)
    collect_garbage(lake, keep=2)
    assert lake.versions("silver", "") == sorted(published)
    _one_snapshot(lake)


def test_an_unchanged_raw_file_is_copied_to_bronze_once(
    raw: Path, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 4: each snapshot kept a full bronze copy of every raw file."""
    first = ingest(lake, str(raw), {}, buckets=2)
    with (raw / "members_v3.csv").open("a") as handle:
        handle.write(f"{'w' * 43}=,1,30,female,7,20160101\n")
    monkeypatch.setattr(ingest_module, "_tasks_read", lambda url: False)  # workers read bronze
    second = ingest(lake, str(raw), {}, buckets=2)
    copied = sorted(p.name for p in Path(lake.uri, "bronze", "raw", second.snapshot).iterdir())
    assert [name for name in copied if name.endswith(".csv")] == ["members_v3.csv"]
    files = bronze_files(lake, second.snapshot)
    assert files["members_v3.csv"].endswith(f"{second.snapshot}/members_v3.csv")
    assert files["train.csv"].endswith(f"{first.snapshot}/train.csv")
    assert second.tables["members"].rows_out == first.tables["members"].rows_out + 1
    collect_garbage(lake, keep=1)  # the old snapshot goes, the copy the new one uses stays
    assert Path(lake.path_of(files["train.csv"])).exists()
    assert lake.versions("silver", "") == [second.version]


def test_a_second_ingest_is_refused_while_one_runs(raw: Path, lake: Lake) -> None:
    """Finding 4: two ingests at once, and one deleted the other's working folder."""
    with lake.lock("ingest"):
        lake.fs.makedirs(lake.path_of(lake.url("silver", "being-written", "members")))
        with pytest.raises(LakeLockedError, match="being written by ingest"):
            ingest(lake, str(raw), {}, buckets=1)
        assert lake.versions("silver", "") == ["being-written"]  # untouched
