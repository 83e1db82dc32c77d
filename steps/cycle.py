"""Entry point ``cycle``: one month of the platform's life, after that month's increment landed.

For ``--month M`` (its data in ``<raw>/increments/M/``, with the list of cohort M+1 to score and
the labels of cohort M-1, known once the 30 days after its expiries passed; docs/generator.md;
a month whose folder is missing stops the cycle before anything is written, saying how to make
it on synthetic data):

1. ``ingest``: the increment becomes a layer of silver (nothing, if it already is);
2. ``gold`` and ``validate``: gold of the cohort to score (M+1) and of the newly labelled
   cohort (M-1);
3. ``score`` cohort M+1 with the champion (once per champion version), and ``materialize`` its
   features into the online store, so answers by id serve the new cohort;
4. ``quality`` of cohort M-1: the predictions made for it two cycles ago against its labels,
   per model version and segment, and the verdict of the campaign played on it, if one was
   (``monitoring.verdict``: its sentence joins the record);
5. ``drift`` of the service's recent traffic against the champion's training data;
6. the written policy (``churn_transform.monitoring.policy``) decides whether to retrain; if so,
   ``train`` on the ``--train-months`` newest labelled cohorts (M-1 and before), judged on the
   ``--holdout`` share of cohort M-1's users kept out of training (by a hash of the msno), whose
   gate promotes the candidate only if it beats the champion on them by the margin with no
   segment regressing; then ``import``, and cohorts M+1 and M (labelled next cycle) are scored
   again by the new champion. A running service follows the new champion by itself.

With a champion serving, a candidate that beats it becomes the ``challenger`` rather than the
champion (``--shadow``, docs/challenger.md): the service scores it beside the champion on every
request, and the next cycles, before the policy, judge it on the traffic log against the labels
of cohort M-1 (``churn_transform.monitoring.challenger``): promoted (then imported and the
cohorts awaiting labels scored again, as above, and no retraining this month) only if it wins
there too, retired with its reason if not, left waiting while fewer than ``--min-live-users``
labelled subscribers were scored by both.

Every decision and its reasons are printed, tagged on the cycle's MLflow run and written to
``cycles/M.json`` in the lake. The cycle keeps its progress in a journal in the lake
(``monitoring.journal``): a rerun of the month, after a kill at any point, completes exactly
the stages that did not finish (measured and decided, trained, imported, re-scored), keeps what
the first run found before it acted, and never retrains a month twice.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import mlflow

from churn_transform.dates import months_between, shift_month
from churn_transform.etl.gold import read_gold, table_name
from churn_transform.etl.increments import MissingIncrementError, landed_increment
from churn_transform.lake import Lake, TableNotFoundError
from churn_transform.modelling.promotion import Outcome, PromotionOutcome, recorded
from churn_transform.monitoring.challenger import judge_challenger
from churn_transform.monitoring.estimation import estimates
from churn_transform.monitoring.journal import Journal
from churn_transform.monitoring.policy import Evidence, Policy, decide
from churn_transform.monitoring.quality import realized_figures
from churn_transform.monitoring.verdict import read_verdict
from churn_transform.schema import LABEL
from churn_transform.settings import Settings
from churn_transform.synthetic.months import FIRST_MONTH
from steps._cli import (
    boolean,
    cohort,
    count,
    lake_of,
    positive,
    project_step,
    share,
    start,
    tracked_run,
)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--month", type=cohort, required=True)
    parser.add_argument("--max-auc-drop", type=float, required=True)
    parser.add_argument("--max-age-months", type=count, required=True)
    parser.add_argument("--retrain-on-drift", type=boolean, required=True)
    parser.add_argument("--max-client-share", type=float, required=True)
    parser.add_argument("--drift-days", type=positive, required=True)
    parser.add_argument("--min-segment-users", type=count, required=True)
    parser.add_argument("--train-months", type=positive, required=True)
    parser.add_argument("--holdout", type=share, required=True)
    parser.add_argument("--shadow", type=boolean, required=True)
    parser.add_argument("--min-live-users", type=count, required=True)
    for name in ("--margin", "--min-auc", "--min-oracle-share", "--max-segment-auc-drop"):
        parser.add_argument(name, type=float, required=True)
    parser.add_argument(
        "--env-manager", choices=("local", "uv", "virtualenv", "conda"), required=True
    )
    return parser.parse_args(argv)


def _metrics(run_id: str) -> dict[str, float]:
    return dict(mlflow.MlflowClient().get_run(run_id).data.metrics)


def _outcome(settings: Settings, run_id: str) -> PromotionOutcome | None:
    return recorded(settings.tracking_uri, run_id)


def _champion(settings: Settings) -> tuple[str, dict[str, float], dict[str, str]]:
    """The champion's version, its training run's metrics and tags."""
    client = mlflow.MlflowClient()
    found = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    run = client.get_run(str(found.run_id))
    return str(found.version), dict(run.data.metrics), dict(run.data.tags)


def _awaiting_labels(lake: Lake, month: str, scoring: str) -> list[str]:
    """The cohorts whose labels have not arrived: M, if its gold was built (last cycle), and
    M+1."""
    try:
        lake.current_version("gold", table_name(month))
    except TableNotFoundError:
        return [scoring]
    return [month, scoring]


def _require_increment(settings: Settings, month: str) -> None:
    """Stop, before anything is written, when the month's increment, or an earlier month's
    since the base data (``FIRST_MONTH`` is the first after it), has not landed whole: its
    cohort to score would be empty, its labels missing, or its features built over a gap."""
    try:
        options = settings.storage_options(settings.raw_dir)
        landed_increment(settings.raw_dir, options, month, since=FIRST_MONTH)
    except MissingIncrementError as missing:
        months = months_between(FIRST_MONTH, month) + 1
        hint = (
            f"; on synthetic data, `mlflow run . -e generate --env-manager local -P months="
            f"{months} -P users=N` writes it (N: the users of the base files, which it rewrites "
            "unchanged; `make months` does so for 2017-04 and 2017-05 after `make demo`). It "
            "draws every month from April anew: a month this lake ingested comes out different, "
            "and ingest refuses it, so past the months landed start anew (`make clean`)"
            if months > 0
            else ""
        )
        sys.exit(f"cycle: {missing}{hint}")


def _said(record: dict[str, object]) -> str:
    """The cycle's record, a line per fact."""
    realized, oracle = record["realized_roc_auc"], record["oracle_roc_auc"]
    measured = "none: the champion made no prediction for it"
    if realized is not None:
        measured = f"{realized:.4f}" + (f" (oracle {oracle:.4f})" if oracle is not None else "")
    drift = record["drift_share"]
    lines = [
        f"  scored {record['scored']}; newly labelled {record['labelled']}",
        f"  realized ROC AUC on {record['labelled']}: {measured}",
        f"  drift share: {f'{drift:.2f}' if drift is not None else 'none measured (no traffic)'}",
        f"  champion: version {record['champion_before']} -> {record['champion_after']}"
        + (f" (candidate {record['candidate']})" if record["candidate"] else ""),
    ]
    if record.get("campaign_verdict"):
        lines.append(f"  campaign verdict: {record['campaign_verdict']}")
    live = record.get("challenger")
    if isinstance(live, dict) and live.get("verdict") and live.get("reason"):
        lines.append(
            f"  challenger {live['challenger_version']}: {live['verdict']}, {live['reason']}"
        )
    return "\n".join(lines)


Step = Callable[..., str]
KEPT: dict[str, Any] = {"action": "kept", "candidate": None}


def main(argv: list[str] | None = None) -> None:
    settings = start("cycle")
    args = _arguments(argv)
    _require_increment(settings, args.month)
    lake = lake_of(settings)
    journal = _journal(lake, args.month)
    finished = journal.get("done") is not None

    def step(entry_point: str, **parameters: object) -> str:
        return project_step(settings, entry_point, args.env_manager, **parameters)

    with tracked_run(settings, "cycle") as run:
        mlflow.log_param("month", args.month)
        before = journal.get("before") or journal.write("before", _measure(step, settings, args))
        outcome = _challenged(step, settings, args, journal, before)
        record = {**before, "champion_after": _champion(settings)[0], **outcome}
        lake.fs.makedirs(posixpath.dirname(_record_path(lake, args.month)), exist_ok=True)
        lake.replace(_record_path(lake, args.month), json.dumps(record, indent=1).encode())
        journal.write("done", {})
        served, action = str(record["champion_after"]), str(record["action"])
        mlflow.set_tags({"decision": str(record["decision"]), "action": action, "served": served})
        mlflow.log_dict(record, "cycle.json")
        print(f"cycle {args.month} ({run.info.run_id}): {record['decision']}; {action}")
    if finished:  # every stage was done by an earlier run: its record, not new work
        print(f"cycle {args.month} ran to the end before: nothing was run again; its record:")
    print(_said(record))


def _record_path(lake: Lake, month: str) -> str:
    return lake.path_of(lake.url("cycles", f"{month}.json"))


def _journal(lake: Lake, month: str) -> Journal:
    """The month's journal; for a month whose record predates journals, one saying every stage
    that record shows done (its record is written last, so all of them)."""
    journal = Journal(lake, month)
    path = _record_path(lake, month)
    if journal.stages() or not lake.fs.exists(path):
        return journal
    record = json.loads(lake.fs.cat_file(path))
    after = ("champion_after", "action", "candidate", "challenger")
    journal.write("before", {k: v for k, v in record.items() if k not in after})
    if record.get("retrained"):
        journal.write("trained", {"action": record["action"], "candidate": record["candidate"]})
        journal.write("imported", {})
        journal.write("rescored", {})
    return journal


def _measure(step: Step, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Steps 1 to 6: the month's data in, M+1 scored and served, M-1's realized quality, the
    drift, and the policy's decision: what the cycle found before it acted."""
    month, scoring, labelled = args.month, shift_month(args.month, 1), shift_month(args.month, -1)
    step("ingest")
    for each in (labelled, scoring):
        step("gold", cohort=each)
    step("validate", cohorts=f"{labelled},{scoring}")
    version, own, trained = _champion(settings)
    step("score", cohort=scoring)
    step("materialize", cohort=scoring)  # answers by id serve the new cohort
    quality = step("quality", cohort=labelled, min_segment_users=args.min_segment_users)
    realized = realized_figures(_metrics(quality), version)
    verdict = read_verdict(lake_of(settings), labelled)  # quality's, when a campaign was played
    # a drift is evidence for the policy here, not a reason for its step to fail
    drift = _metrics(step("drift", days=args.drift_days, fail_on_drift="false"))
    evidence = Evidence(
        cohort=labelled,
        realized_auc=realized.get("roc_auc"),
        evaluated_auc=own.get("roc_auc"),
        evaluated_cohort=trained.get("eval_cohort"),
        drift_alarm=bool(drift.get("drift_detected", 0)),
        drift_top_client_share=drift.get("top_client_share"),
    )
    # every limit of the policy is a run parameter of the same name (MLproject's cycle)
    policy = Policy(**{limit.name: getattr(args, limit.name) for limit in fields(Policy)})
    decision = decide(policy, evidence)
    return {
        "month": month,
        "scored": scoring,
        "labelled": labelled,
        "champion_before": version,
        "realized_roc_auc": evidence.realized_auc,
        "oracle_roc_auc": realized.get("oracle_roc_auc"),
        "drift_share": drift.get("drift_share"),
        "campaign_verdict": verdict.said if verdict is not None else None,
        **_estimated(settings, labelled, scoring, version, evidence.realized_auc),
        "decision": decision.text(),
        "retrained": decision.retrain,
    }


def _estimated(
    settings: Settings, labelled: str, scoring: str, version: str, realized: float | None
) -> dict[str, float | None]:
    """The champion's ROC AUC estimated before the labels (``monitoring.estimation``, stored when
    it scored): of the newly labelled cohort, with the error realized - estimated, and of the
    cohort just scored, whose labels come two cycles later (None: it made no estimate)."""
    lake = lake_of(settings)

    def estimated(cohort: str) -> float | None:
        mine = [e for e in estimates(lake, cohort) if e.model_version == version]
        return mine[-1].overall.roc_auc if mine else None

    before = estimated(labelled)
    return {
        "estimated_roc_auc": before,
        "estimation_error_roc_auc": realized - before
        if realized is not None and before is not None
        else None,
        "scored_estimated_roc_auc": estimated(scoring),
    }


def _act(
    step: Step,
    settings: Settings,
    args: argparse.Namespace,
    journal: Journal,
    before: dict[str, Any],
) -> dict[str, Any]:
    """Step 6's retraining, each stage once however often the cycle is run: train, and for a
    promoted candidate, import and the cohorts awaiting labels scored again."""
    trained = journal.get("trained") or journal.write(
        "trained", _retrain(step, settings, args, before)
    )
    if trained["action"] != "promoted":
        return trained
    if journal.get("imported") is None:
        step("import")
        journal.write("imported", {"version": trained["candidate"]})
    if journal.get("rescored") is None:
        # the new champion's answers for M+1, and for M, scored last cycle and labelled next:
        # so next cycle measures the realized quality of the champion serving now
        cohorts = _awaiting_labels(journal.lake, args.month, before["scored"])
        for each in cohorts:
            step("score", cohort=each)
        journal.write("rescored", {"cohorts": cohorts})
    return trained


def _retrain(
    step: Step, settings: Settings, args: argparse.Namespace, before: dict[str, Any]
) -> dict[str, Any]:
    """Train on the newest labelled cohorts; the gate's outcome. A champion other than the one
    the month judged means this month's training already moved the alias (a run killed before
    the outcome was journaled): that is the outcome, not a reason to train again."""
    current = _champion(settings)[0]
    if current != before["champion_before"]:
        return {"action": "promoted", "candidate": current}
    newest = [shift_month(args.month, -k) for k in range(args.train_months, 0, -1)]
    train_run = step(
        "train",
        train_cohort=",".join(newest),
        eval_cohort=before["labelled"],
        holdout=args.holdout,
        margin=args.margin,
        min_auc=args.min_auc,
        min_oracle_share=args.min_oracle_share,
        max_segment_auc_drop=args.max_segment_auc_drop,
        shadow=str(args.shadow).lower(),
    )
    return _trained(_outcome(settings, train_run))


def _trained(outcome: PromotionOutcome | None) -> dict[str, Any]:
    """The journal's facts of a training, from its gate's outcome: the candidate, and whether
    it serves now ("promoted"), shadows the champion ("challenger") or not ("refused": below the
    floor, behind on a segment or overall); "retrained" when the training recorded no outcome."""
    if outcome is None:
        return {"action": "retrained", "candidate": None}
    action = "promoted" if outcome.promoted else "refused"
    if outcome.outcome is Outcome.CHALLENGER:
        action = "challenger"
    return {"action": action, "candidate": outcome.version}


def _challenged(
    step: Step,
    settings: Settings,
    args: argparse.Namespace,
    journal: Journal,
    before: dict[str, Any],
) -> dict[str, Any]:
    """The challenger judged on live traffic first; promoted, it is served as a promoted
    candidate is (``_act`` imports it and scores the cohorts awaiting labels) instead of this
    month's retraining; else the policy's decision stands."""
    live = journal.get("challenger") or journal.write("challenger", _live(settings, args, before))
    if live.get("verdict") == "promoted":
        promoted = {"action": "promoted", "candidate": live["challenger_version"]}
        journal.get("trained") or journal.write("trained", promoted)
        return {**_act(step, settings, args, journal, before), "challenger": live}
    outcome = _act(step, settings, args, journal, before) if before["retrained"] else KEPT
    return {**outcome, "challenger": live}


def _live(settings: Settings, args: argparse.Namespace, before: dict[str, Any]) -> dict[str, Any]:
    """The challenger's judgement on the labelled cohort's subscribers, settled on the registry
    (``monitoring.challenger``); none named: ``verdict`` None, unless the champion changed since
    the month was measured (a run killed after promoting it: that is the judgement)."""
    gold, _ = read_gold(lake_of(settings), before["labelled"])
    labels = gold.set_index("msno")[LABEL]
    judgement = judge_challenger(settings, labels, args.margin, args.min_live_users)
    if judgement is not None:
        print(judgement.text())
        return judgement.to_dict()
    current = _champion(settings)[0]
    if current != before["champion_before"]:
        return {"verdict": "promoted", "challenger_version": current}
    return {"verdict": None}


if __name__ == "__main__":
    main()
