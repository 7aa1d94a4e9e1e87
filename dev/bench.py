"""`make bench`: the operator against a hand-written loop, on a local sandbox and S3 server.

Measures, in one run (see docs/benchmarks.rst for what each part means):

1. Throughput at 25 ms per request: (a) the naive loop, (b) the operator at
   ``concurrency=1``, (c) the operator with its defaults.
2. Memory with no latency: peak RSS of (c) and (a) for a small and a large window.
3. Client-side CPU with no latency, plus a cProfile breakdown of the operator.
4. Import cost of the operator module over ``import airflow.sdk``.
5. Sandbox request latency: sequential keep-alive requests.
6. Paging speed: the provider's paging over an in-memory source at 20 ms per request.
7. Adaptive concurrency: the naive loop against the defaults at 25 and 100 ms on 12,000
   and 3,000 records; a sandbox allowing 2 requests at once (429 beyond); one whose latency
   grows with load (4 at once, the others queue). Each row against its ceiling.
8. Formats: the operator writing Parquet against gzip JSON Lines on 200,000 records (write
   CPU, the conversion apart, object size, peak RSS, wall time), then DuckDB counting
   records per ``project_id`` in each object, downloaded once to local files.

The Conpeek sandbox runs as ``conpeek-sandbox`` processes; moto's S3 server and the Airflow
home (environment only: the runs need no metadata DB) come from ``tests/harness.py``. Every
measured client is a fresh subprocess (``dev/bench_worker.py``), so its CPU time and peak RSS
are its own. Results go to ``docs/benchmarks.json``; ``dev/bench_render.py`` turns them into
``docs/benchmarks_results.inc``, which ``docs/benchmarks.rst`` includes. Every process and
temporary directory started here is stopped or removed on exit, failures and Ctrl-C included.

Example::

    .venv/bin/python dev/bench.py              # the full run (`make bench`), ~5 minutes
    .venv/bin/python dev/bench.py --quick      # smoke run: small sizes, prints only
    .venv/bin/python dev/bench.py --only formats   # section 8 alone, merged into the files
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import bench_probes as probes
import bench_render
from bench_targets import cpu_s, evaluate

ROOT = Path(__file__).resolve().parent.parent
# The S3 server, the Airflow home and process handling are the tests' own (tests/harness.py).
sys.path.insert(0, str(ROOT / "tests"))
from harness import AirflowHome, S3Server  # noqa: E402
from processes import Process, wait_for  # noqa: E402

BIN = Path(sys.executable).parent
WORKER = ROOT / "dev" / "bench_worker.py"
DEFAULT_JSON = ROOT / "docs" / "benchmarks.json"
BUCKET = "conpeek-bench"
API_KEY = "bench-key"
DAY, NEXT_DAY = "2026-01-01", "2026-01-02"


class BenchError(RuntimeError):
    """A step failed; the message says which and where its log is."""


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _rel(cmd: list[str]) -> str:
    """The command as a shell line, paths inside the repository made relative."""
    parts = []
    for part in cmd:
        p = Path(part)
        parts.append(
            str(p.relative_to(ROOT)) if p.is_absolute() and p.is_relative_to(ROOT) else part
        )
    return shlex.join(parts)


class Bench:
    """The S3 server, the Airflow home and the sandboxes; ``stack`` undoes all of it."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="conpeek-bench-"))
        stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        self.home = stack.enter_context(AirflowHome(self.tmp))
        self.home.activate()  # the paging probe imports the provider, hence Airflow
        self.s3 = stack.enter_context(S3Server())
        self.s3.create_bucket(BUCKET)
        self.servers: dict[str, str] = {}  # the sandboxes' command lines, for the report
        self.seq = 0

    @contextlib.contextmanager
    def sandbox(
        self, records: int, latency_ms: float, *options: str, what: str = ""
    ) -> Iterator[str]:
        """A ``conpeek-sandbox`` process; yields its base URL, stops it on exit.

        ``options``: more command-line options (faults); ``what`` names them in the report.
        """
        cmd = [str(BIN / "conpeek-sandbox"), "--port", "0", "--records", str(records)]
        cmd += ["--days", "1", "--start", DAY, "--latency-ms", f"{latency_ms:g}"]
        cmd += ["--api-key", API_KEY, "--path-prefix", "/api/v1_3", *options]
        name = f"sandbox-{records}-{latency_ms:g}ms" + "".join(o.strip("-") for o in options)
        process = Process(name, cmd, self.home.env, self.tmp / f"{name}.log")
        try:

            def url() -> str | None:
                words = process.tail().split()
                return next((w for w in words if w.startswith("http://") and "/api/" in w), None)

            found = wait_for(name, url, 60, interval=0.1, alive=process.check_alive)
            label = f"Conpeek sandbox ({records:,} records, {latency_ms:g} ms{what})"
            self.servers[label] = _rel(cmd)
            yield found
        finally:
            process.stop()

    def env(self, sandbox_url: str) -> dict[str, str]:
        conpeek = {"conn_type": "conpeek", "host": sandbox_url, "password": API_KEY}
        return {
            **self.home.env,
            "AIRFLOW_CONN_CONPEEK_DEFAULT": json.dumps(conpeek),
            "AIRFLOW_CONN_AWS_DEFAULT": self.s3.connection_json(),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def run(self, label: str, mode: str, url: str, records: int, **opts: Any) -> dict[str, Any]:
        """One measured client in a fresh subprocess; checks what it wrote to S3.

        ``opts``: ``page_size``, ``concurrency``, ``max_concurrency`` (None: the operator's
        defaults), ``profile``, ``timeline``, ``stages`` (the conversion and the upload timed
        apart), ``file_format`` (``"parquet"``: the operator writes a ``.parquet`` object),
        ``keep`` (a local path: the object is saved there before it is deleted).
        """
        self.seq += 1
        key = f"bench/{self.seq:02d}-{mode}.jsonl" + (".gz" if mode == "operator" else "")
        if opts.get("file_format") == "parquet":
            key = f"bench/{self.seq:02d}-{mode}.parquet"
            cmd_format = ["--file-format", "parquet"]
        else:
            cmd_format = []
        out = self.tmp / f"result-{self.seq:02d}.json"
        log = self.tmp / f"worker-{self.seq:02d}-{mode}.log"
        cmd = [sys.executable, str(WORKER), mode, "--out", str(out), "--bucket", BUCKET]
        cmd += ["--key", key, "--start", DAY, "--end", NEXT_DAY, *cmd_format]
        if mode == "naive":
            opts.setdefault("page_size", self.args.naive_page_size)
            cmd += ["--base-url", url, "--api-key", API_KEY, "--s3-endpoint", self.s3.endpoint_url]
        for name in ("page_size", "concurrency", "max_concurrency"):
            if opts.get(name) is not None:
                cmd += [f"--{name.replace('_', '-')}", str(opts[name])]
        for flag in ("profile", "timeline", "stages"):
            if opts.get(flag):
                cmd.append(f"--{flag}")
        say(f"  {label}: {records:,} records ...")
        seen = len(server_log(url))
        with log.open("wb") as f:
            try:
                proc = subprocess.run(
                    cmd,
                    env=self.env(url),
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=self.args.worker_timeout,
                )
            except subprocess.TimeoutExpired:
                raise BenchError(f"{label} timed out; see {log}") from None
        if proc.returncode != 0:
            raise BenchError(f"{label} failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        result.update(label=label, expected=records, server=server_stats(server_log(url)[seen:]))
        self._verify(result, key, records, keep=opts.get("keep"))
        cpu = result["cpu_user_s"] + result["cpu_sys_s"]
        say(
            f"    {result['wall_s']:.2f} s wall, {cpu:.2f} s CPU, "
            f"{records / result['wall_s']:,.0f} records/s, peak RSS {result['peak_rss_mb']:.0f} MB"
        )
        return result

    def _verify(
        self, result: dict[str, Any], key: str, expected: int, keep: Path | None = None
    ) -> None:
        """Right record count, object of the reported size, lines counted when small (a
        Parquet object: its row count, always); saved to ``keep`` if given, then deleted."""
        label, client = result["label"], self.s3.client()
        if result["records"] != expected:
            raise BenchError(f"{label}: wrote {result['records']} records, expected {expected}")
        head = client.head_object(Bucket=BUCKET, Key=key)
        if head["ContentLength"] != result["bytes"]:
            raise BenchError(f"{label}: object is {head['ContentLength']} bytes, reported {result}")
        result["verified"] = "count, size"
        if key.endswith(".parquet"):
            body = self.s3.read(BUCKET, key)
            result["sha256"] = hashlib.sha256(body).hexdigest()
            meta = parquet_metadata(body)
            result["parquet"] = meta
            if meta["rows"] != expected:
                raise BenchError(f"{label}: Parquet object has {meta['rows']} rows, not {expected}")
            result["verified"] = "count, size, Parquet rows"
        elif keep is not None or expected <= self.args.verify_limit:
            body = self.s3.read(BUCKET, key)
            result["sha256"] = hashlib.sha256(body).hexdigest()
            lines = (gzip.decompress(body) if key.endswith(".gz") else body).count(b"\n")
            if lines != expected:
                raise BenchError(f"{label}: object has {lines} lines, expected {expected}")
            result["verified"] = "count, size, lines"
        if keep is not None:
            keep.write_bytes(body)
        client.delete_object(Bucket=BUCKET, Key=key)


def parquet_metadata(body: bytes) -> dict[str, Any]:
    """Rows, row groups and the columns' types of a Parquet file, from its footer."""
    import io

    import pyarrow.parquet as pq

    f = pq.ParquetFile(io.BytesIO(body))
    return {
        "rows": f.metadata.num_rows,
        "row_groups": f.metadata.num_row_groups,
        "largest_row_group": max(
            (f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)),
            default=0,
        ),
        "columns": {field.name: str(field.type) for field in f.schema_arrow},
    }


def server_log(url: str) -> list[dict[str, Any]]:
    """The sandbox's log of API requests (its admin endpoint), oldest first."""
    admin = url.split("/api/")[0] + "/_sandbox/requests"
    with urllib.request.urlopen(admin, timeout=30) as response:  # noqa: S310 - loopback
        entries: list[dict[str, Any]] = json.load(response)["requests"]
    return [e for e in entries if e["path"].endswith("/voice_campaign_request_summary")]


def server_stats(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What the sandbox saw of one run: requests, capacity 429s, load."""
    n = len(entries)
    return {
        "requests": n,
        "refused_429": sum(1 for e in entries if e["status"] == 429),
        "mean_in_flight": sum(e["in_flight"] for e in entries) / n if n else 0.0,
        "peak_in_flight": max((e["in_flight"] for e in entries), default=0),
        "mean_queued_ms": 1000 * sum(e["queued_s"] for e in entries) / n if n else 0.0,
    }


def measure_adaptive(bench: Bench, res: dict[str, Any]) -> None:
    """Section 7: rows of (server, client) runs, each with the server's ceiling."""
    a = bench.args
    rows: list[dict[str, Any]] = []

    def row(server: str, latency: float, in_flight: int | None, runs: list[dict[str, Any]]) -> None:
        rows.append({"server": server, "latency_ms": latency, "allows": in_flight, "runs": runs})

    for latency in a.adaptive_latencies:
        for records in a.adaptive_records:
            with bench.sandbox(records, latency) as url:
                runs = [
                    bench.run("naive loop", "naive", url, records),
                    bench.run("operator, defaults", "operator", url, records),
                ]
                if records == max(a.adaptive_records):  # would a cap above 16 help?
                    label = "operator, max_concurrency=32"
                    runs.append(bench.run(label, "operator", url, records, max_concurrency=32))
                if records == min(a.adaptive_records) and latency == min(a.adaptive_latencies):
                    label = "operator, defaults, timed by stage"
                    res["timeline"] = bench.run(label, "operator", url, records, timeline=True)
            row("no limit", latency, None, runs)
    records, latency = max(a.adaptive_records), min(a.adaptive_latencies)
    with bench.sandbox(records, latency, "--capacity", "2", what=", 2 at once, 429 beyond") as url:
        runs = [
            bench.run("naive loop", "naive", url, records),
            bench.run("operator, concurrency=4 (pinned)", "operator", url, records, concurrency=4),
            bench.run("operator, defaults", "operator", url, records),
        ]
    row("2 requests at once, 429 beyond (no Retry-After)", latency, 2, runs)
    queue = ("--capacity", "4", "--over-capacity", "queue")
    with bench.sandbox(records, latency, *queue, what=", 4 at once, queue beyond") as url:
        runs = [
            bench.run("naive loop", "naive", url, records),
            bench.run("operator, defaults", "operator", url, records),
        ]
    row("4 requests at once, queue beyond (latency grows with load)", latency, 4, runs)
    res["adaptive"] = rows


def measure_formats(bench: Bench, res: dict[str, Any]) -> None:
    """Section 8: the operator writing gzip JSON Lines, then Parquet, from one warmed sandbox
    with no latency; then DuckDB over both objects, downloaded to local files."""
    a = bench.args
    records = a.formats_records
    started, load_before = time.monotonic(), probes.loadavg()
    keep = {"jsonl": bench.tmp / "formats.jsonl.gz", "parquet": bench.tmp / "formats.parquet"}
    with bench.sandbox(records, 0) as url:
        endpoint = f"{url}/voice_campaign_request_summary"
        warm = probes.warm_sandbox(endpoint, API_KEY, DAY, NEXT_DAY, records)
        say(f"  sandbox warmed: {records:,} records served once in {warm:.1f} s")
        runs = [
            bench.run("gzip JSON Lines", "operator", url, records, stages=True, keep=keep["jsonl"]),
            bench.run(
                "Parquet",
                "operator",
                url,
                records,
                file_format="parquet",
                stages=True,
                keep=keep["parquet"],
            ),
        ]
    jsonl, parquet = runs
    convert = parquet["stages"]["convert"]
    say(
        f"    Parquet {parquet['bytes']:,} bytes vs gzip JSON Lines {jsonl['bytes']:,} bytes; "
        f"conversion {convert['cpu_s']:.2f} of {cpu_s(parquet):.2f} CPU-s"
    )
    say(f"  DuckDB: records per project_id, median of {a.query_runs} runs each")
    query = probes.duckdb_counts(keep["parquet"], keep["jsonl"], a.query_runs)
    if query["records"] != records:
        raise BenchError(f"DuckDB counted {query['records']} records, expected {records}")
    say(
        "    read_parquet {:.3f} s, read_ndjson {:.3f} s; {} groups, equal".format(
            query["parquet"]["median_s"], query["jsonl_gz"]["median_s"], query["groups"]
        )
    )
    res["formats"] = {
        "records": records,
        "warm_s": warm,
        "runs": runs,
        "query": query,
        "pyarrow": version("pyarrow"),
        "load_before": load_before,
        "load_after": probes.loadavg(),
        "elapsed_s": time.monotonic() - started,
    }


def measure(bench: Bench, res: dict[str, Any]) -> None:
    """Every section, in order, into ``res``."""
    a = bench.args
    say(f"1. Throughput: {a.records:,} records at {a.latency_ms:g} ms per request")
    with bench.sandbox(a.records, a.latency_ms) as url:
        res["throughput"] = [
            bench.run("(a) naive loop", "naive", url, a.records),
            bench.run("(b) operator, concurrency=1", "operator", url, a.records, concurrency=1),
            bench.run("(c) operator, defaults", "operator", url, a.records),
        ]

    say("2. Memory (no latency)")
    res["memory"] = []
    for size in sorted({a.memory_small, a.memory_large} | {a.naive_large} - {0}):
        with bench.sandbox(size, 0) as url:
            if size in (a.memory_small, a.memory_large):
                res["memory"].append(bench.run("(c) operator, defaults", "operator", url, size))
            if size in (a.memory_small, a.naive_large):
                res["memory"].append(bench.run("(a) naive loop", "naive", url, size))

    say("3. Profile of the operator at concurrency=1 (no latency)")
    with bench.sandbox(a.profile_records, 0) as url:
        label = "(b) operator, concurrency=1"
        n = a.profile_records
        res["unprofiled"] = bench.run(label, "operator", url, n, concurrency=1)
        res["profile"] = bench.run(
            f"{label}, cProfile", "operator", url, n, concurrency=1, profile=True
        )

    say(f"4. Import cost ({a.import_runs} fresh interpreters)")
    res["imports"] = probes.import_cost(bench.home.env, a.import_runs)

    say(f"5. Sandbox latency: {a.sandbox_requests} keep-alive requests")
    with bench.sandbox(1000, 0) as url:
        endpoint = f"{url}/voice_campaign_request_summary"
        res["sandbox"] = probes.sandbox_latency(endpoint, API_KEY, a.sandbox_requests)
    say("    mean {mean_ms:.2f} ms, p95 {p95_ms:.2f} ms".format(**res["sandbox"]))

    say("6. Paging speed (in memory, 20 ms per request)")
    res["paging"] = probes.paging_speed()
    say("    {wall_s:.3f} s for {requests} requests".format(**res["paging"]["concurrent"]))

    say("7. Adaptive concurrency")
    measure_adaptive(bench, res)

    say(f"8. Formats: Parquet and gzip JSON Lines, {a.formats_records:,} records (no latency)")
    measure_formats(bench, res)


SECTIONS = {"formats": (measure_formats, ("formats_records", "query_runs"))}
"""What ``--only`` runs alone: the function, and its settings (its results and settings
replace the section's in the committed files, the other sections' are kept)."""


def merge_section(path: Path, res: dict[str, Any], section: str) -> dict[str, Any]:
    """The results in ``path`` with ``section`` (and its settings) from ``res``; the section
    notes the command, machine and sandboxes it was measured with."""
    if not path.exists():
        return res
    merged: dict[str, Any] = json.loads(path.read_text())
    merged[section] = {
        **res[section],
        "command": res["command"],
        "machine": res["machine"],
        "servers": res.get("servers", {}),
    }
    for name in SECTIONS[section][1]:
        merged.setdefault("settings", {})[name] = res["settings"][name]
    return merged


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--records", type=int, default=50_000, help="throughput run (default 50000)")
    p.add_argument("--latency-ms", type=float, default=25.0, help="per request (default 25)")
    p.add_argument("--naive-page-size", type=int, default=100, help="the loop's limit")
    p.add_argument("--memory-small", type=int, default=10_000, help="default 10000")
    p.add_argument("--memory-large", type=int, default=1_000_000, help="default 1000000")
    p.add_argument(
        "--naive-large",
        type=int,
        default=None,
        help="records for the naive loop's large memory run (default: --memory-large; 0 skips it)",
    )
    p.add_argument("--profile-records", type=int, default=100_000, help="cProfile run")
    p.add_argument("--adaptive-records", type=int, nargs="+", default=[12_000, 3_000])
    p.add_argument("--adaptive-latencies", type=float, nargs="+", default=[25.0, 100.0])
    p.add_argument("--formats-records", type=int, default=200_000, help="section 8")
    p.add_argument("--query-runs", type=int, default=5, help="DuckDB runs per query (median)")
    p.add_argument("--import-runs", type=int, default=5)
    p.add_argument("--sandbox-requests", type=int, default=300)
    p.add_argument("--worker-timeout", type=float, default=900.0, help="seconds per run")
    p.add_argument("--verify-limit", type=int, default=250_000, help="count lines up to this")
    p.add_argument("--json", help=f"results (default {DEFAULT_JSON.relative_to(ROOT)})")
    p.add_argument("--rst", help=f"rendered (default {bench_render.DEFAULT_RST.relative_to(ROOT)})")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, prints only")
    p.add_argument(
        "--only",
        choices=sorted(SECTIONS),
        help="run this section alone; its results replace the section's in --json (the "
        "others' are kept) and --rst is rendered again",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.records = min(args.records, 3_000)
        args.memory_small = min(args.memory_small, 2_000)
        args.memory_large = min(args.memory_large, 30_000)
        args.profile_records = min(args.profile_records, 5_000)
        args.import_runs = min(args.import_runs, 2)
        args.adaptive_records = [min(args.adaptive_records), 1_000]
        args.adaptive_latencies = [min(args.adaptive_latencies)]
        args.formats_records = min(args.formats_records, 5_000)
        args.query_runs = min(args.query_runs, 2)
    if args.naive_large is None:
        args.naive_large = args.memory_large
    if not args.quick:  # the committed files, unless told otherwise
        args.json = args.json or str(DEFAULT_JSON)
        args.rst = args.rst or str(bench_render.DEFAULT_RST)
    return args


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "quick")}
    res: dict[str, Any] = {
        "command": _rel(
            [sys.executable, str(Path(__file__)), *(sys.argv[1:] if argv is None else argv)]
        ),
        "settings": settings,
        "machine": probes.machine(),
        "load_before": probes.loadavg(),
    }
    try:
        with contextlib.ExitStack() as stack:
            bench = Bench(args, stack)
            say(f"Temp dir {bench.tmp}; S3 server at {bench.s3.endpoint_url}")
            if args.only:
                say(f"Only the section {args.only!r}")
                SECTIONS[args.only][0](bench, res)
            else:
                measure(bench, res)
            res["servers"] = bench.servers
    except (RuntimeError, TimeoutError) as exc:  # BenchError, a server that died or hung
        say(f"FAILED: {exc}")
        return 1
    res["load_after"] = probes.loadavg()
    res["elapsed_s"] = time.monotonic() - started
    print()
    for t in evaluate(res):
        print(f"{'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['measured']}")
    if args.json:
        if args.only:
            res = merge_section(Path(args.json), res, args.only)
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
        say(f"Wrote {args.json}")
    if args.json and args.rst:
        say(f"Wrote {bench_render.write(Path(args.json), Path(args.rst))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
