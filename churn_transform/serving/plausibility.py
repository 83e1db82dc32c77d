"""Rules across the fields of one gold row, which every row the pipeline builds keeps: the request
record (``records.FeatureRecord``) refuses a record that breaks one, naming the rule.

Each rule follows from how ``features`` computes gold from silver that passed validation
(``validation.SILVER``: plans of 0..450 days, prices of 0..2,000, transactions from 2015-01-01,
memberships expiring by 2040-12-31, a log day of 0..86,400 seconds with at least one unique
song), so no member can break it. A record that does was made up or mangled (a placeholder, a
unit error, a hand edit); scored, it would enter the traffic log and the drift window as a
member no model was trained on. A null is an unknown value, which no rule judges, except where
gold's null means "never": ``days_since_last_cancel`` (no cancel) and ``days_since_last_log``
(no listening), as the transformer reads them too.

Left out, because gold does not keep them: the last log no older than the first transaction, and
the first transaction no older than the registration (``features`` computes each from another
table, and validation ties neither to the other); an upper bound of ``tenure_days`` or
``registration_age_days`` (it depends on the cohort, which a record does not carry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Final

from churn_transform.schema import FEATURES, SECONDS_PER_DAY, WINDOWS

Row = Mapping[str, Any]
#: A rule: the fault it finds in a row, in words with the values, or None when the row keeps it.
Rule = Callable[[Row], str | None]

#: KKBox's limits as silver's validation checks them (``validation.SILVER``, tested equal).
MAX_PLAN_DAYS: Final[int] = 450
MAX_PRICE: Final[int] = 2_000
FIRST_TRANSACTION: Final[date] = date(2015, 1, 1)
LAST_EXPIRY: Final[date] = date(2040, 12, 31)
#: Relative slack for sums of listening seconds: ``features`` sums each window apart (numpy's
#: pairwise summation), so two sums over nested days may differ in the last bits.
SUM_SLACK: Final[float] = 1e-9

_NOT_COUNTS = {"auto_renew_share", "gender", "secs_total", *(f"secs_{w}" for w in WINDOWS)}
#: Counts, days, prices and codes: every feature but the seconds, the share and the gender.
WHOLE: Final[tuple[str, ...]] = tuple(name for name in FEATURES if name not in _NOT_COUNTS)
#: The listening windows, widest last: what each holds, then all days ever.
_ACTIVE = (*(f"active_days_{w}" for w in WINDOWS), "log_days_total")
_SECS = (*(f"secs_{w}" for w in WINDOWS), "secs_total")
#: Each window's active days, the next wider one's, and how many days wider it is.
_WIDER = tuple(
    (f"active_days_{narrow}", f"active_days_{wide}", wide - narrow)
    for narrow, wide in zip(WINDOWS, WINDOWS[1:], strict=False)
)
#: Counts of the last 30 days besides its seconds and days, each zero when it had no log day.
_SONGS_30 = ("songs_30", "num_25_30", "num_100_30", "unq_30")
#: Each window, narrowest first: its width, its active days, and all it holds (zero when it
#: holds no log day).
_HELD = tuple(
    (w, f"active_days_{w}", (f"secs_{w}", f"active_days_{w}", *(_SONGS_30 if w == 30 else ())))
    for w in WINDOWS
)

RULES: dict[str, Rule] = {}


def _rule(check: Rule) -> Rule:
    RULES[check.__name__] = check
    return check


def broken_rules(row: Row) -> list[tuple[str, str]]:
    """Every rule ``row`` breaks, as (rule name, fault); empty for a row gold could hold."""
    broken = []
    for name, check in RULES.items():
        fault = check(row)
        if fault is not None:
            broken.append((name, fault))
    return broken


def _n(value: float) -> str:
    return f"{value:,.10g}"


def _in_order(row: Row, *names: str, slack: float = 0.0) -> str | None:
    """The first two given values of ``names`` where one exceeds the next (nulls skipped), the
    next one widened by ``slack`` of itself (plus 1)."""
    before, low = "", None
    for name in names:
        value = row[name]
        if value is None:
            continue
        if low is not None and low > value + slack * (value + 1.0):
            return f"{before} {_n(low)} > {name} {_n(value)}"
        before, low = name, value
    return None


def _given(*values: Any) -> bool:
    return all(value is not None for value in values)


def _payments(row: Row) -> Any:
    """Transactions that are not cancels: every discount, free plan, plan day and amount paid
    is one of theirs. None when unknown, or fewer than none (``counts_within_transactions``)."""
    tx, cancels = row["tx_count"], row["cancel_count"]
    return None if tx is None or cancels is None or cancels > tx else tx - cancels


@_rule
def whole_numbers(row: Row) -> str | None:
    """Counts, days, prices and codes are whole numbers."""
    for name in WHOLE:
        value = row[name]
        if value is not None and value % 1:
            return f"{name} {_n(value)} is not a whole number"
    return None


@_rule
def counts_within_transactions(row: Row) -> str | None:
    """``tx_count`` counts every transaction (a member without any has nulls); the last 90
    days', the cancels (the last 365 days' among them) and the discounted or free payments are
    some of them."""
    tx, payments = row["tx_count"], _payments(row)
    if tx is not None and tx < 1:
        return f"tx_count {_n(tx)} < 1 (a member without transactions has nulls)"
    fault = _in_order(row, "cancel_count_365", "cancel_count", "tx_count")
    fault = fault or _in_order(row, "tx_count_90", "tx_count")
    for name in ("discount_count", "free_count"):
        if fault is None and _given(payments, row[name]) and row[name] > payments:
            fault = f"{name} {_n(row[name])} > {_n(payments)} payments (not cancels)"
    return fault


@_rule
def transaction_days_in_order(row: Row) -> str | None:
    """The last transaction is no older than the last cancel, which is no older than the first
    transaction (``tenure_days``); a single transaction is both the first and the last."""
    fault = _in_order(row, "days_since_last_transaction", "days_since_last_cancel", "tenure_days")
    last, first = row["days_since_last_transaction"], row["tenure_days"]
    if fault is None and row["tx_count"] == 1 and _given(last, first) and last != first:
        fault = f"tx_count 1 but days_since_last_transaction {_n(last)}, tenure_days {_n(first)}"
    return fault


@_rule
def last_cancel_iff_cancels(row: Row) -> str | None:
    """``days_since_last_cancel`` is null exactly when the member never cancelled."""
    since = row["days_since_last_cancel"]
    if since is not None and row["cancel_count"] == 0:
        return f"days_since_last_cancel {_n(since)} but cancel_count 0"
    for name in ("cancel_count", "cancel_count_365", "last_is_cancel"):
        if since is None and row[name] is not None and row[name] > 0:
            return f"{name} {_n(row[name])} but days_since_last_cancel null (never cancelled)"
    if row["last_is_cancel"] == 1 and row["cancel_count"] == 0:
        return "last_is_cancel 1 but cancel_count 0"
    return None


@_rule
def recent_counts_agree_with_days(row: Row) -> str | None:
    """The last 90 days hold a transaction exactly when the last one is at most 90 days old, and
    all of them when the first one is; likewise the last 365 days and the cancels."""
    tenure = row["tenure_days"]
    for count, total, since, days in (
        ("tx_count_90", "tx_count", "days_since_last_transaction", 90),
        ("cancel_count_365", "cancel_count", "days_since_last_cancel", 365),
    ):
        recent, last, every = row[count], row[since], row[total]
        if recent is None:
            continue
        if last is not None and (recent > 0) != (last <= days):
            return f"{count} {_n(recent)} but {since} {_n(last)}"
        if tenure is not None and tenure <= days and every is not None and recent != every:
            return f"{count} {_n(recent)}, {total} {_n(every)}, tenure_days {_n(tenure)}"
    return None


@_rule
def auto_renew_share_of_transactions(row: Row) -> str | None:
    """``auto_renew_share`` is the share of the transactions set to renew, the last real one
    among them."""
    share, tx, last = row["auto_renew_share"], row["tx_count"], row["last_is_auto_renew"]
    if share is None:
        return None
    if tx is not None and tx >= 1:
        renewing = share * tx
        if abs(renewing - round(renewing)) > 1e-6 * tx:
            return f"auto_renew_share {_n(share)} is no share of tx_count {_n(tx)} transactions"
    if (last == 1 and share == 0) or (last == 0 and share == 1):
        return f"last_is_auto_renew {_n(last)} but auto_renew_share {_n(share)}"
    return None


@_rule
def plan_days_within_kkbox_plans(row: Row) -> str | None:
    """A plan lasts 1 to 450 days; ``total_plan_days`` adds up every payment's, the last one's
    (``last_plan_days``) among them."""
    last, total, payments = row["last_plan_days"], row["total_plan_days"], _payments(row)
    if last is not None and not 1 <= last <= MAX_PLAN_DAYS:
        return f"last_plan_days {_n(last)} is not a KKBox plan (1..{MAX_PLAN_DAYS} days)"
    fault = _in_order(row, "last_plan_days", "total_plan_days")
    if fault is None and _given(total, payments) and total > MAX_PLAN_DAYS * payments:
        fault = f"total_plan_days {_n(total)} > {MAX_PLAN_DAYS} x {_n(payments)} payments"
    return fault


@_rule
def prices_within_kkbox_prices(row: Row) -> str | None:
    """A plan's price and the amount paid for it are at most 2,000; ``total_paid`` adds up every
    payment's amount, the last one's (``last_amount_paid``) among them."""
    total, payments = row["total_paid"], _payments(row)
    for name in ("last_list_price", "last_amount_paid"):
        if row[name] is not None and row[name] > MAX_PRICE:
            return f"{name} {_n(row[name])} > {MAX_PRICE:,}, KKBox's highest price"
    fault = _in_order(row, "last_amount_paid", "total_paid")
    if fault is None and _given(total, payments) and total > MAX_PRICE * payments:
        fault = f"total_paid {_n(total)} > {MAX_PRICE:,} x {_n(payments)} payments"
    return fault


@_rule
def last_payment_counted(row: Row) -> str | None:
    """The last payment is counted as free when nothing was paid, and as discounted when less
    than the list price was."""
    paid, price = row["last_amount_paid"], row["last_list_price"]
    if paid == 0 and row["free_count"] == 0:
        return "last_amount_paid 0 but free_count 0"
    if paid is not None and price is not None and paid < price and row["discount_count"] == 0:
        return f"last_amount_paid {_n(paid)} < last_list_price {_n(price)} but discount_count 0"
    return None


@_rule
def expiry_within_kkbox_dates(row: Row) -> str | None:
    """A membership expires by 2040-12-31, and the cutoff lies at least ``tenure_days`` after
    2015-01-01, when the transactions begin."""
    expiry, tenure = row["days_to_expiry"], row["tenure_days"]
    if expiry is None or tenure is None:
        return None
    latest = (LAST_EXPIRY - FIRST_TRANSACTION).days - tenure
    if expiry > latest:
        return (
            f"days_to_expiry {_n(expiry)} > {_n(latest)}: with tenure_days {_n(tenure)} the "
            f"membership would expire after {LAST_EXPIRY}"
        )
    return None


@_rule
def windows_nest(row: Row) -> str | None:
    """Each listening window holds the narrower ones, and at most as many more days as it is
    wider; all days ever (``log_days_total``, ``secs_total``) hold the widest."""
    fault = _in_order(row, *_ACTIVE) or _in_order(row, *_SECS, slack=SUM_SLACK)
    for fewer, more, added in _WIDER:
        low, high = row[fewer], row[more]
        if fault is None and low is not None and high is not None and high - low > added:
            fault = f"{more} {_n(high)} - {fewer} {_n(low)} > {added} days"
    return fault


@_rule
def listening_within_active_days(row: Row) -> str | None:
    """A log day holds at most 86,400 seconds, so a window at most as many as its active days
    (and a wider window at most that many more per day it adds)."""
    narrower, narrower_secs, narrower_days = "", 0.0, 0.0
    for secs_name, days_name in zip(_SECS, _ACTIVE, strict=True):
        secs, days = row[secs_name], row[days_name]
        if secs is None or days is None:
            narrower, narrower_secs, narrower_days = "", 0.0, 0.0
            continue
        slack = SUM_SLACK * (secs + 1.0)
        if secs > days * SECONDS_PER_DAY + slack:
            return f"{secs_name} {_n(secs)} > 86,400 s x {days_name} {_n(days)}"
        if secs - narrower_secs > max(days - narrower_days, 0.0) * SECONDS_PER_DAY + slack:
            return (
                f"{secs_name} {_n(secs)} is over {narrower} {_n(narrower_secs)} + 86,400 s for "
                f"each of the {_n(days - narrower_days)} days {days_name} adds"
            )
        narrower, narrower_secs, narrower_days = secs_name, secs, days
    return None


@_rule
def silent_since_last_log(row: Row) -> str | None:
    """A window that ended before the last log day holds no listening: seconds, days and songs
    are zero in the last ``w`` days when the last log is older (or when there is none)."""
    since = row["days_since_last_log"]
    for window, _, held in _HELD:
        if since is not None and since <= window:
            break  # this window and the wider ones hold the last log day
        for name in held:
            if row[name] is not None and row[name] > 0:
                last = "never" if since is None else f"{_n(since)} days before the cutoff"
                return f"{name} {_n(row[name])} but the last log was {last}"
    return None


@_rule
def active_days_since_last_log(row: Row) -> str | None:
    """A window that holds the last log day has that day and at most the days from it to the
    window's start: 1 <= ``active_days_<w>`` <= w - ``days_since_last_log`` + 1."""
    since = row["days_since_last_log"]
    if since is None:
        return None
    for window, name, _ in _HELD:
        days = row[name]
        if since <= window and days is not None and not 1 <= days <= window - since + 1:
            return (
                f"{name} {_n(days)} with the last log {_n(since)} days before the cutoff "
                f"(1..{_n(window - since + 1)})"
            )
    return None


@_rule
def last_log_iff_log_days(row: Row) -> str | None:
    """``days_since_last_log`` is null exactly when the member has no log day."""
    since, days = row["days_since_last_log"], row["log_days_total"]
    if since is None and days is not None and days > 0:
        return f"log_days_total {_n(days)} but days_since_last_log null (never listened)"
    if since is not None and days == 0:
        return f"days_since_last_log {_n(since)} but log_days_total 0"
    return None


@_rule
def songs_30_add_up(row: Row) -> str | None:
    """``songs_30`` counts every song played in the last 30 days, those played under a quarter
    (``num_25_30``) and to the end (``num_100_30``) among them; each log day has at least one
    unique song (``unq_30`` sums them)."""
    songs, short, full = row["songs_30"], row["num_25_30"], row["num_100_30"]
    if songs is not None and short is not None and full is not None and short + full > songs:
        return f"num_25_30 {_n(short)} + num_100_30 {_n(full)} > songs_30 {_n(songs)}"
    return _in_order(row, "active_days_30", "unq_30")
