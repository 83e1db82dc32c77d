"""Locust users of the prediction service, sending real gold rows.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:3000 --payloads payloads.json

``--payloads`` is a JSON list of records (``loadtests/run.py`` writes one from the evaluation
cohort's gold table). Each request carries one record, or, with probability ``--batch-share``,
a small batch of 2 to 10. ``--rps`` paces the whole run at that many requests per second
(Locust's ``constant_throughput`` per user); 0 sends as fast as the users can. Their defaults
are the harness's, from ``defaults.py``. With ``--by-id-share``, that share of the requests names
one subscriber (the record's ``msno``) to ``POST /predict_ids`` instead, in ``--id-cohort``
(default: the service's newest): the two kinds are reported apart, from the same run.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from locust import FastHttpUser, constant_throughput, events, task
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from churn_transform.settings import Settings  # noqa: E402
from loadtests.defaults import BATCH_SHARE, RPS  # noqa: E402

RECORDS: list[dict] = []
HEADERS: dict[str, str] = {}


@events.init_command_line_parser.add_listener
def _options(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--payloads", required=True, help="JSON list of gold records")
    parser.add_argument(
        "--batch-share",
        type=float,
        default=BATCH_SHARE,
        help="share of requests carrying 2-10 records",
    )
    parser.add_argument(
        "--rps", type=float, default=RPS, help="requests/s of the whole run; 0: flat out"
    )
    parser.add_argument(
        "--by-id-share", type=float, default=0.0, help="share of requests sent by id"
    )
    parser.add_argument("--id-cohort", default="", help="the cohort of requests by id")


@events.init.add_listener
def _load(environment: Environment, **_: object) -> None:
    with open(environment.parsed_options.payloads, encoding="utf-8") as handle:
        RECORDS[:] = json.load(handle)
    HEADERS.update(Settings().service_headers())  # KKBOX_API_KEY, when the service needs one
    if not RECORDS:
        raise SystemExit(f"no records in {environment.parsed_options.payloads}")


class ServiceUser(FastHttpUser):
    def wait_time(self) -> float:  # type: ignore[override]
        options = self.environment.parsed_options
        if not options.rps:
            return 0.0
        return constant_throughput(options.rps / max(options.num_users, 1))(self)

    @task
    def predict(self) -> None:
        options = self.environment.parsed_options
        if options.by_id_share and random.random() < options.by_id_share:
            body: dict[str, object] = {"ids": [random.choice(RECORDS)["msno"]]}
            if options.id_cohort:
                body["cohort"] = options.id_cohort
            self.client.post("/predict_ids", json=body, name="/predict_ids (1 id)", headers=HEADERS)
            return
        size = random.randint(2, 10) if random.random() < options.batch_share else 1
        start = random.randrange(len(RECORDS))
        records = [RECORDS[(start + i) % len(RECORDS)] for i in range(size)]
        name = "/predict (1 record)" if size == 1 else "/predict (2-10 records)"
        self.client.post("/predict", json={"records": records}, name=name, headers=HEADERS)
