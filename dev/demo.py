"""`make demo`: the example DAG extracts three days from the sandbox into a local S3 server.

Starts the Conpeek sandbox (seeded, three days of records) and moto's S3 server on loopback,
runs ``airflow dags test`` for three consecutive data intervals with a throw-away SQLite
metadata DB, prints what was written, checks the counts against the sandbox, and stops
everything it started.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_conpeek_daily_extract"
BUCKET = "conpeek-demo"
RECORDS = 60_000
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="conpeek-demo-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": "us-east-1",
            "CONPEEK_S3_BUCKET": BUCKET,
        }
    )
    env = os.environ
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    from moto.server import ThreadedMotoServer

    from airflow_provider_conpeek.testing.sandbox import SandboxServer

    sandbox = SandboxServer(records=RECORDS, days=3, start=DAYS[0], seed=7)
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        sandbox.start()
        s3.start()
        host, port = s3.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        step(f"Conpeek sandbox at {sandbox.url} ({RECORDS:,} records over {len(DAYS)} days)")
        step(f"S3 (moto) at {endpoint}, bucket {BUCKET}")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        env["AIRFLOW_CONN_CONPEEK_DEFAULT"] = sandbox.airflow_connection_json()
        env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        )
        logs = home / "logs"
        logs.mkdir()
        step(f"Creating the Airflow metadata DB (SQLite) in {home}")
        airflow = [sys.executable, "-m", "airflow"]
        subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)

        for i, day in enumerate(DAYS, 1):
            # CronDataIntervalTimetable: a manual run at logical date D+1 covers [D, D+1).
            logical = time.strftime("%Y-%m-%d", time.gmtime(_epoch(day) + 86_400))
            step(f"[{i}/{len(DAYS)}] airflow dags test {DAG_ID} {logical}  (interval {day})")
            started = time.monotonic()
            log_file = logs / f"{day}.log"
            with log_file.open("w") as out:
                result = subprocess.run(
                    [*airflow, "dags", "test", DAG_ID, logical],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            if result.returncode != 0 or "state=success" not in log_file.read_text():
                step(f"FAILED: see {log_file}")
                print(log_file.read_text()[-3000:])
                return 1
            wrote = [line for line in log_file.read_text().splitlines() if "Wrote s3://" in line]
            summary = wrote[-1].split("Wrote ", 1)[1].split(" [", 1)[0] if wrote else ""
            step(f"      done in {time.monotonic() - started:.1f} s: {summary}")

        print()
        print(f"{'object':<78} {'records':>8} {'bytes':>9}")
        total = 0
        ok = True
        for day in DAYS:
            key = f"conpeek/voice_campaign_request_summary/{day}.jsonl.gz"
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            count = len(gzip.decompress(body).splitlines())
            total += count
            expected = len(
                sandbox.expected_records(
                    [
                        {"property": "created_date", "operator": "gte", "value": f"{day} 00:00:00"},
                        {"property": "created_date", "operator": "lt", "value": _next(day)},
                    ]
                )
            )
            ok = ok and count == expected
            print(f"{'s3://' + BUCKET + '/' + key:<78} {count:>8,} {len(body):>9,}")
        in_sandbox = len(sandbox.expected_records())
        print()
        verdict = "OK" if ok and total == in_sandbox else "MISMATCH"
        print(f"check: {total:,} records in S3, {in_sandbox:,} in the sandbox -> {verdict}")
        return 0 if verdict == "OK" else 1
    finally:
        s3.stop()
        sandbox.stop()
        step("Stopped the sandbox and the S3 server")


def _epoch(day: str) -> float:
    import calendar

    return calendar.timegm(time.strptime(day, "%Y-%m-%d"))


def _next(day: str) -> str:
    return time.strftime("%Y-%m-%d 00:00:00", time.gmtime(_epoch(day) + 86_400))


if __name__ == "__main__":
    sys.exit(main())
