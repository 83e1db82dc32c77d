"""The feature store against its real online stores: Feast's SQLite (embedded) and a real
``redis-server``. Feast applies the definitions and materializes a cohort; lookups by id answer
the gold values exactly, name the unknown ids, and a failed load leaves the previous version."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn_transform.etl import feature_store as fs
from churn_transform.schema import EXAMPLE_RECORD, FEATURES
from churn_transform.serving.online_store import OnlineFeatures, UnknownCohortError, online_store
from churn_transform.settings import Settings

pytestmark = pytest.mark.integration
COHORT = "2017-04"


@pytest.fixture(params=["sqlite", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    kind = request.param
    redis = request.getfixturevalue("redis_server") if kind == "redis" else "unused:0"
    return Settings(
        feature_repo=str(tmp_path / "feature_store"),
        online_store=kind,
        redis_connection=redis,
        # one Feast project per test: the Redis server is shared by the session
        feature_project=f"t{uuid.uuid4().hex[:10]}",
    )


def gold_rows(rows: int, seed: int) -> pd.DataFrame:
    """Gold-like rows: the example record with every number drawn anew, some nulls."""
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame([EXAMPLE_RECORD] * rows)
    gold["msno"] = [f"{seed:04d}{i:040d}" for i in range(rows)]
    for name in FEATURES:
        if name != "gender":
            gold[name] = rng.gamma(2.0, 10.0, rows)
    gold.loc[gold.index % 3 == 0, "days_since_last_cancel"] = np.nan
    gold["gender"] = pd.array(rng.choice(["male", "female", None], rows), dtype="string")
    return gold


def source(tmp_path: Path, gold: pd.DataFrame, name: str) -> str:
    path = tmp_path / f"{name}.parquet"
    fs.offline_frame(gold, COHORT).to_parquet(path, index=False)
    return str(path)


def expected(gold: pd.DataFrame, msno: str) -> dict[str, Any]:
    row = gold.set_index("msno").loc[msno, list(FEATURES)]
    return {"msno": msno, **{k: (None if pd.isna(v) else v) for k, v in row.items()}}


def published(settings: Settings, tmp_path: Path, gold: pd.DataFrame, version: str) -> Any:
    store = fs.feature_store(settings)
    publish(settings, store, gold, version, tmp_path)
    return store


def publish(
    settings: Settings, store: Any, gold: pd.DataFrame, version: str, tmp_path: Path
) -> fs.Published:
    uri = source(tmp_path, gold, version)
    return fs.publish_cohort(store, online_store(settings), COHORT, version, uri, len(gold))


def reader(settings: Settings, ttl: float = 60) -> OnlineFeatures:
    return OnlineFeatures(online_store(settings), ttl)


def feast_client_lookup(store: Any, ids: list[str]) -> list[dict[str, Any]]:
    """The same lookup through Feast's own client, the reference for ours."""
    service = store.get_feature_service(fs.service_name(COHORT))
    answer = store.get_online_features(features=service, entity_rows=[{"msno": i} for i in ids])
    columns = answer.to_dict()
    return [{name: columns[name][row] for name in ["msno", *FEATURES]} for row in range(len(ids))]


def test_every_id_answers_its_gold_features_exactly(settings: Settings, tmp_path: Path) -> None:
    gold = gold_rows(30, seed=1)
    store = published(settings, tmp_path, gold, "a" * 16)
    found = reader(settings).lookup(list(gold["msno"]), COHORT)
    assert found.unknown == [] and found.cohort == COHORT
    assert found.found == [expected(gold, msno) for msno in gold["msno"]]
    assert found.found == feast_client_lookup(store, list(gold["msno"]))


def test_unknown_ids_are_named_and_the_others_found(settings: Settings, tmp_path: Path) -> None:
    gold = gold_rows(5, seed=2)
    published(settings, tmp_path, gold, "a" * 16)
    ids = ["nobody", gold["msno"][3], "x" * 44]
    found = reader(settings).lookup(ids, None)  # the newest cohort served
    assert found.unknown == ["nobody", "x" * 44]
    assert found.found == [expected(gold, gold["msno"][3])]


def test_a_cohort_never_loaded_is_refused_naming_those_served(
    settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(UnknownCohortError, match="no cohort was loaded"):
        reader(settings).lookup(["x"])
    published(settings, tmp_path, gold_rows(2, 3), "a" * 16)
    with pytest.raises(UnknownCohortError, match=r"2017-05 .*served: 2017-04"):
        reader(settings).lookup(["x"], "2017-05")


def test_loading_the_same_gold_twice_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    gold = gold_rows(10, seed=4)
    store = published(settings, tmp_path, gold, "a" * 16)
    views = sorted(v.name for v in store.list_feature_views())
    assert not publish(settings, store, gold, "a" * 16, tmp_path).changed
    assert sorted(v.name for v in store.list_feature_views()) == views
    found = reader(settings).lookup(list(gold["msno"]), COHORT)
    assert found.found == [expected(gold, msno) for msno in gold["msno"]]


def test_a_new_version_is_served_once_loaded_and_a_failed_one_never(
    settings: Settings, tmp_path: Path
) -> None:
    old, new = gold_rows(10, seed=5), gold_rows(10, seed=5)
    new["tx_count"] = new["tx_count"] + 1
    store = published(settings, tmp_path, old, "a" * 16)
    broken = old.copy()
    broken["secs_total"] = "not a number"  # Feast refuses the row half-way through the load
    with pytest.raises(AssertionError, match="not in"):
        publish(settings, store, broken, "b" * 16, tmp_path)
    online = reader(settings, ttl=0)
    assert fs.served_view(store, COHORT) == fs.view_name(COHORT, "a" * 16)
    assert online.lookup(list(old["msno"]), COHORT).found == [
        expected(old, msno) for msno in old["msno"]
    ]
    publish(settings, store, new, "c" * 16, tmp_path)
    assert online.lookup(list(new["msno"]), COHORT).found == [
        expected(new, msno) for msno in new["msno"]
    ]


def test_the_newest_cohort_is_the_default(settings: Settings, tmp_path: Path) -> None:
    gold = gold_rows(3, seed=6)
    store = published(settings, tmp_path, gold, "a" * 16)
    march = fs.offline_frame(gold, "2017-03")
    march.to_parquet(tmp_path / "march.parquet", index=False)
    fs.publish_cohort(
        store, online_store(settings), "2017-03", "d" * 16, str(tmp_path / "march.parquet"), 3
    )
    online = reader(settings)
    assert online.cohorts() == ["2017-03", "2017-04"]
    assert online.lookup([gold["msno"][0]]).cohort == "2017-04"


@pytest.mark.parametrize("msno", ["a", EXAMPLE_RECORD["msno"], "é" * 30])
def test_our_entity_key_is_feasts(msno: str) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from churn_transform.serving.online_store import entity_key

    key = EntityKey(join_keys=["msno"], entity_values=[Value(string_val=msno)])
    assert entity_key(msno) == serialize_entity_key(key, entity_key_serialization_version=3)


@pytest.mark.parametrize("value", [0.0, -1.5, 1e300, 5e-324, "female", "x" * 300, None])
def test_values_decode_as_feast_wrote_them(value: Any) -> None:
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    from churn_transform.serving.online_store import decode_value

    kind = ValueType.STRING if isinstance(value, str) else ValueType.DOUBLE
    (proto,) = python_values_to_proto_values([value], kind)
    assert decode_value(proto.SerializeToString()) == value
