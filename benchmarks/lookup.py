"""The online store's read for one subscriber id, timed in-process: the service's own reader
(``serving.online_store``) beside Feast's client (``FeatureStore.get_online_features``
over the cohort's feature service), on the store the settings name (``KKBOX_ONLINE_STORE``).

    python benchmarks/lookup.py --cohort 2017-04 --lookups 3000

Needs the cohort materialized (``mlflow run . -e materialize``). Prints the median, p95 and p99
of each, in milliseconds, for single ids drawn from the cohort's gold table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from churn_transform.etl.feature_store import feature_store, service_name  # noqa: E402
from churn_transform.etl.gold import read_gold  # noqa: E402
from churn_transform.lake import lake_of  # noqa: E402
from churn_transform.serving.online_store import OnlineFeatures, online_store  # noqa: E402
from churn_transform.settings import Settings  # noqa: E402


def timed(read: Callable[[str], object], ids: list[str]) -> list[float]:
    """Milliseconds of each read, after a warm-up of 100."""
    for msno in ids[:100]:
        read(msno)
    times = []
    for msno in ids:
        start = time.perf_counter()
        read(msno)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", default="2017-04")
    parser.add_argument("--lookups", type=int, default=3000)
    args = parser.parse_args()
    settings = Settings()
    gold, _ = read_gold(lake_of(settings), args.cohort)
    ids = random.Random(0).choices(gold["msno"].astype(str).tolist(), k=args.lookups)
    ours = OnlineFeatures(online_store(settings), settings.feature_registry_ttl)
    store = feature_store(settings)
    service = store.get_feature_service(service_name(args.cohort))

    def feast_client(msno: str) -> object:
        rows = [{"msno": msno}]
        return store.get_online_features(features=service, entity_rows=rows).to_dict()

    def feast_client_by_name(msno: str) -> object:
        named = store.get_feature_service(service_name(args.cohort))  # as a stateless caller
        return store.get_online_features(features=named, entity_rows=[{"msno": msno}]).to_dict()

    readers = {
        "online_store.OnlineFeatures.lookup": lambda msno: ours.lookup([msno], args.cohort),
        "Feast get_online_features": feast_client,
        "Feast, feature service by name": feast_client_by_name,
    }
    print(f"{args.lookups:,} single-id reads of {args.cohort} from {settings.online_store}")
    print(f"{'reader':<38}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for name, read in readers.items():
        times = sorted(timed(read, ids))
        p95, p99 = times[int(0.95 * len(times))], times[int(0.99 * len(times))]
        print(f"{name:<38}{statistics.median(times):>9.3f}{p95:>9.3f}{p99:>9.3f}")


if __name__ == "__main__":
    main()
