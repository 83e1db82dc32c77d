"""A one-screen description of a KKBox-format dataset: files, cohorts, churn rates, the oracle.

The cohorts are the three of the base files and, when the raw folder holds increments, the one
each increment lists to score.

Works on the real files too (there is simply no oracle folder then). Reads only the label files
and the oracle in memory; the big tables are measured by streaming their lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.schema import LABEL_FILES, RAW_FILES
from churn_transform.synthetic.campaign import CAMPAIGN_COHORT, CAMPAIGN_FILE, campaign_id
from churn_transform.synthetic.generator import ORACLE_FILE, ORACLE_TERMS_FILE


@dataclass
class DatasetReport:
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (rows, bytes)
    cohorts: dict[str, tuple[int, float]] = field(default_factory=dict)  # month -> (users, churn)
    oracle: dict[str, tuple[float, float]] = field(default_factory=dict)  # month -> (auc, loss)
    #: The past campaign's groups ("offered", "control") -> (users, churn, and the oracle's mean
    #: probability without and with the offer).
    campaign: dict[str, tuple[int, float, float, float]] = field(default_factory=dict)

    def oracle_metrics(self) -> dict[str, float]:
        metrics = {}
        for cohort, (auc, loss) in self.oracle.items():
            metrics[f"oracle_auc_{cohort}"] = auc
            metrics[f"oracle_logloss_{cohort}"] = loss
        for group, (_, churn, without, offered) in self.campaign.items():
            metrics[f"campaign_{group}_churn"] = churn
            metrics[f"campaign_{group}_oracle_effect"] = without - offered
        return metrics

    def text(self) -> str:
        lines = [f"{'file':<26}{'rows':>14}{'MB':>10}"]
        for name, (rows, size) in self.files.items():
            lines.append(f"{name:<26}{rows:>14,}{size / 1e6:>10.1f}")
        lines.append("")
        lines.append(f"{'cohort':<10}{'users':>10}{'churn':>8}{'oracle AUC':>12}{'log loss':>10}")
        for cohort, (users, churn) in self.cohorts.items():
            auc, loss = self.oracle.get(cohort, (float("nan"), float("nan")))
            lines.append(f"{cohort:<10}{users:>10,}{churn:>8.2%}{auc:>12.4f}{loss:>10.4f}")
        if self.campaign:
            lines += ["", f"{campaign_id(CAMPAIGN_COHORT):<18}{'users':>8}{'churn':>8}"]
            lines[-1] += f"{'oracle without':>16}{'with offer':>12}"
            for group, (users, churn, without, offered) in self.campaign.items():
                figures = f"{users:>8,}{churn:>8.2%}{without:>16.2%}{offered:>12.2%}"
                lines.append(f"{group:<18}{figures}")
        return "\n".join(lines)


def oracle_answers(oracle_dir: str, cohort: str, msno: pd.Series) -> pd.DataFrame | None:
    """The oracle's ``churn_probability`` and ``is_churn`` of these users, in their order.

    None when there is no oracle (real data, or a remote folder) or it does not cover every one
    of the users (it belongs to another dataset).
    """
    path = Path(oracle_dir) / ORACLE_FILE
    if "://" in oracle_dir or not path.exists():
        return None
    answers = pd.read_csv(path)
    answers = answers[answers["cohort"] == cohort].set_index("msno").reindex(msno)
    return None if answers["is_churn"].isna().any() else answers


def oracle_terms(oracle_dir: str, cohort: str, msno: pd.Series) -> pd.DataFrame | None:
    """The oracle's per-driver terms of these users' logits, in their order (one column per
    driver); None as ``oracle_answers`` when there are none for every one of them."""
    path = Path(oracle_dir) / ORACLE_TERMS_FILE
    if "://" in oracle_dir or not path.exists():
        return None
    terms = pd.read_csv(path)
    terms = terms[terms["cohort"] == cohort].drop(columns="cohort").set_index("msno")
    terms = terms.reindex(msno)
    return None if terms.isna().any().any() else terms


def _count_rows(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            lines += block.count(b"\n")
    return max(lines - 1, 0)


def describe(raw_dir: Path, oracle_dir: Path | None = None) -> DatasetReport:
    """Describe the KKBox files under ``raw_dir`` and, if present, the oracle's answers."""
    report = DatasetReport()
    for name in RAW_FILES:
        path = raw_dir / name
        if path.exists():
            report.files[name] = (_count_rows(path), path.stat().st_size)
    oracle_path = oracle_dir / ORACLE_FILE if oracle_dir else None
    oracle = pd.read_csv(oracle_path) if oracle_path and oracle_path.exists() else None
    for name, cohort in LABEL_FILES.items():
        if (raw_dir / name).exists():
            _add_cohort(report, cohort, pd.read_csv(raw_dir / name), oracle)
    # The further months: each cohort listed to score in one increment (its labels, once known,
    # come in the next; the oracle answers for all of them).
    for path in sorted(raw_dir.glob("increments/*/cohort_*.csv")):
        _add_cohort(report, path.stem.removeprefix("cohort_"), pd.read_csv(path), oracle)
    if oracle is not None and (raw_dir / CAMPAIGN_FILE).exists():
        _add_campaign(report, pd.read_csv(raw_dir / CAMPAIGN_FILE), oracle)
    return report


def _add_campaign(report: DatasetReport, log: pd.DataFrame, oracle: pd.DataFrame) -> None:
    """The campaign's offered and control groups: their churn beside the oracle's probability
    without and with the offer (the offered group's churn follows the second)."""
    # the oracle says who was treated too when a later campaign was played (campaign_log)
    answers = oracle[oracle["cohort"] == CAMPAIGN_COHORT].drop(columns="treated", errors="ignore")
    answers = answers.merge(log, on="msno")
    for group, treated in (("offered", 1), ("control", 0)):
        users = answers[answers["treated"] == treated]
        report.campaign[group] = (
            len(users),
            float(users["is_churn"].mean()),
            float(users["churn_probability"].mean()),
            float(users["churn_probability_offered"].mean()),
        )


def _add_cohort(
    report: DatasetReport, cohort: str, labels: pd.DataFrame, oracle: pd.DataFrame | None
) -> None:
    truth = labels["is_churn"]
    if oracle is not None:
        answers = oracle[oracle["cohort"] == cohort]
        truth = answers["is_churn"]
        if truth.nunique() == 2:
            p = answers["churn_probability"]
            report.oracle[cohort] = (roc_auc_score(truth, p), log_loss(truth, p))
    report.cohorts[cohort] = (len(labels), float(truth.mean()) if len(truth) else 0.0)
