"""Benchmark the experiments step on 10M row-level events (about 875k users).

Generates events as Parquet and CSV in benchmarks/_data (git-ignored, reused when
present), then times, each in its own process, wall clock and peak RSS:

- the step (``helpers.experiments.analyse_experiment``, as the month's step runs
  it): read rows -> per-user -> per-arm sufficient statistics in DuckDB, the plan,
  checks, tests, verdicts and the quote trace, from Parquet and from CSV;
- a plain hand-written DuckDB aggregation (per user, then per arm) of the same file.

Then times the tests on the summary statistics alone (describe, check, compare)
in this process, median of 200 repeats. Run from the repository root:

    .venv/bin/python benchmarks/bench_experiments.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).parent / "_data" / "experiments"
N_EVENTS = 10_000_000
N_USERS = 875_000

DEFINITION = """\
name: bench
hypothesis: A quoted subject line lifts revenue per visitor.
dates: {{start: 2026-11-01, end: 2026-11-28}}
variants:
  - {{id: control, name: Control, copy: old, quote_ids: []}}
  - {{id: quote-a, name: Quote A, copy: a, quote_ids: [q-2026-10-01-001]}}
  - {{id: quote-b, name: Quote B, copy: b, quote_ids: [q-2026-10-02-001]}}
split: {{control: 0.3333333333, quote-a: 0.3333333333, quote-b: 0.3333333334}}
primary_metric: revenue_per_visitor
secondary_metrics: [conversion_rate, visit_rate, aov]
mde: 0.05
baseline: {{revenue_per_visitor: 1.6, revenue_per_visitor_sd: 20, daily_units: 30000}}
capping: {{revenue: 0.99}}
results:
  file: {file}
  kind: rows
  unit_column: user_id
"""

STEP = """
import json, logging, resource, sys, time
start = time.perf_counter()
logging.disable(logging.WARNING)
from helpers import experiments
from helpers.study import load_defaults
imported = time.perf_counter()
phases = {}
def timed(name, function):
    def run(*args, **kwargs):
        began = time.perf_counter()
        result = function(*args, **kwargs)
        phases[name] = time.perf_counter() - began
        return result
    return run
# analyse_experiment looks these up when called: time them inside the real step.
experiments.read_results = timed("read", experiments.read_results)
experiments.plan_experiment = timed("plan", experiments.plan_experiment)
definition = experiments.load_experiment(sys.argv[1],
    defaults=load_defaults()["experiments"])
analysis = experiments.analyse_experiment(definition)
done = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
peak, cpu = usage.ru_maxrss / 1024**2, usage.ru_utime + usage.ru_stime
print(json.dumps({"wall_in_process": done - start, "peak_gb": peak, "cpu": cpu,
                  "imports": imported - start, "plan": phases["plan"],
                  "read": phases["read"],
                  "tests": done - imported - phases["plan"] - phases["read"],
                  "n": int(analysis["arms"]["n"].sum())}))
"""

HAND = """
import json, resource, sys, time
start = time.perf_counter()
import duckdb
path = sys.argv[1]
source = (f"read_parquet('{path}')" if path.endswith(".parquet")
          else f"read_csv('{path}', header = true)")
arms = duckdb.sql(f'''
    WITH per_user AS (
        SELECT user_id, min(variant) AS variant, sum(revenue) AS revenue,
               sum(orders) AS orders, max(visited) AS visited
        FROM {source} GROUP BY user_id)
    SELECT variant, count(*) AS n, sum(revenue) AS revenue,
           sum(revenue * revenue) AS revenue_sq, sum(orders) AS orders,
           sum(orders * orders) AS orders_sq, sum(revenue * orders) AS revenue_x_orders,
           sum(CAST(orders > 0 AS INT)) AS conversions, sum(visited) AS visits
    FROM per_user GROUP BY variant''').fetchall()
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
peak, cpu = usage.ru_maxrss / 1024**2, usage.ru_utime + usage.ru_stime
print(json.dumps({"wall_in_process": wall, "peak_gb": peak, "cpu": cpu,
                  "arms": len(arms)}))
"""


def generate(folder: Path) -> None:
    """Write 10M events of 875k users in three arms as Parquet and CSV."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    parquet, csv = folder / "events.parquet", folder / "events.csv"
    if parquet.exists() and csv.exists():
        return
    connection = duckdb.connect()
    connection.execute("SELECT setseed(0.42)")
    # Users are hashed into arms; about 1.1% of events are orders with a
    # log-normal value, and the two quoted arms convert a little more often.
    connection.execute(f"""
        CREATE TABLE events AS
        WITH raw AS (
            SELECT user_id, CAST(hash(user_id) % 3 AS INTEGER) AS arm, u1, u2, u3
            FROM (SELECT CAST(floor(random() * {N_USERS}) AS BIGINT) AS user_id,
                         random() AS u1, random() AS u2, random() AS u3
                  FROM range({N_EVENTS})))
        SELECT user_id,
               ['control', 'quote-a', 'quote-b'][1 + arm] AS variant,
               CAST(u3 < 0.3 AS INTEGER) AS visited,
               CAST(u1 < 0.011 * (1 + 0.04 * arm) AS INTEGER) AS orders,
               CASE WHEN u1 < 0.011 * (1 + 0.04 * arm)
                    THEN round(exp(4 + 0.9 * sqrt(-2 * ln(u2 + 1e-12))
                                   * cos(2 * pi() * u3)), 2)
                    ELSE 0 END AS revenue
        FROM raw""")
    connection.execute(f"COPY events TO '{parquet}' (FORMAT parquet)")
    connection.execute(f"COPY events TO '{csv}' (FORMAT csv, HEADER)")
    connection.close()


def run_process(script: str, argument: str) -> dict:
    """Run `script` in a fresh Python process; return its JSON plus wall time."""
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", script, argument],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    return result


def time_summary_tests(definition_path: Path) -> tuple[float, float]:
    """Return median seconds of the tests on arm sums: the array core (describe,
    sample-ratio check, every comparison, correction, Bayes) and the same with
    the pandas tables around it."""
    import logging
    import statistics

    from helpers import experiment_stats, experiments
    from helpers.study import load_defaults

    logging.disable(logging.WARNING)
    definition = experiments.load_experiment(
        definition_path, defaults=load_defaults()["experiments"]
    )
    arms, _, info = experiments.read_results(definition)
    plan = experiments.plan_experiment(definition)
    columns = {c: arms[c].to_numpy(float) for c in arms.columns if c != "variant"}
    variants = arms["variant"].to_numpy(object)
    shares = [definition["split"][v] for v in variants]

    def core():
        table = experiments.describe_arrays(columns, variants, definition)
        has_srm = experiment_stats.srm_test(columns["n"], shares) < 0.001
        experiments.compare_family(table, definition, has_srm=has_srm)

    def tables():
        values = experiments.describe_arms(arms, definition)
        checks = experiments.check_experiment(
            arms, values, definition, plan=plan, info=info
        )
        experiments.compare_arms(values, definition, checks=checks)

    medians = []
    for run in (core, tables):
        run()
        timings = []
        for _ in range(200):
            start = time.perf_counter()
            run()
            timings.append(time.perf_counter() - start)
        medians.append(statistics.median(timings))
    return medians[0], medians[1]


def main() -> None:
    if "--summary-only" in sys.argv:
        summary, with_tables = time_summary_tests(
            DATA / "bench-parquet" / "experiment.yml"
        )
        print(f"core {summary * 1000:.2f} ms, with tables {with_tables * 1000:.2f} ms")
        return
    generate(DATA)
    report = {}
    for fmt in ("parquet", "csv"):
        path = DATA / f"bench-{fmt}" / "experiment.yml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(DEFINITION.format(file=DATA / f"events.{fmt}"), "utf-8")
        step = run_process(STEP, str(path))
        hand = run_process(HAND, str(DATA / f"events.{fmt}"))
        report[fmt] = (step, hand)
        print(
            f"{fmt:8} step phases: imports {step['imports']:.2f} s, read + per-user + "
            f"per-arm sums {step['read']:.2f} s, plan (statsmodels power, imported "
            f"here) {step['plan']:.2f} s, definition, checks, tests, verdicts, trace "
            f"{step['tests']:.3f} s"
        )
        print(
            f"{fmt:8} step   wall {step['wall']:.2f} s (in process "
            f"{step['wall_in_process']:.2f} s), CPU {step['cpu']:.2f} s, "
            f"peak RSS {step['peak_gb']:.2f} GB, "
            f"{step['n']:,} users"
        )
        print(
            f"{fmt:8} duckdb wall {hand['wall']:.2f} s (in process "
            f"{hand['wall_in_process']:.2f} s), CPU {hand['cpu']:.2f} s, "
            f"peak RSS {hand['peak_gb']:.2f} GB; load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{fmt:8} ratio step / hand-written: wall "
            f"{step['wall'] / hand['wall']:.2f}, CPU {step['cpu'] / hand['cpu']:.2f}, "
            f"RSS {step['peak_gb'] / hand['peak_gb']:.2f}"
        )
    summary, with_tables = time_summary_tests(DATA / "bench-parquet" / "experiment.yml")
    print(
        f"tests on summary statistics, 3 arms x 5 metrics (describe, SRM, 10 "
        f"comparisons, Holm, Bayes): {summary * 1000:.2f} ms median of 200; with the "
        f"pandas result tables and checks around them {with_tables * 1000:.2f} ms"
    )
    targets = {
        "parquet wall <= 3 s": report["parquet"][0]["wall"] <= 3,
        "parquet peak <= 0.6 GB": report["parquet"][0]["peak_gb"] <= 0.6,
        "csv wall <= 4 s": report["csv"][0]["wall"] <= 4,
        "summary tests < 10 ms": summary < 0.010,
    }
    for target, met in targets.items():
        print(f"{'met' if met else 'MISSED':7} {target}")


if __name__ == "__main__":
    main()
