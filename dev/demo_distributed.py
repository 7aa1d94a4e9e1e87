"""`make demo-distributed`: the example DAG backfilled over 14 days on a distributed Airflow,
all on this machine.

Brings up PostgreSQL (metadata database), Redis (Celery broker), the API server, scheduler,
DAG processor, triggerer and two Celery workers, each worker with its own AIRFLOW_HOME and
TMPDIR as on machines of their own (``tests/distributed.py``, shared with
``tests/test_distributed.py``), plus the Conpeek sandbox and moto's S3 server. Then runs
``airflow backfill create`` of ``example_conpeek_daily_extract`` for the 14 days before
today (UTC), prints how many tasks each worker ran and each day's object beside the
sandbox's records (OK/MISMATCH), and stops and removes everything it started. Exit status 1
on any failed run or mismatch.

Each phase is one function taking the running deployment (:func:`backfill_phase`); a phase
running another DAG for given windows goes beside it, using ``CeleryDeployment.run_dag``
(a manual run for a logical date and window, through the REST API, waited for) and
:func:`check_objects`.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pendulum

ROOT = Path(__file__).resolve().parent.parent
# The deployment, S3 server and processes are the tests' own set-up (tests/).
sys.path.insert(0, str(ROOT / "tests"))
from distributed import (  # noqa: E402
    DAILY_EXTRACT,
    CeleryDeployment,
    daily_extract_for_backfill,
)
from harness import S3Server  # noqa: E402

from airflow_provider_conpeek.testing.sandbox import (  # noqa: E402
    FaultConfig,
    FaultRule,
    SandboxServer,
)

DAILY_ID = "example_conpeek_daily_extract"
DAILY_KEY = "conpeek/voice_campaign_request_summary/{start:%Y%m%dT%H%M%S}.jsonl.gz"
BUCKET = "conpeek-demo"
DAYS = 14
RECORDS = DAYS * 2_000
RUN_TIMEOUT = 600.0
# Each day's first one-record probe finds nothing: every sensor defers to the triggerer.
LATE_DATA = FaultConfig(rules=[FaultRule("empty", limits=[1], first=1, per_filter=True)])


class Window(NamedTuple):
    """One extract's half-open interval and the S3 key it should have written."""

    start: pendulum.DateTime
    end: pendulum.DateTime
    key: str


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    today = pendulum.now("UTC").start_of("day")
    days = [today.subtract(days=n) for n in range(DAYS, 0, -1)]
    sandbox = SandboxServer(
        records=RECORDS, days=DAYS, start=days[0].to_date_string(), seed=7, faults=LATE_DATA
    )
    began = time.monotonic()
    with sandbox, S3Server() as s3:
        step(f"Conpeek sandbox at {sandbox.url} ({RECORDS:,} records over {DAYS} days)")
        step(f"S3 (moto) at {s3.endpoint_url}, bucket {s3.create_bucket(BUCKET)}")
        env = {
            "AIRFLOW_CONN_CONPEEK_DEFAULT": sandbox.airflow_connection_json(),
            "AIRFLOW_CONN_AWS_DEFAULT": s3.connection_json(),
            "CONPEEK_S3_BUCKET": BUCKET,
        }
        with CeleryDeployment(None, env) as cluster:
            cluster.add_dag(DAILY_EXTRACT.name, daily_extract_for_backfill(today.add(days=1)))
            step(
                "Starting PostgreSQL, Redis, the API server, scheduler, DAG processor, "
                f"triggerer and {len(cluster.workers)} Celery workers (logs: {cluster.logs})"
            )
            try:
                cluster.start()
            except Exception:
                print(cluster.logs_tail(), file=sys.stderr)
                raise
            step(
                f"Up: PostgreSQL on 127.0.0.1:{cluster.postgres.port}, Redis on "
                f"127.0.0.1:{cluster.redis.port}, API server at {cluster.home.api_url}; workers "
                + ", ".join(f"{w.name} (TMPDIR {w.tmp})" for w in cluster.workers)
            )
            ok = backfill_phase(cluster, s3, sandbox, days)
            # The next phase goes here, e.g. ok = split_interval_phase(cluster, ...) and ok
            leftovers = {w.name: w.leftovers() for w in cluster.workers}
            for name, paths in leftovers.items():
                if paths:
                    step(f"LEFTOVER temporary files on {name}: {paths}")
                    ok = False
            step("Stopping every process, removing PostgreSQL's and Redis's files")
    step(f"Stopped the sandbox and the S3 server ({time.monotonic() - began:.0f} s in all)")
    return 0 if ok else 1


def backfill_phase(
    cluster: CeleryDeployment,
    s3: S3Server,
    sandbox: SandboxServer,
    days: Sequence[pendulum.DateTime],
) -> bool:
    """``airflow backfill create`` of the daily extract over ``days``; True if every run
    succeeded and every object holds the sandbox's records of its day."""
    cluster.wait_for_dag(DAILY_ID)
    cluster.unpause(DAILY_ID)  # the scheduler runs no run of a paused DAG
    first, last = days[0], days[-1]
    step(
        f"airflow backfill create --dag-id {DAILY_ID} --from-date {first:%Y-%m-%d} "
        f"--to-date {last:%Y-%m-%d}  ({len(days)} runs)"
    )
    started = time.monotonic()
    cluster.backfill(DAILY_ID, first.isoformat(), last.isoformat(), 2 * len(cluster.workers))
    runs = cluster.wait_for_runs(DAILY_ID, len(days), RUN_TIMEOUT)
    states = Counter(r["state"] for r in runs)
    step(f"      {len(runs)} runs finished in {time.monotonic() - started:.0f} s: {dict(states)}")
    print_worker_counts(cluster, DAILY_ID)
    windows = [Window(d, d.add(days=1), DAILY_KEY.format(start=d)) for d in days]
    objects_ok = check_objects(s3, sandbox, windows)
    return objects_ok and states == {"success": len(days)}


def print_worker_counts(cluster: CeleryDeployment, dag_id: str) -> None:
    """A table of the tasks of ``dag_id`` each worker ran (the task instances' hostname)."""
    tis = cluster.task_instances(dag_id)
    hosts = [w.name for w in cluster.workers]
    counts = Counter((ti["task_id"], ti["hostname"]) for ti in tis)
    tasks = sorted({ti["task_id"] for ti in tis})
    print()
    print(f"{'task (' + dag_id + ')':<50}" + "".join(f"{h:>10}" for h in hosts))
    for task in tasks:
        print(f"{task:<50}" + "".join(f"{counts[(task, h)]:>10}" for h in hosts))
    if others := {ti["hostname"] for ti in tis} - set(hosts):
        print(f"(ran elsewhere: {others})")
    print()


def check_objects(s3: S3Server, sandbox: SandboxServer, windows: Sequence[Window]) -> bool:
    """Print each window's object beside the sandbox's records of that window; True if every
    object holds exactly those records, in order."""
    fmt = "YYYY-MM-DD HH:mm:ss"
    print(f"{'window start':<20} {'object':<82} {'records':>8} {'sandbox':>8}")
    ok = True
    in_s3 = in_sandbox = 0
    for window in windows:
        expected = sandbox.expected_records(
            [
                {"property": "created_date", "operator": "gte", "value": window.start.format(fmt)},
                {"property": "created_date", "operator": "lt", "value": window.end.format(fmt)},
            ]
        )
        records: list[Any] | None
        try:
            body = s3.read(BUCKET, window.key)
            records = [json.loads(line) for line in gzip.decompress(body).splitlines()]
        except Exception:  # no object: a mismatch, reported below
            records = None
        match = records == expected
        ok = ok and match
        in_s3 += len(records or [])
        in_sandbox += len(expected)
        count = "-" if records is None else f"{len(records):,}"
        uri = f"s3://{BUCKET}/{window.key}"
        print(
            f"{window.start.format(fmt):<20} {uri:<82} {count:>8} {len(expected):>8,} "
            f"{'OK' if match else 'MISMATCH'}"
        )
    verdict = "OK" if ok else "MISMATCH"
    print(
        f"\ncheck: {len(windows)} objects, {in_s3:,} records in S3, {in_sandbox:,} in the "
        f"sandbox's windows -> {verdict}\n"
    )
    return ok


if __name__ == "__main__":
    sys.exit(main())
