"""The service's read of the online store without Feast: ids back from Feast's entity keys, a few
ids of a cohort, and the refusal of unknown ids, over SQLite tables laid out as Feast writes
them (``tests/integration/test_feature_store.py`` checks the layout against Feast itself)."""

from __future__ import annotations

import sqlite3
import struct
from contextlib import closing
from pathlib import Path

import pytest

from churn_transform.schema import EXAMPLE_RECORD, FEATURES
from churn_transform.serving.online_store import (
    EXAMPLE_IDS,
    OnlineFeatures,
    SqliteStore,
    UnknownCohortError,
    UnknownIdsError,
    entity_key,
    msno_of,
)

PROJECT = "kkbox"


def _value(value: float | str | None) -> bytes:
    """A serialized ``feast.types.Value``: a double, a short string or null."""
    if value is None:
        return b"\x98\x01\x00"
    if isinstance(value, str):
        return b"\x12" + bytes([len(value)]) + value.encode()
    return b"\x29" + struct.pack("<d", value)


def feast_sqlite(path: Path, cohorts: dict[str, tuple[str, list[str]]]) -> SqliteStore:
    """A SQLite online store holding, for each cohort, its view with the example's features
    under every id given: ``{cohort: (view, ids)}``."""
    store = SqliteStore(str(path), PROJECT)
    with closing(sqlite3.connect(path)) as connection, connection:
        for view, ids in cohorts.values():
            connection.execute(
                f'CREATE TABLE "{PROJECT}_{view}" (entity_key BLOB, feature_name TEXT, value BLOB)'
            )
            connection.executemany(
                f'INSERT INTO "{PROJECT}_{view}" VALUES (?, ?, ?)',
                [
                    (entity_key(msno), name, _value(EXAMPLE_RECORD[name]))
                    for msno in ids
                    for name in FEATURES
                ],
            )
    for cohort, (view, _) in cohorts.items():
        store.point(cohort, view)
    return store


IDS = [f"{letter * 43}=" for letter in "abcde"]


@pytest.fixture
def online(tmp_path: Path) -> OnlineFeatures:
    cohorts = {"2017-03": ("march_v1", IDS[:2]), "2017-04": ("april_v1", IDS[2:])}
    return OnlineFeatures(feast_sqlite(tmp_path / "online.db", cohorts), ttl=60)


@pytest.mark.parametrize("msno", [IDS[0], "a", "é" * 30, ""])
def test_an_entity_key_gives_its_id_back(msno: str) -> None:
    assert msno_of(entity_key(msno)) == msno


@pytest.mark.parametrize(
    "key",
    [
        b"",
        entity_key(IDS[0])[:-1],  # cut short
        entity_key(IDS[0]) + b"x",  # longer than it says
        entity_key(IDS[0]).replace(b"msno", b"msnx"),  # another entity
        b"\xff" * 60,
    ],
)
def test_other_bytes_are_no_id(key: bytes) -> None:
    assert msno_of(key) is None


def test_some_ids_are_of_the_newest_cohort_or_the_one_asked(online: OnlineFeatures) -> None:
    assert set(online.some_ids(10)) == set(IDS[2:])
    assert online.some_ids(1, "2017-03")[0] in IDS[:2]
    assert len(online.some_ids(2)) == 2


def test_some_ids_of_a_cohort_not_served_is_the_unknown_cohort(
    online: OnlineFeatures, tmp_path: Path
) -> None:
    with pytest.raises(UnknownCohortError, match="2017-05 is not in the feature store"):
        online.some_ids(1, "2017-05")
    with pytest.raises(UnknownCohortError, match="no cohort was loaded"):
        OnlineFeatures(SqliteStore(str(tmp_path / "none.db"), PROJECT), ttl=60).some_ids(1)


def test_features_of_known_ids_are_the_store_s(online: OnlineFeatures) -> None:
    found = online.features([IDS[3], IDS[2]])
    assert [row["msno"] for row in found] == [IDS[3], IDS[2]]
    assert found[0] == {**EXAMPLE_RECORD, "msno": IDS[3]}


def test_unknown_ids_are_refused_naming_them_where_ids_come_from_and_some_known(
    online: OnlineFeatures,
) -> None:
    with pytest.raises(UnknownIdsError) as refused:
        online.features([IDS[2], "nobody", IDS[0]])  # IDS[0] is March's
    assert refused.value.ids == ["nobody", IDS[0]]
    said = str(refused.value)
    assert said.startswith(f"unknown subscriber ids in cohort 2017-04: nobody, {IDS[0]}. ")
    assert "the materialize step (mlflow run . -e materialize)" in said
    examples = said.split(": e.g. ")[1].rstrip(".").split(", ")
    assert len(examples) == EXAMPLE_IDS and set(examples) == set(IDS[2:])
