"""The serving record is the gold schema's rules applied to one JSON object."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from churn_transform.records import FeatureRecord
from churn_transform.schema import EXAMPLE_RECORD, FEATURES, LABEL, gold_schema


def test_every_gold_feature_and_msno_is_a_required_field() -> None:
    assert list(FeatureRecord.model_fields) == ["msno", *FEATURES]
    assert all(field.is_required() for field in FeatureRecord.model_fields.values())
    assert set(FeatureRecord.model_fields) == set(gold_schema(scoring=True).columns) - {LABEL}


def test_the_example_is_valid_and_nulls_pass_where_gold_allows_them() -> None:
    assert FeatureRecord.model_validate(EXAMPLE_RECORD).gender == "female"
    FeatureRecord.model_validate({**EXAMPLE_RECORD, "bd": None, "gender": None, "city": None})


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"bd": 2016.0}, "bd", "less than or equal to 100"),
        ({"city": "5"}, "city", "valid number"),
        ({"gender": "x"}, "gender", "'male' or 'female'"),
        ({"last_is_cancel": 0.5}, "last_is_cancel", "one of"),
        ({"active_days_7": None}, "active_days_7", "valid number"),
        ({"active_days_7": 8.0}, "active_days_7", "less than or equal to 7"),
        ({"total_paid": -1.0}, "total_paid", "greater than or equal to 0"),
        ({"msno": "short"}, "msno", "at least 44"),
        ({"is_churn": 1}, "is_churn", "Extra inputs"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(change: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        FeatureRecord.model_validate({**EXAMPLE_RECORD, **change})
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


def test_a_missing_field_is_named() -> None:
    record = {k: v for k, v in EXAMPLE_RECORD.items() if k != "secs_30"}
    with pytest.raises(ValidationError, match="secs_30"):
        FeatureRecord.model_validate(record)
