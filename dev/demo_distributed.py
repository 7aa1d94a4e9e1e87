"""`make demo-distributed`: the example DAG backfilled over 14 days on a distributed Airflow,
then one day split into parts over the workers, all on this machine.

Brings up PostgreSQL (metadata database), Redis (Celery broker), the API server, scheduler,
DAG processor, triggerer and two Celery workers, each worker with its own AIRFLOW_HOME and
TMPDIR as on machines of their own (``tests/distributed.py``, shared with
``tests/test_distributed.py``), plus the Conpeek sandbox and moto's S3 server. Then runs
``airflow backfill create`` of ``example_conpeek_daily_extract`` for the 14 days before
today (UTC), prints how many tasks each worker ran and each day's object beside the
sandbox's records (OK/MISMATCH); then creates the ``conpeek_api`` pool and unpauses
``example_conpeek_split_interval``, whose latest day (yesterday) runs in mapped parts, and
checks the parts against the backfill's object of that day; then stops and removes
everything it started. Exit status 1 on any failed run or mismatch.

Each phase is one function taking the running deployment (:func:`backfill_phase`,
:func:`split_phase`); another phase goes beside them, using ``CeleryDeployment.run_dag``
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
    SPLIT_INTERVAL,
    CeleryDeployment,
    daily_extract_for_backfill,
    most_at_once,
    split_interval,
)
from harness import S3Server  # noqa: E402

from airflow_provider_conpeek.testing.sandbox import (  # noqa: E402
    FaultConfig,
    FaultRule,
    SandboxServer,
)

DAILY_ID = "example_conpeek_daily_extract"
DAILY_KEY = "conpeek/voice_campaign_request_summary/{start:%Y%m%dT%H%M%S}.jsonl.gz"
SPLIT_ID = "example_conpeek_split_interval"
SPLIT_PREFIX = "conpeek/voice_campaign_request_summary_parts/{start:%Y%m%dT%H%M%S}"
POOL, POOL_SLOTS = "conpeek_api", 2
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
            cluster.add_dag(SPLIT_INTERVAL.name, split_interval())
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
            ok = split_phase(cluster, s3, sandbox, days[-1]) and ok
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


def split_phase(
    cluster: CeleryDeployment, s3: S3Server, sandbox: SandboxServer, day: pendulum.DateTime
) -> bool:
    """The split-interval example on its latest day (yesterday): its parts, bounded by the
    pool, then the manifest; True if the parts are that day's records, record for record,
    the same as the backfill's single object of the day."""
    step(f'airflow pools set {POOL} {POOL_SLOTS} "Conpeek API: extracts running at once"')
    cluster.set_pool(POOL, POOL_SLOTS, "Conpeek API: extracts running at once")
    cluster.wait_for_dag(SPLIT_ID)
    step(f"Unpausing {SPLIT_ID}: the scheduler runs its latest interval, {day:%Y-%m-%d}")
    started = time.monotonic()
    cluster.unpause(SPLIT_ID)
    (run,) = cluster.wait_for_runs(SPLIT_ID, 1, RUN_TIMEOUT)
    tis = cluster.task_instances(SPLIT_ID, run["dag_run_id"])
    parts = [ti for ti in tis if ti["task_id"] == "extract_part"]
    step(
        f"      {run['state']} in {time.monotonic() - started:.0f} s: {len(parts)} parts, at "
        f"most {most_at_once(parts)} at once (pool {POOL}: {POOL_SLOTS} slots)"
    )
    print_worker_counts(cluster, SPLIT_ID)
    if run["state"] != "success":
        return False
    prefix = SPLIT_PREFIX.format(start=day)
    manifest = json.loads(s3.read(BUCKET, f"{prefix}/manifest.json"))
    print(f"{'part object':<96} {'records':>8}  window")
    union = []
    for part in manifest["parts"]:
        union += gzip.decompress(s3.read(BUCKET, part["key"])).splitlines()
        window = part["window"]
        print(f"{part['s3_uri']:<96} {part['records']:>8,}  [{window['start']}, {window['end']})")
    single = gzip.decompress(s3.read(BUCKET, DAILY_KEY.format(start=day))).splitlines()
    same = union == single
    print(
        f"\nmanifest: s3://{BUCKET}/{prefix}/manifest.json, {manifest['records']:,} records; "
        f"the parts == the backfill's object of {day:%Y-%m-%d} ({len(single):,} records), "
        f"record for record -> {'OK' if same else 'MISMATCH'}\n"
    )
    windows = [Window(day, day.add(days=1), DAILY_KEY.format(start=day))]
    return same and check_objects(s3, sandbox, windows)


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
