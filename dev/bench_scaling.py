"""`make bench-scaling`: records/s of one day split into parts, on 1 and on 2 Celery workers.

For each worker count, brings up the distributed deployment of ``tests/distributed.py``
(PostgreSQL, Redis, API server, scheduler, DAG processor, triggerer, the Celery workers,
each running ``CONCURRENCY`` tasks at a time), a Conpeek sandbox answering every request
after ``LATENCY_MS`` and moto's S3 server, then runs the example split-interval DAG on one
day of ``RECORDS`` records in ``PARTS`` parts with a pool of ``PARTS`` slots (so the pool
does not limit it: the workers do). Measures, from the task instances' own start and end
times: the parts' span (first part started -> last part ended) and so records/s, and the
whole run. Checks every run's parts against the sandbox, record for record. Writes
``docs/scaling_results.inc`` (the table in docs/scaling.rst) and ``docs/scaling.json``.

Everything shares this machine's 2 cores: the workers, the sandbox, the S3 server and
Airflow's own processes.
"""

from __future__ import annotations

import gzip
import json
import platform
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pendulum

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from distributed import SPLIT_INTERVAL, CeleryDeployment, split_interval  # noqa: E402
from harness import S3Server  # noqa: E402

from airflow_provider_conpeek.testing.sandbox import FaultConfig, SandboxServer  # noqa: E402

SPLIT_ID = "example_conpeek_split_interval"
POOL = "conpeek_api"
RECORDS = 400_000
PARTS = 8
CONCURRENCY = 2  # tasks at once per worker
LATENCY_MS = 25
WORKER_COUNTS = (1, 2)
RUN_TIMEOUT = 900.0
PREFIX = "conpeek/voice_campaign_request_summary_parts/{day:%Y%m%dT%H%M%S}"
RESULTS_INC = ROOT / "docs" / "scaling_results.inc"
RESULTS_JSON = ROOT / "docs" / "scaling.json"


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def measure(
    workers: int, sandbox: SandboxServer, s3: S3Server, day: pendulum.DateTime
) -> dict[str, Any]:
    bucket = s3.fresh_bucket(f"scaling-{workers}")
    env = {
        "AIRFLOW_CONN_CONPEEK_DEFAULT": sandbox.airflow_connection_json(),
        "AIRFLOW_CONN_AWS_DEFAULT": s3.connection_json(),
        "CONPEEK_S3_BUCKET": bucket,
    }
    names = [f"worker-{n}" for n in range(1, workers + 1)]
    with CeleryDeployment(None, env, workers=names, concurrency=CONCURRENCY) as cluster:
        cluster.add_dag(SPLIT_INTERVAL.name, split_interval(PARTS))
        step(f"{workers} worker(s): starting the deployment (logs: {cluster.logs})")
        try:
            cluster.start()
        except Exception:
            print(cluster.logs_tail(), file=sys.stderr)
            raise
        cluster.set_pool(POOL, PARTS, "Conpeek API: extracts running at once")
        cluster.wait_for_dag(SPLIT_ID)
        cluster.unpause(SPLIT_ID)  # catchup off: the scheduler runs yesterday's interval
        (run,) = cluster.wait_for_runs(SPLIT_ID, 1, RUN_TIMEOUT)
        tis = cluster.task_instances(SPLIT_ID, run["dag_run_id"])
        leftovers = {w.name: [str(p) for p in w.leftovers()] for w in cluster.workers}
    if run["state"] != "success":
        raise RuntimeError(f"the split run failed: {run}; task instances: {tis}")
    parts = [ti for ti in tis if ti["task_id"] == "extract_part"]
    manifest = json.loads(s3.read(bucket, f"{PREFIX.format(day=day)}/manifest.json"))
    records = [
        json.loads(line)
        for part in manifest["parts"]
        for line in gzip.decompress(s3.read(bucket, part["key"])).splitlines()
    ]
    fmt = "YYYY-MM-DD HH:mm:ss"
    expected = sandbox.expected_records(
        [
            {"property": "created_date", "operator": "gte", "value": day.format(fmt)},
            {"property": "created_date", "operator": "lt", "value": day.add(days=1).format(fmt)},
        ]
    )
    span = seconds(min(ti["start_date"] for ti in parts), max(ti["end_date"] for ti in parts))
    result = {
        "workers": workers,
        "concurrency_per_worker": CONCURRENCY,
        "parts": len(parts),
        "records": len(records),
        "matches_sandbox": records == expected,
        "parts_span_s": round(span, 1),
        "records_per_s": round(len(records) / span),
        "part_seconds": sorted(round(seconds(ti["start_date"], ti["end_date"]), 1) for ti in parts),
        "run_s": round(seconds(run["start_date"], run["end_date"]), 1),
        "parts_per_worker": dict(Counter(ti["hostname"] for ti in parts)),
        "leftovers": leftovers,
    }
    step(f"{workers} worker(s): {json.dumps(result)}")
    return result


def write(results: list[dict[str, Any]]) -> None:
    RESULTS_JSON.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "records": RECORDS,
                "parts": PARTS,
                "latency_ms": LATENCY_MS,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    base = results[0]["records_per_s"]
    rows = [
        f"   * - {r['workers']}\n"
        f"     - {r['parts_span_s']:.1f} s\n"
        f"     - {r['records_per_s']:,}\n"
        f"     - {r['records_per_s'] / base:.2f}x\n"
        f"     - {r['run_s']:.1f} s\n"
        f"     - {', '.join(f'{k}: {v}' for k, v in sorted(r['parts_per_worker'].items()))}\n"
        f"     - {'yes' if r['matches_sandbox'] else 'NO'}"
        for r in results
    ]
    RESULTS_INC.write_text(
        f"Written by ``make bench-scaling`` on {time.strftime('%Y-%m-%d')} (this machine: 2 "
        f"cores shared by everything): one day of {RECORDS:,} records split into {PARTS} "
        f"parts, the sandbox answering each request after {LATENCY_MS} ms, each worker "
        f"running {CONCURRENCY} tasks at once, a pool of {PARTS} slots. Records/s is the "
        "day's records over the parts' span (first part started to last part ended, from "
        "the task instances' own times); the run adds the split task before and the "
        "manifest after.\n\n"
        ".. list-table::\n"
        "   :header-rows: 1\n\n"
        "   * - Celery workers\n"
        "     - parts' span\n"
        "     - records/s\n"
        "     - vs 1 worker\n"
        "     - whole run\n"
        "     - parts per worker\n"
        "     - parts == sandbox\n" + "\n".join(rows) + "\n"
    )


def main() -> int:
    day = pendulum.now("UTC").start_of("day").subtract(days=1)  # the split DAG's latest day
    sandbox = SandboxServer(
        records=RECORDS,
        days=1,
        start=day.to_date_string(),
        seed=11,
        faults=FaultConfig(latency=LATENCY_MS / 1000),
    )
    results = []
    with sandbox, S3Server() as s3:
        step(f"Sandbox: {RECORDS:,} records on {day.to_date_string()}, {LATENCY_MS} ms/request")
        for workers in WORKER_COUNTS:
            results.append(measure(workers, sandbox, s3, day))
    write(results)
    step(f"Wrote {RESULTS_INC.relative_to(ROOT)} and {RESULTS_JSON.relative_to(ROOT)}")
    ok = all(r["matches_sandbox"] and not any(r["leftovers"].values()) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
