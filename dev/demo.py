"""`make demo`: the example DAG extracts three days from the sandbox into a local S3 server,
and the example loading DAG, triggered by the extracts' asset events, loads them into SQLite.

Starts the Conpeek sandbox (seeded, three days of records) and moto's S3 server on loopback,
registers the example DAGs in a throw-away Airflow home (SQLite) and unpauses the loading
DAG and starts the scheduler (with the API server and DAG processor), then runs ``airflow
dags test`` of the extract for three consecutive data intervals: each emits an asset event
naming its object, and the scheduler runs the loading DAG on it. Prints each object's records beside
the rows loaded and the sandbox's count, and stops and removes everything it started.
"""

from __future__ import annotations

import gzip
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The S3 server and the Airflow home are the tests' own set-up (tests/harness.py).
sys.path.insert(0, str(ROOT / "tests"))
from harness import AirflowHome, S3Server  # noqa: E402
from processes import wait_for  # noqa: E402

from airflow_provider_conpeek.testing.sandbox import SandboxServer  # noqa: E402

DAG_ID = "example_conpeek_daily_extract"
LOAD_DAG_ID = "example_conpeek_load_on_asset"
BUCKET = "conpeek-demo"
RECORDS = 60_000
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    sandbox = SandboxServer(records=RECORDS, days=3, start=DAYS[0], seed=7)
    home = AirflowHome(dags=ROOT / "example_dags", scheduler=True)
    database = home.path / "loaded.sqlite"
    home.env.update(CONPEEK_S3_BUCKET=BUCKET, CONPEEK_EXAMPLE_SQLITE=str(database))
    try:
        with sandbox, S3Server() as s3:
            step(f"Conpeek sandbox at {sandbox.url} ({RECORDS:,} records over {len(DAYS)} days)")
            step(f"S3 (moto) at {s3.endpoint_url}, bucket {s3.create_bucket(BUCKET)}")
            home.env["AIRFLOW_CONN_CONPEEK_DEFAULT"] = sandbox.airflow_connection_json()
            home.env["AIRFLOW_CONN_AWS_DEFAULT"] = s3.connection_json()
            step(f"Creating the Airflow metadata DB (SQLite) in {home.path}")
            home.migrate()
            step(f"Registering the example DAGs; unpausing {LOAD_DAG_ID} (scheduled on the asset)")
            home.run("dags", "reserialize", timeout=300)
            home.run("dags", "unpause", LOAD_DAG_ID)
            step("Starting the API server and the scheduler (the loading DAG runs there)")
            home.start_server()
            home.start_scheduler()
            if not all(run_day(home, i, day) for i, day in enumerate(DAYS, 1)):
                return 1
            loaded = wait_for_loads(home, database)
            ok = check(s3, sandbox, loaded)
        step("Stopped the sandbox and the S3 server")
        return 0 if ok else 1
    finally:
        home.close()


def run_day(home: AirflowHome, i: int, day: str) -> bool:
    """``airflow dags test`` for the interval starting on ``day``; its log under the home."""
    # CronDataIntervalTimetable: a manual run at logical date D+1 covers [D, D+1).
    logical = time.strftime("%Y-%m-%d", time.gmtime(_epoch(day) + 86_400))
    step(f"[{i}/{len(DAYS)}] airflow dags test {DAG_ID} {logical}  (interval {day})")
    started = time.monotonic()
    try:
        done = home.run("dags", "test", DAG_ID, logical, timeout=600)
    except RuntimeError as exc:
        step(f"FAILED: {exc}")
        return False
    output = done.stdout + done.stderr
    if "state=success" not in output:
        step(f"FAILED, no successful run in the output:\n{output[-3000:]}")
        return False
    wrote = [line for line in output.splitlines() if "Wrote s3://" in line]
    summary = wrote[-1].split("Wrote ", 1)[1].split(" [", 1)[0] if wrote else ""
    step(f"      done in {time.monotonic() - started:.1f} s: {summary}")
    return True


def wait_for_loads(home: AirflowHome, database: Path) -> dict[str, int]:
    """Wait until the loading DAG has loaded the three objects; stop the scheduler."""
    step(f"Waiting for {LOAD_DAG_ID}, triggered by the three asset events")
    started = time.monotonic()

    def loaded() -> dict[str, int] | None:
        if not database.exists():
            return None
        with sqlite3.connect(database, timeout=30) as db:
            try:
                rows = db.execute(
                    "SELECT source_uri, COUNT(*) FROM voice_campaign_request_summary "
                    "GROUP BY source_uri"
                ).fetchall()
            except sqlite3.OperationalError:  # no table yet
                return None
        return dict(rows) if len(rows) == len(DAYS) else None

    counts = wait_for(f"{LOAD_DAG_ID} to load {len(DAYS)} objects", loaded, 300)
    step(f"      loaded in {time.monotonic() - started:.1f} s into {database}")
    home.stop_all()
    return counts


def check(s3: S3Server, sandbox: SandboxServer, loaded: dict[str, int]) -> bool:
    """Print every object written and the rows loaded from it; True if both match the
    sandbox's counts, day by day."""
    print()
    print(f"{'object':<78} {'records':>8} {'bytes':>9} {'loaded':>8} {'sandbox':>8}")
    total = 0
    ok = True
    for day in DAYS:
        key = f"conpeek/voice_campaign_request_summary/{day.replace('-', '')}T000000.jsonl.gz"
        body = s3.read(BUCKET, key)
        count = len(gzip.decompress(body).splitlines())
        total += count
        window = [
            {"property": "created_date", "operator": "gte", "value": f"{day} 00:00:00"},
            {"property": "created_date", "operator": "lt", "value": _next(day)},
        ]
        uri = f"s3://{BUCKET}/{key}"
        expected = len(sandbox.expected_records(window))
        rows = loaded.get(uri, 0)
        ok = ok and count == rows == expected
        print(f"{uri:<78} {count:>8,} {len(body):>9,} {rows:>8,} {expected:>8,}")
    in_sandbox = len(sandbox.expected_records())
    verdict = "OK" if ok and total == in_sandbox else "MISMATCH"
    print()
    print(
        f"check: {total:,} records in S3, {sum(loaded.values()):,} loaded by {LOAD_DAG_ID}, "
        f"{in_sandbox:,} in the sandbox -> {verdict}"
    )
    return verdict == "OK"


def _epoch(day: str) -> float:
    import calendar

    return calendar.timegm(time.strptime(day, "%Y-%m-%d"))


def _next(day: str) -> str:
    return time.strftime("%Y-%m-%d 00:00:00", time.gmtime(_epoch(day) + 86_400))


if __name__ == "__main__":
    sys.exit(main())
