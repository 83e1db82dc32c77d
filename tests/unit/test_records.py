"""The serving record is the gold schema's rules applied to one JSON object, and the rules across
its fields that every gold row keeps (``plausibility``)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from churn_transform.schema import EXAMPLE_RECORD, FEATURES, LABEL, MAX_DAYS, WINDOWS, gold_schema
from churn_transform.serving.records import FeatureRecord


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
        ({"secs_7": 7 * 86_400 + 1.0}, "secs_7", "less than or equal to 604800"),
        ({"days_since_last_log": 36_526.0}, "days_since_last_log", "less than or equal to 36525"),
        ({"days_to_expiry": -36_526.0}, "days_to_expiry", "greater than or equal to -36525"),
        ({"auto_renew_share": 1.5}, "auto_renew_share", "less than or equal to 1"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(change: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        FeatureRecord.model_validate({**EXAMPLE_RECORD, **change})
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309", "1" + "0" * 400])
@pytest.mark.parametrize("field", ["tx_count", "days_to_expiry", "registered_via"])
def test_a_number_that_is_not_finite_is_refused_naming_its_field(number: str, field: str) -> None:
    """Python's and pydantic's JSON parsers read these (1e309 and 10**400 overflow to infinity)."""
    body = json.dumps({**EXAMPLE_RECORD, field: 0.0}).replace(
        f'"{field}": 0.0', f'"{field}": {number}'
    )
    with pytest.raises(ValidationError, match="finite number") as refused:
        FeatureRecord.model_validate_json(body)
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


def test_the_bounds_hold_the_extremes_gold_can_reach() -> None:
    every_second = {
        **{f"secs_{w}": w * 86_400.0 for w in WINDOWS},
        **{f"active_days_{w}": float(w) for w in WINDOWS},
        "days_since_last_log": 1.0,
        "unq_30": 30.0,
        "songs_30": 30.0,
        "log_days_total": 60.0,
        "secs_total": 60 * 86_400.0,
    }
    # a first transaction a century ago puts the cutoff in 2115: the membership has expired
    days = {"tenure_days": 36_525.0, "registration_age_days": -300.0, "days_to_expiry": -36_525.0}
    FeatureRecord.model_validate({**EXAMPLE_RECORD, **every_second, **days})


def test_a_missing_field_is_named() -> None:
    record = {k: v for k, v in EXAMPLE_RECORD.items() if k != "secs_30"}
    with pytest.raises(ValidationError, match="secs_30"):
        FeatureRecord.model_validate(record)


def test_a_record_no_member_could_have_is_refused_naming_every_rule_it_breaks() -> None:
    made_up = {**EXAMPLE_RECORD, "cancel_count": 40.0, "secs_7": 50.0}
    with pytest.raises(ValidationError) as refused:
        FeatureRecord.model_validate(made_up)
    [fault] = refused.value.errors()
    assert fault["type"] == "implausible_record" and fault["loc"] == ()
    rules = ["counts_within_transactions", "last_cancel_iff_cancels", "windows_nest"]
    rules += ["listening_within_active_days", "silent_since_last_log"]
    assert fault["ctx"] == {"rules": rules}
    assert fault["msg"].startswith(
        "implausible record: counts_within_transactions: cancel_count 40 > tx_count 29; "
    )
    assert "silent_since_last_log: secs_7 50 but the last log was 24 days" in fault["msg"]


def test_the_placeholder_swagger_made_of_the_schema_is_refused() -> None:
    """What Swagger UI sent before the OpenAPI document had an example (issue #29)."""
    placeholder = {
        **EXAMPLE_RECORD,
        "msno": ("string" * 8)[:44],
        "days_to_expiry": float(MAX_DAYS),
        "days_since_last_log": float(MAX_DAYS),
        "secs_total": MAX_DAYS * 86_400.0,
    }
    with pytest.raises(ValidationError, match="implausible record") as refused:
        FeatureRecord.model_validate(placeholder)
    rules = refused.value.errors()[0]["ctx"]["rules"]
    assert {"expiry_within_kkbox_dates", "silent_since_last_log"} <= set(rules)


def test_a_record_that_breaks_a_field_s_bound_is_refused_for_that_alone() -> None:
    """The rules across fields judge only records whose every field is valid."""
    with pytest.raises(ValidationError) as refused:
        FeatureRecord.model_validate({**EXAMPLE_RECORD, "bd": 2016.0, "cancel_count": 40.0})
    assert [e["loc"] for e in refused.value.errors()] == [("bd",)]
