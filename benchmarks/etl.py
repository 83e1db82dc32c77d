"""Times ingest and feature on KKBox-format files and runs DuckDB and naive pandas beside them.

    python benchmarks/etl.py --raw /tmp/kkbox-1m/raw          # existing files
    python benchmarks/etl.py --users 1000000                  # generate first (about 6 min)
    python benchmarks/etl.py --raw /tmp/kkbox-1m/raw --logs-by-date   # the layout below

The generator writes user logs in chunks of 10,000 users, each chunk by date, so a 32 MB block
names about 4,000 users. ``--logs-by-date`` first rewrites both user_logs files sorted by date
(then id) into a temporary folder, as a log appended day by day would be, where a block names
most users; the other files are linked. Both layouts hold the same rows.

Each engine runs in a child process of its own, so its peak memory (resident set, the process
and its children) is measured alone. Each span is timed in wall seconds (``convert_s``, the
table's) and in CPU seconds of all the process's threads (``convert_cpu_s``, which ``guard.py``
compares). Every engine does CSV -> zstd Parquet of user_logs and transactions with dates
typed as dates, then the per-user user_logs aggregation of one cohort: the 17 LOG_FEATURES
of ``features.log_features`` for every user with logs before the cutoff. Ours does more in its
conversion (the bronze copy, cleaning, exact-duplicate removal, bucketing and sorting by user,
members and labels too). Its aggregation is timed like for like, then the whole gold table of
the cohort on its own ("gold s").
Locust-style caveat: all engines share this machine's cores with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COHORT, CUTOFF = "2017-03", "2017-03-01"
LOG_FILES = ("user_logs.csv", "user_logs_v2.csv")
TX_FILES = ("transactions.csv", "transactions_v2.csv")


def _ours(raw: Path, work: Path, buckets: int, blocksize: str) -> dict[str, float]:
    import dask

    from churn_transform.etl.gold import build_gold
    from churn_transform.etl.ingest import ingest
    from churn_transform.lake import Lake

    lake = Lake(str(work / "lake"))
    with dask.config.set(scheduler="threads"):
        began = _now()
        report = ingest(lake, str(raw), {}, buckets, blocksize)
        ingested = _now()
        tasks = [dask.delayed(_logs_only)(lake, b) for b in range(report.buckets)]
        aggregate_rows = sum(dask.compute(*tasks))
        aggregated = _now()
        _, _, rows = build_gold(lake, COHORT)
        done = _now()
    return {
        **_spans(
            convert=(began, ingested), aggregate=(ingested, aggregated), gold=(aggregated, done)
        ),
        "aggregate_rows": aggregate_rows,
        "gold_rows": rows,
        "logs_parquet_bytes": report.tables["user_logs"].bytes_out,
        "buckets": report.buckets,
    }


def _logs_only(lake: object, bucket: int) -> int:
    """The DuckDB query's work: listening windows of every user of a bucket, nothing else."""
    from churn_transform.etl.features import cutoff_of, log_features
    from churn_transform.etl.silver import read_bucket_table

    logs = read_bucket_table(lake, "user_logs", bucket, coded_ids=True)  # type: ignore[arg-type]
    return len(log_features(logs, cutoff_of(COHORT)))


Instant = tuple[float, float]


def _now() -> Instant:
    """Wall seconds, and CPU seconds of every thread of this process, so far."""
    return time.perf_counter(), time.process_time()


def _spans(**spans: tuple[Instant, Instant]) -> dict[str, float]:
    """Each span's wall seconds as ``<name>_s``, its CPU seconds as ``<name>_cpu_s``."""
    seconds = {}
    for name, (start, end) in spans.items():
        seconds[f"{name}_s"], seconds[f"{name}_cpu_s"] = end[0] - start[0], end[1] - start[1]
    return seconds


def _timings(began: Instant, converted: Instant, done: Instant, rows: int, work: Path) -> dict:
    return {
        **_spans(convert=(began, converted), aggregate=(converted, done)),
        "aggregate_rows": rows,
        "logs_parquet_bytes": (work / "user_logs.parquet").stat().st_size,
    }


#: DuckDB's conversion types the YYYYMMDD integers as dates, as ours does (integer arithmetic).
_DATES = {
    "user_logs": ("date",),
    "transactions": ("transaction_date", "membership_expire_date"),
}


def _duckdb(raw: Path, work: Path) -> dict[str, float]:
    import duckdb

    con = duckdb.connect()
    began = _now()
    for name, files in (("user_logs", LOG_FILES), ("transactions", TX_FILES)):
        sources = ", ".join(f"'{raw / f}'" for f in files)
        dates = ", ".join(
            f"make_date({c} // 10000, {c} // 100 % 100, {c} % 100) AS {c}" for c in _DATES[name]
        )
        con.execute(
            f"COPY (SELECT * REPLACE ({dates}) FROM read_csv([{sources}], header=true)) TO "
            f"'{work / name}.parquet' (FORMAT parquet, COMPRESSION zstd)"
        )
    converted = _now()
    # The same LOG_FEATURES as features.log_features, per user, from days before the cutoff.
    windows = ", ".join(
        f"sum(secs) FILTER (WHERE ago <= {w}) AS secs_{w}, "
        f"count(*) FILTER (WHERE ago <= {w}) AS active_days_{w}"
        for w in (7, 14, 30, 44, 60)
    )
    # Materialised as a table: ``SELECT count(*) FROM (... GROUP BY msno)`` would let DuckDB's
    # optimiser drop every aggregate and only count the distinct ids.
    con.execute(f"""
        CREATE TEMP TABLE log_features AS
          SELECT msno, {windows},
                 sum(num_25 + num_50 + num_75 + num_985 + num_100) FILTER (WHERE ago <= 30)
                   AS songs_30,
                 sum(num_25) FILTER (WHERE ago <= 30) AS num_25_30,
                 sum(num_100) FILTER (WHERE ago <= 30) AS num_100_30,
                 sum(num_unq) FILTER (WHERE ago <= 30) AS unq_30,
                 min(ago) AS days_since_last_log, count(*) AS log_days_total,
                 sum(secs) AS secs_total
          FROM (SELECT msno, DATE '{CUTOFF}' - date AS ago, num_25, num_50, num_75, num_985,
                       num_100, num_unq,
                       CASE WHEN total_secs < 0 THEN 0 ELSE least(total_secs, 86400) END AS secs
                FROM '{work / "user_logs.parquet"}' WHERE date < DATE '{CUTOFF}')
          GROUP BY msno""")
    rows = con.execute("SELECT count(*) FROM log_features").fetchall()[0][0]
    done = _now()
    return _timings(began, converted, done, rows, work)


def _pandas(raw: Path, work: Path) -> dict[str, float]:
    import pandas as pd

    began = _now()
    logs = pd.concat([pd.read_csv(raw / f) for f in LOG_FILES], ignore_index=True)
    logs.to_parquet(work / "user_logs.parquet", compression="zstd")
    tx = pd.concat([pd.read_csv(raw / f) for f in TX_FILES], ignore_index=True)
    tx.to_parquet(work / "transactions.parquet", compression="zstd")
    converted = _now()
    cutoff = pd.Timestamp(CUTOFF)
    logs["d"] = pd.to_datetime(logs["date"].astype(str), format="%Y%m%d")
    logs = logs[logs["d"] < cutoff]
    ago = (cutoff - logs["d"]).dt.days
    secs = logs["total_secs"].where(logs["total_secs"] >= 0).clip(upper=86_400).fillna(0)
    recent = ago <= 30
    songs = logs[["num_25", "num_50", "num_75", "num_985", "num_100"]].sum(axis=1)
    wide = {"msno": logs["msno"], "secs_total": secs, "log_days_total": 1}
    for w in (7, 14, 30, 44, 60):
        wide[f"secs_{w}"] = secs.where(ago <= w, 0)
        wide[f"active_days_{w}"] = ago <= w
    for name, values in (
        ("songs_30", songs),
        ("num_25_30", logs["num_25"]),
        ("num_100_30", logs["num_100"]),
        ("unq_30", logs["num_unq"]),
    ):
        wide[name] = values.where(recent, 0)
    sums = pd.DataFrame(wide).groupby("msno").sum()
    sums["days_since_last_log"] = ago.groupby(logs["msno"]).min()
    rows = len(sums)
    done = _now()
    return _timings(began, converted, done, rows, work)


ENGINES = {"ours (Dask)": "ours", "DuckDB": "duckdb", "pandas (naive)": "pandas"}


def _child(engine: str, raw: Path, buckets: int, blocksize: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"etl-{engine}-") as work:
        if engine == "ours":
            result = _ours(raw, Path(work), buckets, blocksize)
        else:
            result = {"duckdb": _duckdb, "pandas": _pandas}[engine](raw, Path(work))
    print(json.dumps(result))


def _measure(engine: str, raw: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--child",
        engine,
        "--raw",
        str(raw),
        "--buckets",
        str(args.buckets),
        "--blocksize",
        args.blocksize,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # reaped here: its own peak, not a running max
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        return {"failed": process.returncode}
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_gib"] = usage.ru_maxrss / 2**20  # KiB on Linux
    return result


def _logs_by_date(raw: Path, into: Path) -> Path:
    """A copy of the raw folder whose user_logs files are sorted by date and id (DuckDB)."""
    import duckdb

    folder = into / "raw-logs-by-date"
    folder.mkdir()
    from churn_transform.schema import RAW_FILES

    for name in RAW_FILES:
        if name not in LOG_FILES:
            (folder / name).symlink_to((raw / name).resolve())
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    for name in LOG_FILES:
        con.execute(
            f"COPY (SELECT * FROM read_csv('{raw / name}', header=true, all_varchar=true) "
            f"ORDER BY date, msno) TO '{folder / name}' (HEADER, DELIMITER ',', QUOTE '')"
        )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, help="folder with the eight KKBox CSVs")
    parser.add_argument("--users", type=int, help="generate this many users first")
    parser.add_argument("--buckets", type=int, default=0)
    parser.add_argument("--blocksize", default="32MB")
    parser.add_argument("--engines", default="ours,duckdb,pandas")
    parser.add_argument("--logs-by-date", action="store_true", help="see the module docstring")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sort-into", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.raw, args.buckets, args.blocksize)
        return
    if args.sort_into:
        _logs_by_date(args.raw, Path(args.sort_into))
        return
    raw = args.raw
    if raw is None:
        from churn_transform.synthetic import GeneratorConfig, generate

        root = Path(tempfile.mkdtemp(prefix="kkbox-etl-"))
        generate(GeneratorConfig(users=args.users), root / "raw", root / "oracle")
        raw = root / "raw"
    if args.logs_by_date:  # in a process of its own: the engines' peak RSS must not include it
        scratch = tempfile.TemporaryDirectory(prefix="kkbox-etl-by-date-")
        command = [sys.executable, __file__, "--raw", str(raw), "--sort-into", scratch.name]
        subprocess.run(command, check=True)
        os.sync()  # the sorted copy's 5 GB are on disk before any engine is timed
        raw = Path(scratch.name) / "raw-logs-by-date"
    size = sum((raw / f).stat().st_size for f in (*LOG_FILES, *TX_FILES))
    print(f"input: {raw}  user_logs+transactions CSV {size / 1e9:.2f} GB, {os.cpu_count()} cores")
    rows = []
    for label, engine in ENGINES.items():
        if engine in args.engines.split(","):
            rows.append((label, _measure(engine, raw, args)))
            print(json.dumps({label: rows[-1][1]}), flush=True)
    header = f"{'engine':<16}{'convert s':>10}{'MB/s':>8}{'aggregate s':>12}{'gold s':>8}"
    print(header + f"{'peak GiB':>10}")
    for label, r in rows:
        if "failed" in r:
            print(f"{label:<16} failed (exit {r['failed']})")
            continue
        gold = f"{r['gold_s']:>8.1f}" if "gold_s" in r else f"{'-':>8}"
        print(
            f"{label:<16}{r['convert_s']:>10.1f}{size / 1e6 / r['convert_s']:>8.0f}"
            f"{r['aggregate_s']:>12.1f}{gold}{r['peak_rss_gib']:>10.2f}"
        )
    base, ours = dict(rows).get("DuckDB"), dict(rows).get("ours (Dask)")
    if base and ours and "failed" not in base and "failed" not in ours:
        print(
            f"ours vs DuckDB: convert throughput {base['convert_s'] / ours['convert_s']:.2f}x "
            "(target >= 0.9x); logs aggregation time "
            f"{ours['aggregate_s'] / base['aggregate_s']:.2f}x (target <= 1.2x); "
            f"our peak {ours['peak_rss_gib']:.2f} GiB (target <= 1 GiB)"
        )


if __name__ == "__main__":
    main()
