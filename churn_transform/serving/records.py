"""What the prediction service takes and returns: one gold row as a JSON record, and its answer.

``FeatureRecord`` is derived from the Pandera gold schema, so a rule is written once: the types,
nullability and ranges that stop a bad gold table also reject a bad request, with the field
named. Numbers must be finite: ``NaN``, ``Infinity`` and values that overflow a float
(``1e309``, ``10**400``) are refused, as is anything beyond a bound gold has. Every field is
required (a missing key is an error, not a silent median); a nullable feature may be ``null``,
which the transformer imputes as it did in training. Types are strict: ``"12"`` is not a
number. Unknown fields are refused, so a misspelt feature cannot pass unseen. A record must also
keep the rules across its fields that every gold row keeps (``plausibility``): one that breaks
any is refused whole, with every broken rule named and the values that break it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, cast

import pandas as pd
import pandera.pandas as pa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from churn_transform.schema import FEATURES, gold_schema
from churn_transform.serving.plausibility import broken_rules

#: Rules across a record's fields: each broken one as (name, fault with the values).
RowRules = Callable[[Mapping[str, Any]], list[tuple[str, str]]]

#: Pandera check name -> pydantic Field constraints, from the check's statistics.
_BOUNDS = {
    "greater_than_or_equal_to": lambda s: {"ge": s["min_value"]},
    "in_range": lambda s: {"ge": s["min_value"], "le": s["max_value"]},
    "str_length": lambda s: {"min_length": s["min_value"], "max_length": s["max_value"]},
}


def _one_of(allowed: list[float]) -> Callable[[float | None], float | None]:
    def check(value: float | None) -> float | None:
        if value is not None and value not in allowed:
            raise ValueError(f"must be one of {allowed}")
        return value

    return check


def _field_type(column: pa.Column) -> Any:
    constraints: dict[str, Any] = {}
    validators = []
    kind: Any = str if "string" in str(column.dtype) else float
    if kind is float:
        constraints["allow_inf_nan"] = False
    for check in column.checks:
        if check.name in _BOUNDS:
            constraints.update(_BOUNDS[check.name](check.statistics))
        elif check.name == "isin" and kind is str:
            kind = Literal[tuple(check.statistics["allowed_values"])]
        elif check.name == "isin":
            validators.append(AfterValidator(_one_of(check.statistics["allowed_values"])))
        else:
            raise NotImplementedError(f"no request rule for the gold check {check.name!r}")
    kind = Annotated[kind, Field(**constraints), *validators]
    return kind | None if column.nullable else kind


def _keeping(rules: RowRules) -> Any:
    """A model validator that refuses a record breaking any of ``rules``, naming each: one
    fault of the record as a whole, of type ``implausible_record``."""

    def keeps_every_rule(record: BaseModel) -> BaseModel:
        broken = rules(vars(record))  # the validated fields, without model_dump's copy
        if broken:
            faults = "; ".join(f"{name}: {fault}" for name, fault in broken)
            rules_broken = [name for name, _ in broken]
            raise PydanticCustomError(
                "implausible_record", f"implausible record: {faults}", {"rules": rules_broken}
            )
        return record

    return model_validator(mode="after")(keeps_every_rule)


def record_model(
    schema: pa.DataFrameSchema, fields: tuple[str, ...], rules: RowRules | None = None
) -> type[BaseModel]:
    """A strict pydantic model of ``fields``, with the types and checks of ``schema``, and the
    ``rules`` across fields a valid record also keeps."""
    definitions: dict[str, Any] = {
        name: (_field_type(schema.columns[name]), ...) for name in fields
    }
    return create_model(
        "FeatureRecord",
        __config__=ConfigDict(strict=True, extra="forbid"),
        __doc__="One user's gold features for the cohort being scored.",
        __validators__={"keeps_every_rule": _keeping(rules)} if rules else None,
        **definitions,
    )


FeatureRecord = record_model(gold_schema(scoring=True), ("msno", *FEATURES), broken_rules)


def as_records(gold: pd.DataFrame) -> list[dict[str, Any]]:
    """Gold rows as the service's JSON records: ``msno`` and the features, nulls as None."""
    frame = gold[["msno", *FEATURES]].astype(object)
    # the column names are the strings above; pandas' stubs type them as any Hashable
    return cast(list[dict[str, Any]], frame.where(frame.notna(), None).to_dict("records"))


class Prediction(BaseModel):
    """The service's answer for one record."""

    msno: str
    churn_probability: float = Field(ge=0, le=1)
    churn: bool = Field(description="churn_probability >= the threshold chosen in training")
    model_version: str


class Reason(BaseModel):
    """One gold feature's share of a prediction, on the calibrated log-odds scale."""

    feature: str
    name: str = Field(description="What the feature means, in words")
    value: float | str | None = Field(description="The value sent")
    contribution: float = Field(description="Log-odds it adds (positive: raises the risk)")


class Explained(Prediction):
    """An answer with its reasons: ``base_log_odds`` plus every contribution is the log-odds of
    ``churn_probability``; reasons are ordered by size, either way."""

    base_log_odds: float
    reasons: list[Reason]
