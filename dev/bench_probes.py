"""The short measurements of ``dev/bench.py`` (no worker subprocess) and the machine's facts.

* :func:`import_cost`: ``import airflow.sdk``, then the operator module, in fresh interpreters.
* :func:`sandbox_latency`: sequential keep-alive requests to a running sandbox.
* :func:`paging_speed`: the provider's paging over an in-memory source that sleeps per
  request, one request at a time and with several in flight.
* :func:`warm_sandbox`: serve a window once, so that no measured run pays for generating it.
* :func:`duckdb_counts`: DuckDB counting records per ``project_id`` in a Parquet and a gzip
  JSON Lines file of the same records, timed; the two count tables must be equal.
* :func:`machine`, :func:`loadavg`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

OPERATOR_MODULE = "airflow_provider_conpeek.operators.voice_campaign_summary"

_IMPORT_SNIPPET = f"""
import json, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
import {OPERATOR_MODULE}
t2 = time.perf_counter()
print(json.dumps({{"sdk": t1 - t0, "operator": t2 - t1}}))
"""

_IMPORTTIME_SNIPPET = f"""
import sys
import airflow.sdk
print("@@MARK@@", file=sys.stderr, flush=True)
import {OPERATOR_MODULE}
"""


def _python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=True, timeout=300
    )


def import_cost(env: dict[str, str], runs: int) -> dict[str, Any]:
    """Median over fresh interpreters; plus the modules the operator import adds."""
    sdk, op = [], []
    for _ in range(runs):
        data = json.loads(_python(["-c", _IMPORT_SNIPPET], env).stdout.strip().splitlines()[-1])
        sdk.append(data["sdk"] * 1000)
        op.append(data["operator"] * 1000)
    trace = _python(["-X", "importtime", "-c", _IMPORTTIME_SNIPPET], env).stderr
    added: list[tuple[str, int]] = []
    after = False
    for line in trace.splitlines():
        if line.startswith("@@MARK@@"):
            after = True
        elif after and line.startswith("import time:") and "|" in line:
            self_us, _cum_us, name = (x.strip() for x in line.split(":", 1)[1].split("|", 2))
            if self_us.isdigit():
                added.append((name, int(self_us)))
    return {
        "module": OPERATOR_MODULE,
        "runs": runs,
        "sdk_ms": sdk,
        "operator_ms": op,
        "sdk_median_ms": statistics.median(sdk),
        "operator_median_ms": statistics.median(op),
        "added_modules": [name for name, _ in added],
        "added_self_ms": sum(s for _, s in added) / 1000,
    }


def sandbox_latency(endpoint: str, api_key: str, count: int = 300) -> dict[str, Any]:
    """``count`` sequential GETs (``limit=5``) on one keep-alive connection, each timed.

    A sandbox that answers keep-alive requests in a few milliseconds has no Nagle /
    delayed-ACK stall (that would cost 40 ms or more per request).
    """
    import requests

    times: list[float] = []
    with requests.Session() as session:
        session.headers["Authorization"] = api_key
        session.get(endpoint, params={"limit": 5}, timeout=30).raise_for_status()  # connect
        for offset in range(count):
            t0 = time.perf_counter()
            response = session.get(endpoint, params={"limit": 5, "offset": offset}, timeout=30)
            times.append(time.perf_counter() - t0)
            response.raise_for_status()
    times_ms = sorted(t * 1000 for t in times)
    return {
        "requests": count,
        "mean_ms": statistics.fmean(times_ms),
        "median_ms": statistics.median(times_ms),
        "p95_ms": times_ms[int(0.95 * (count - 1))],
        "max_ms": times_ms[-1],
    }


def paging_speed(
    records: int = 400, page_size: int = 10, concurrency: int = 8, latency_ms: float = 20.0
) -> dict[str, Any]:
    """``iter_pages`` over ``records`` in memory, each request sleeping ``latency_ms``."""
    from airflow_provider_conpeek.client.paging import iter_pages

    data = [{"id": i} for i in range(records)]
    calls = [0]
    lock = threading.Lock()

    def fetch(offset: int, limit: int) -> list[dict[str, int]]:
        with lock:
            calls[0] += 1
        time.sleep(latency_ms / 1000)
        return data[offset : offset + limit]

    def timed(in_flight: int) -> dict[str, float]:
        calls[0] = 0
        t0 = time.perf_counter()
        pages = iter_pages(fetch, page_size=page_size, concurrency=in_flight)
        got = [record for page in pages for record in page]
        wall = time.perf_counter() - t0
        if got != data:
            raise RuntimeError(f"paging at concurrency={in_flight} returned other records")
        return {"wall_s": wall, "requests": calls[0]}

    return {
        "records": records,
        "page_size": page_size,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "sequential": timed(1),
        "concurrent": timed(concurrency),
    }


def warm_sandbox(endpoint: str, api_key: str, start: str, end: str, records: int) -> float:
    """Fetch the window ``[start, end)`` once in pages of 10,000; returns the seconds taken.

    The sandbox generates (and caches, up to 200,000) each record when first served, on the
    same cores as the client: warmed, the runs that follow find the same server.
    """
    import requests

    window = json.dumps(
        [
            {"property": "created_date", "operator": "gte", "value": f"{start} 00:00:00"},
            {"property": "created_date", "operator": "lt", "value": f"{end} 00:00:00"},
        ]
    )
    t0 = time.perf_counter()
    with requests.Session() as session:
        session.headers["Authorization"] = api_key
        for offset in range(0, records, 10_000):
            params: dict[str, Any] = {"limit": 10_000, "offset": offset, "filter": window}
            session.get(endpoint, params=params, timeout=300).raise_for_status()
    return time.perf_counter() - t0


def duckdb_counts(parquet: Path, jsonl_gz: Path, runs: int = 5) -> dict[str, Any]:
    """Records per ``project_id`` with DuckDB over both files, each query ``runs`` times.

    Every run is a fresh in-memory connection (no cached metadata or results; the files
    themselves are in the OS page cache after the first). ``project_id`` is read as
    ``VARCHAR`` on both sides: cast from the Parquet column, pinned by ``columns=`` on the
    JSON side, so that type inference cannot make the two tables differ. Raises if they do.
    """
    import duckdb

    queries = {  # the file's path is the parameter
        "parquet": (
            "SELECT CAST(project_id AS VARCHAR) AS project_id, count(*) AS n "
            "FROM read_parquet(?) GROUP BY 1 ORDER BY 1"
        ),
        "jsonl_gz": (
            "SELECT project_id, count(*) AS n FROM read_ndjson(?, "
            "columns={'project_id': 'VARCHAR'}, compression='gzip') GROUP BY 1 ORDER BY 1"
        ),
    }
    files = {"parquet": parquet, "jsonl_gz": jsonl_gz}
    out: dict[str, Any] = {"duckdb": duckdb.__version__, "runs": runs, "queries": queries}
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for name, sql in queries.items():
        times = []
        for _ in range(runs):
            con = duckdb.connect()
            try:
                t0 = time.perf_counter()
                rows = con.execute(sql, [str(files[name])]).fetchall()
                times.append(time.perf_counter() - t0)
                threads = con.execute("SELECT current_setting('threads')").fetchone()
            finally:
                con.close()
            if tables.setdefault(name, rows) != rows:
                raise RuntimeError(f"DuckDB: {name} gave different counts from one run to the next")
        out[name] = {
            "bytes": files[name].stat().st_size,
            "times_s": times,
            "median_s": statistics.median(times),
        }
        out["threads"] = threads[0] if threads else None
    if tables["parquet"] != tables["jsonl_gz"]:
        raise RuntimeError(
            "DuckDB: records per project_id differ between the Parquet and the JSON Lines "
            f"object: {tables['parquet'][:5]} vs {tables['jsonl_gz'][:5]}"
        )
    out["groups"] = len(tables["parquet"])
    out["records"] = sum(n for _project, n in tables["parquet"])
    out["equal"] = True
    return out


def machine() -> dict[str, str]:
    """CPU, cores, memory, OS and the versions that matter, for the report."""
    model = _proc_field("/proc/cpuinfo", "model name", lambda v: v) or "unknown"
    mem = _proc_field("/proc/meminfo", "MemTotal", lambda v: f"{int(v.split()[0]) / 2**20:.1f} GiB")
    versions = {}
    for dist in ("apache-airflow", "apache-airflow-providers-amazon", "requests", "boto3", "moto"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "?"
    return {
        "CPU": model,
        "cores": f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})",
        "memory": mem or "?",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Airflow": versions["apache-airflow"],
        "Amazon provider": versions["apache-airflow-providers-amazon"],
        "requests / boto3 / moto": " / ".join(versions[d] for d in ("requests", "boto3", "moto")),
    }


def _proc_field(path: str, key: str, convert: Any) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return str(convert(line.split(":", 1)[1].strip()))
    except OSError:
        pass
    return None


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"
