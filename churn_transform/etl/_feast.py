"""Feast's names, imported without typeguard's import-time instrumentation.

Feast decorates its definition classes (``FeatureView``, ``Entity``, ``Field``, the data
sources) with typeguard's ``@typechecked``, which re-reads and recompiles every method from its
source when Feast is imported: two thirds of the CPU time of importing the feature store, in
every process that imports Feast (each ``materialize``, ``main`` and ``cycle`` run; the
figures are in this file's git log). Neither Feast nor typeguard has a public switch for it
but ``python -O``, which would also drop every ``assert``. Here the decorator leaves Feast's
classes as written while Feast is imported, and is restored afterwards; what is lost is Feast's
runtime check of the argument types of its constructors, which mypy checks in this project's
code instead. Import Feast's names from this module, before any other import of ``feast``:
``tests/unit/test_public_apis.py`` checks that nothing else imports it and that Feast still
takes the decorator at import (once it does not, this module can go), and
``tests/unit/test_feast_import.py`` that its classes are left as written.
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
