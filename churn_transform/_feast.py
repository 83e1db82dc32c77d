"""Feast's names, imported without typeguard's import-time instrumentation.

Feast decorates its definition classes (``FeatureView``, ``Entity``, ``Field``, the data
sources) with typeguard's ``@typechecked``, which re-reads and recompiles every method from its
source when Feast is imported: about 2.5 CPU seconds in every process that imports Feast (each
``materialize``, ``main`` and ``cycle`` run). typeguard only skips that under ``python -O``,
which would also drop every ``assert``. Here the decorator leaves Feast's classes as written
while Feast is imported, and is restored afterwards; what is lost is Feast's runtime check of
the argument types of its constructors, which mypy checks in this project's code instead.
Import Feast's names from this module, before any other import of ``feast``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typeguard


def _unchecked(target: Any = None, **_: Any) -> Any:
    """``typechecked`` that changes nothing, with or without arguments."""
    if target is None:
        return _unchecked
    return target


_checked: Callable[..., Any] = typeguard.typechecked
typeguard.typechecked = _unchecked
try:
    from feast import (
        Entity,
        FeatureService,
        FeatureStore,
        FeatureView,
        Field,
        FileSource,
        RepoConfig,
    )
    from feast.errors import FeatureServiceNotFoundException
    from feast.types import Float64, String
    from feast.value_type import ValueType
finally:
    typeguard.typechecked = _checked

__all__ = [
    "Entity",
    "FeatureService",
    "FeatureServiceNotFoundException",
    "FeatureStore",
    "FeatureView",
    "Field",
    "FileSource",
    "Float64",
    "RepoConfig",
    "String",
    "ValueType",
]
