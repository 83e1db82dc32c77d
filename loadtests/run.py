"""Load tests of the prediction service with Locust (headless), printing and saving a summary.

    python loadtests/run.py run --host http://127.0.0.1:3000 --users 10 --rps 300 --duration 60
    python loadtests/run.py capacity --host http://127.0.0.1:3000 --start-rps 100 --step 100
    python loadtests/run.py compare --users 32 --duration 60       # starts its own services
    python loadtests/run.py sweep --latencies 5,20,100,1000         # starts its own services
    python loadtests/run.py workers --rps 300 --duration 20         # starts its own services
    python loadtests/run.py by-id --host http://127.0.0.1:3000 --cohort 2017-04 --rps 300
    python loadtests/run.py baseline --users 32 --rps 0 --duration 60  # starts its own servers
    python loadtests/run.py challenger --rps 300 --duration 30 --rounds 2  # starts its own

``run`` and ``capacity`` only talk to the service at ``--host``: they start nothing. ``run``
reports requests/s, p50/p95/p99, failures and the service's own mean adaptive batch size (from
``/metrics``, before and after). ``capacity`` raises the paced rate step by step until a step
fails, breaks the p95 bound or falls short of its pace (saturation), and prints the highest
rate served with p95 under ``--p95-ms`` and no failure. ``compare``, ``sweep`` and ``workers``
say so and start ``bentoml serve`` themselves, one configuration after another: adaptive
batching on against off (``KKBOX_MAX_BATCH_SIZE=1``), and a sweep of ``KKBOX_MAX_LATENCY_MS``
showing where BentoML starts shedding load (503); ``workers`` serves with 1 and then 2 worker
processes (``KKBOX_WORKERS``) at the same pace. ``by-id`` sends half the requests by subscriber id
(``/predict_ids``, one id of ``--cohort``, which must be materialized) and half with the
features, paced together at ``--rps``, prints both kinds' figures from that one run and the ratio
of their p95, then raises each kind's rate alone, as ``capacity`` does, and prints each kind's
highest rate with p95 under ``--p95-ms``. ``baseline`` measures the service's own overhead: it
serves the same champion from ``baseline.py``'s bare app (Starlette on uvicorn, one worker, the
service's request model, one model call per request, no metrics, no traffic log) and sends it
and ``bentoml serve`` the same load, one after the other (``--rounds`` times), then prints both
rows and the ratio of their throughput beside each one's p95. ``challenger`` serves the same
load without and with a challenger scoring off the answer path (``loadtests/challenger.py``), and
prints each one's p50 and p95 and their differences. Every request carries
``KKBOX_API_KEY`` when it is set. Payloads are real gold rows of ``--cohort``. Locust and the
service share this machine's cores: every summary says how many there are. Summaries are saved
under ``--results`` as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from churn_transform.etl.gold import read_gold  # noqa: E402
from churn_transform.lake import lake_of  # noqa: E402
from churn_transform.serving.records import as_records  # noqa: E402
from churn_transform.settings import Settings  # noqa: E402
from loadtests import challenger  # noqa: E402
from loadtests.defaults import BATCH_SHARE, RPS  # noqa: E402
from loadtests.servers import BARE_APP, SERVICE, Server, free_port  # noqa: E402

BIN = Path(sys.executable).parent
SHARED = f"Locust and the service shared this machine's {os.cpu_count()} cores."


def write_payloads(settings: Settings, cohort: str, path: Path, rows: int = 5000) -> int:
    """Up to ``rows`` gold rows of ``cohort`` as service records, in a JSON file."""
    gold, _ = read_gold(lake_of(settings), cohort)
    records = as_records(gold.head(rows))
    path.write_text(json.dumps(records))
    return len(records)


def batch_counters(host: str) -> tuple[float, float]:
    """(records, batches) the service's adaptive batcher has handled so far."""
    text = requests.get(f"{host}/metrics", headers=Settings().service_headers(), timeout=5).text
    total = {"sum": 0.0, "count": 0.0}
    pattern = r"^bentoml_service_adaptive_batch_size_(sum|count)\{[^}]*\} (\S+)"
    for kind, value in re.findall(pattern, text, re.M):
        total[kind] += float(value)
    return total["sum"], total["count"]


def _figures(row: dict[str, str]) -> dict[str, float]:
    return {
        "requests_per_s": float(row["Requests/s"]),
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "p50_ms": _ms(row["50%"]),
        "p95_ms": _ms(row["95%"]),
        "p99_ms": _ms(row["99%"]),
    }


def _ms(percentile: str) -> float:
    """A percentile of Locust's CSV; its N/A (no request answered yet) is NaN."""
    return float("nan") if percentile == "N/A" else float(percentile)


def locust(
    host: str,
    payloads: Path,
    users: int,
    duration: int,
    rps: float,
    batch_share: float,
    by_id_share: float = 0.0,
    id_cohort: str = "",
) -> dict[str, Any]:
    """One headless Locust run; its aggregated figures, the service's mean batch size, and under
    ``kinds`` the figures of each request name (``/predict (1 record)``,
    ``/predict_ids (1 id)``)."""
    before = batch_counters(host)
    with tempfile.TemporaryDirectory() as folder:
        prefix = str(Path(folder) / "run")
        command = [
            str(BIN / "locust"),
            "-f",
            str(ROOT / "loadtests" / "locustfile.py"),
            "--headless",
            "--host",
            host,
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{duration}s",
            "--csv",
            prefix,
            "--only-summary",
            "--payloads",
            str(payloads),
            "--rps",
            str(rps),
            "--batch-share",
            str(batch_share),
            "--by-id-share",
            str(by_id_share),
            "--id-cohort",
            id_cohort,
            "--stop-timeout",
            "5",
        ]
        subprocess.run(command, capture_output=True, text=True, check=False)
        with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
            rows = {r["Name"]: r for r in csv.DictReader(handle)}
    after = batch_counters(host)
    batches = after[1] - before[1]
    return {
        **_figures(rows["Aggregated"]),
        "kinds": {name: _figures(r) for name, r in rows.items() if name != "Aggregated"},
        "mean_batch_size": (after[0] - before[0]) / batches if batches else float("nan"),
        "users": users,
        "paced_rps": rps,
        "duration_s": duration,
    }


def show(title: str, rows: list[dict[str, float]], label: str) -> None:
    print(f"\n{title}  ({SHARED})")
    print(
        f"{label:>14}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'failures':>10}"
        f"{'batch':>8}"
    )
    for row in rows:
        print(
            f"{row['label']:>14}{row['requests_per_s']:>9.1f}{row['p50_ms']:>9.0f}"
            f"{row['p95_ms']:>9.0f}{row['p99_ms']:>9.0f}{row['failures']:>10}"
            f"{row['mean_batch_size']:>8.1f}".replace("nan", "  -")
        )


def start_server(bare: bool = False, **settings: str) -> Server:
    """``bentoml serve`` of this project with some settings changed (or, with ``bare``, the
    same champion behind ``baseline.py``'s bare app), announced, started; a context manager
    giving its URL once ready, and stopping it on the way out."""
    port = free_port()
    what = "the bare app (loadtests/baseline.py)" if bare else "bentoml serve"
    changed = "" if bare else f" with {settings}"
    print(f"starting {what} on http://127.0.0.1:{port}{changed}", flush=True)
    return Server(BARE_APP if bare else SERVICE, env={**os.environ, **settings}, port=port)


def _arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "mode",
        choices=[
            "run",
            "capacity",
            "compare",
            "sweep",
            "workers",
            "by-id",
            "baseline",
            "challenger",
        ],
    )
    parser.add_argument("--host", default=Settings().service_url)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=int, default=60, help="seconds per Locust run")
    parser.add_argument("--rps", type=float, default=RPS, help="paced rate of `run`; 0: flat out")
    parser.add_argument(
        "--batch-share",
        type=float,
        default=BATCH_SHARE,
        help="share of requests carrying 2-10 records (0: single records)",
    )
    parser.add_argument("--start-rps", type=float, default=100)
    parser.add_argument("--step", type=float, default=100)
    parser.add_argument("--p95-ms", type=float, default=50)
    parser.add_argument("--latencies", default="5,20,100,1000")
    parser.add_argument(
        "--rounds", type=int, default=1, help="`baseline`: service and bare app, this many times"
    )
    parser.add_argument(
        "--challenger-version", default="", help="`challenger`: the version (default: champion's)"
    )
    parser.add_argument("--cohort", default="2017-03")
    parser.add_argument("--results", default=str(ROOT / "loadtests" / "results"))
    return parser.parse_args(argv)


Runner = Callable[..., dict[str, Any]]


def capacity(
    args: argparse.Namespace, run: Runner, by_id: float = 0.0
) -> tuple[list[dict[str, Any]], float]:
    """Paced runs at a rate raised by ``--step`` until one fails, breaks the p95 bound or falls
    short of its pace; the runs, and the highest rate served within the bound."""
    rows, rps = [], args.start_rps
    while True:
        row = {"label": f"{rps:g}/s", **run(args.host, args.users, rps, by_id)}
        rows.append(row)
        if row["failures"] or row["p95_ms"] >= args.p95_ms or row["requests_per_s"] < 0.9 * rps:
            break
        rps += args.step
    # the rate actually served counts, paced or not: past saturation Locust (on the same
    # cores) may fall short of the pace while the service still meets the bound
    good = [r for r in rows if not r["failures"] and r["p95_ms"] < args.p95_ms]
    return rows, max((r["requests_per_s"] for r in good), default=0.0)


def by_id(args: argparse.Namespace, run: Runner) -> list[dict[str, Any]]:
    """Both kinds of request in one paced run, then each kind's capacity on its own."""
    mixed = run(args.host, args.users, args.rps, 0.5)
    rows = [{"label": name.split(" ")[0], **figures} for name, figures in mixed["kinds"].items()]
    for row in rows:
        row["mean_batch_size"] = float("nan")
    show(f"{args.host}, {args.users} users, both kinds paced together at {args.rps:g}/s", rows, "")
    p95 = {row["label"]: row["p95_ms"] for row in rows}
    print(f"p95 by id / with features: {p95['/predict_ids'] / p95['/predict']:.2f}x")
    for label, share in (("/predict", 0.0), ("/predict_ids", 1.0)):
        steps, best = capacity(args, run, share)
        show(f"capacity of {label} alone, {args.users} users", steps, "paced at")
        print(f"{label}: highest rate with p95 < {args.p95_ms:g} ms, no failure: {best:.0f}/s")
        rows += [{**step, "kind": label, "best": best} for step in steps]
    return rows


def baseline(args: argparse.Namespace, run: Runner) -> list[dict[str, Any]]:
    """The service and the bare app (``baseline.py``, the same champion) under the same load,
    one after the other, ``--rounds`` times; then the ratio of their mean figures."""
    rows = []
    for _ in range(args.rounds):
        for label, bare in (("service", False), ("bare app", True)):
            with start_server(bare=bare) as host:
                rows.append({"label": label, **run(host, args.users, args.rps)})
    pace = f"paced at {args.rps:g}/s" if args.rps else "flat out"
    show(f"the service against a bare app, {args.users} users {pace}", rows, "")
    mean = {
        label: {
            figure: sum(r[figure] for r in rows if r["label"] == label) / args.rounds
            for figure in ("requests_per_s", "p95_ms")
        }
        for label in ("service", "bare app")
    }
    service, bare = mean["service"], mean["bare app"]
    ratio = service["requests_per_s"] / max(bare["requests_per_s"], 1e-9)
    print(
        f"throughput service / bare app: {ratio:.2f}x; "
        f"p95 service {service['p95_ms']:.0f} ms, bare app {bare['p95_ms']:.0f} ms"
    )
    return rows


def main() -> None:
    args = _arguments()
    settings = Settings()
    payloads = Path(tempfile.mkdtemp()) / "payloads.json"
    count = write_payloads(settings, args.cohort, payloads)
    print(f"{count:,} gold records of {args.cohort} as payloads")

    def run(host: str, users: int, rps: float, by_id: float = 0.0) -> dict[str, Any]:
        return locust(
            host, payloads, users, args.duration, rps, args.batch_share, by_id, args.cohort
        )

    rows: list[dict] = []
    if args.mode == "by-id":
        rows = by_id(args, run)
    elif args.mode == "baseline":
        rows = baseline(args, run)
    elif args.mode == "challenger":
        rows = challenger.compare(args, run, start_server)
        show(f"a challenger off the answer path, {args.users} users at {args.rps:g}/s", rows, "")
        print(challenger.summary(rows))
    elif args.mode == "run":
        rows.append(
            {
                "label": f"{args.rps:g}/s" if args.rps else "flat out",
                **run(args.host, args.users, args.rps),
            }
        )
        show(f"{args.host}, {args.users} users, {args.duration} s", rows, "paced at")
    elif args.mode == "capacity":
        rows, best = capacity(args, run)
        show(f"capacity of {args.host}, {args.users} users", rows, "paced at")
        print(f"highest rate with p95 < {args.p95_ms:g} ms and no failure: {best:.0f} requests/s")
    elif args.mode == "compare":
        for label, size in (("batching on", str(settings.max_batch_size)), ("batching off", "1")):
            with start_server(KKBOX_MAX_BATCH_SIZE=size) as host:
                rows.append({"label": label, **run(host, args.users, 0)})
        show(f"adaptive batching, {args.users} users flat out", rows, "")
        ratio = rows[0]["requests_per_s"] / max(rows[1]["requests_per_s"], 1e-9)
        print(f"batching on / off throughput: {ratio:.2f}x")
    elif args.mode == "workers":
        for workers in ("1", "2"):
            with start_server(KKBOX_WORKERS=workers) as host:
                rows.append({"label": f"{workers} worker(s)", **run(host, args.users, args.rps)})
        pace = f"paced at {args.rps:g}/s" if args.rps else "flat out"
        show(f"service workers, {args.users} users {pace}", rows, "")
    else:
        for latency in args.latencies.split(","):
            with start_server(KKBOX_MAX_LATENCY_MS=latency) as host:
                rows.append({"label": f"{latency} ms", **run(host, args.users, 0)})
        show(
            f"max_latency_ms sweep, {args.users} users flat out (failures are 503s)",
            rows,
            "max latency",
        )
    folder = Path(args.results)
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / f"{args.mode}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    saved.write_text(
        json.dumps({"mode": args.mode, "cores": os.cpu_count(), "rows": rows}, indent=1)
    )
    print(f"saved {saved}")


if __name__ == "__main__":
    main()
