"""One mid-size synthetic dataset, generated once for the generator's tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from churn_transform.schema import RAW_DTYPES, RAW_FILES
from churn_transform.synthetic import GeneratorConfig, Summary, generate

USERS = 12_000


@dataclass
class Dataset:
    """A generated folder. Its files are parsed once (the session's dataset is read by dozens of
    tests); each call answers a copy of its own, which a test may change."""

    root: Path
    summary: Summary
    _parsed: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def _csv(self, path: str, dtype: dict[str, str] | None = None) -> pd.DataFrame:
        if path not in self._parsed:
            self._parsed[path] = pd.read_csv(self.root / path, dtype=dtype)
        return self._parsed[path].copy()

    def read(self, name: str) -> pd.DataFrame:
        columns = RAW_FILES[name]
        return self._csv(f"raw/{name}", dtype={c: RAW_DTYPES[c] for c in columns})

    def oracle(self) -> pd.DataFrame:
        return self._csv("oracle/oracle.csv")

    def future(self) -> pd.DataFrame:
        return self._csv("oracle/transactions_future.csv")


def make(root: Path, **config: object) -> Dataset:
    summary = generate(GeneratorConfig(**config), root / "raw", root / "oracle")  # type: ignore[arg-type]
    return Dataset(root, summary)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make(tmp_path_factory.mktemp("kkbox"), users=USERS, seed=7, log_start="2016-09-01")
