"""One measured extract, run by ``dev/bench.py`` in a fresh subprocess.

Modes:

* ``naive`` -- the loop a DAG author writes by hand: ``requests`` with limit/offset,
  sequential, every record kept in a list, then one ``boto3`` ``put_object`` of the JSON
  Lines body (uncompressed).
* ``operator`` -- ``VoiceCampaignSummaryToS3Operator.execute()`` outside a DAG; the
  connections come from ``AIRFLOW_CONN_*`` env vars (no metadata DB). ``--file-format
  parquet`` writes Parquet (pyarrow is then imported before the run); with ``--stages`` the
  conversion to Parquet and the upload are timed apart (wall and process CPU seconds of
  each, and the peak RSS when each starts and ends).

Everything the measured path imports is imported first, then the baseline RSS is read; the
run itself is timed (wall and process CPU, user+sys, all threads) and the process's peak RSS
(``VmHWM``) is read at the end. The result is written as JSON to ``--out``. With
``--profile`` the run goes under cProfile (the task's thread and the extract's thread, each on
its own CPU-time clock, merged) and a summary is added.

Example::

    python dev/bench_worker.py operator --out r.json --bucket b --key k.jsonl.gz \\
        --start 2026-01-01 --end 2026-01-02 --concurrency 1
    python dev/bench_worker.py operator --out r.json --bucket b --key k.parquet \\
        --start 2026-01-01 --end 2026-01-02 --file-format parquet
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any

_STARTED = time.perf_counter()


def proc_status_mb() -> dict[str, float]:
    """VmRSS and VmHWM of this process, in MiB."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024
    return out


def cpu_seconds() -> tuple[float, float]:
    """(user, sys) CPU seconds of this process, every thread included."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


# -- the naive loop ------------------------------------------------------------------------


def prepare_naive(args: argparse.Namespace) -> Any:
    import boto3
    import requests

    def run() -> dict[str, Any]:
        session = requests.Session()
        session.headers["Authorization"] = args.api_key
        window = json.dumps(
            [
                {"property": "created_date", "operator": "gte", "value": f"{args.start} 00:00:00"},
                {"property": "created_date", "operator": "lt", "value": f"{args.end} 00:00:00"},
            ]
        )
        url = f"{args.base_url}/voice_campaign_request_summary"
        records: list[dict[str, Any]] = []
        offset, pages = 0, 0
        while True:
            response = session.get(
                url,
                params={"limit": args.page_size, "offset": offset, "filter": window},
                timeout=60,
            )
            response.raise_for_status()
            page = response.json()["data"]
            pages += 1
            records.extend(page)
            if len(page) < args.page_size:
                break
            offset += args.page_size
        body = "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")
        s3 = boto3.client("s3", endpoint_url=args.s3_endpoint, region_name="us-east-1")
        s3.put_object(Bucket=args.bucket, Key=args.key, Body=body)
        session.close()
        return {"records": len(records), "bytes": len(body), "pages": pages}

    return run


# -- the operator --------------------------------------------------------------------------


def prepare_operator(args: argparse.Namespace) -> Any:
    # What execute() imports lazily, so the baseline below is the loaded process; and what a
    # task process has loaded before execute() (reading a connection imports it otherwise).
    import airflow.sdk.execution_time.supervisor  # noqa: F401
    import pendulum
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401

    import airflow_provider_conpeek.extract
    import airflow_provider_conpeek.hooks.conpeek
    import airflow_provider_conpeek.jsonlines
    import airflow_provider_conpeek.window
    from airflow_provider_conpeek.operators.voice_campaign_summary import (
        VoiceCampaignSummaryToS3Operator,
    )

    kwargs: dict[str, Any] = {}
    if args.file_format == "parquet":
        FORMAT_IMPORTS.update(import_parquet())
        kwargs["file_format"] = "parquet"
    if args.stages:
        install_stages()
    if args.page_size is not None:
        kwargs["page_size"] = args.page_size
    if args.concurrency is not None:
        kwargs["concurrency"] = args.concurrency
    if args.max_concurrency is not None:
        kwargs["max_concurrency"] = args.max_concurrency
    op = VoiceCampaignSummaryToS3Operator(
        task_id="bench", s3_bucket=args.bucket, s3_key=args.key, **kwargs
    )
    args.page_size, args.concurrency = op.page_size, op.concurrency  # defaults made explicit
    context = {
        "data_interval_start": pendulum.parse(args.start),
        "data_interval_end": pendulum.parse(args.end),
    }

    # The extract's limit on requests in flight, kept to report what it did.
    extraction = airflow_provider_conpeek.extract.Extraction
    seen: list[Any] = []
    original_run = extraction.run

    def run_and_keep(self: Any) -> Any:
        seen.append(self.slots)
        return original_run(self)

    extraction.run = run_and_keep  # type: ignore[method-assign]

    def run() -> dict[str, Any]:
        result = op.execute(context)  # type: ignore[arg-type]
        slots = seen[-1]
        return {
            "records": result["records"],
            "bytes": result["bytes"],
            "pages": result["pages"],
            "file_format": args.file_format,
            **({"format_imports": FORMAT_IMPORTS} if FORMAT_IMPORTS else {}),
            **({"stages": STAGE_TIMES} if STAGE_TIMES else {}),
            "limit": {
                "adaptive": slots.adaptive,
                "maximum": slots.maximum,
                "final": slots.current,
                **vars(slots.stats),
            },
        }

    return run


FORMAT_IMPORTS: dict[str, Any] = {}


def import_parquet() -> dict[str, Any]:
    """What the conversion loads, imported before the baseline like the rest; its cost is
    reported apart: pyarrow, and pandas, which pyarrow imports (when installed, as with
    Airflow) the first time ``pa.array()`` converts a Python sequence."""
    rss0, (u0, s0), t0 = proc_status_mb()["VmRSS"], cpu_seconds(), time.perf_counter()
    import pyarrow as pa
    import pyarrow.parquet

    import airflow_provider_conpeek.parquet  # noqa: F401

    pa.array([0])
    (u1, s1), t1 = cpu_seconds(), time.perf_counter()
    return {
        "wall_s": t1 - t0,
        "cpu_s": (u1 - u0) + (s1 - s0),
        "rss_mb": proc_status_mb()["VmRSS"] - rss0,
        "pandas": "pandas" in sys.modules,
    }


# -- stages of a Parquet extract: conversion and upload apart ------------------------------------

STAGE_TIMES: dict[str, dict[str, float]] = {}


def install_stages() -> None:
    """Time the conversion to Parquet and the upload: wall and process CPU seconds (paging
    is over and Conpeek's client closed by then, so the process's CPU is the stage's), and the
    peak RSS (``VmHWM``) when each starts and ends."""
    import functools

    import airflow_provider_conpeek.parquet as parquet_module
    import airflow_provider_conpeek.s3write as s3write

    def wrap(owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            hwm0 = proc_status_mb()["VmHWM"]
            (u0, s0), t0 = cpu_seconds(), time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                (u1, s1), t1 = cpu_seconds(), time.perf_counter()
                STAGE_TIMES[stage] = {
                    "wall_s": t1 - t0,
                    "cpu_s": (u1 - u0) + (s1 - s0),
                    "peak_rss_before_mb": hwm0,
                    "peak_rss_after_mb": proc_status_mb()["VmHWM"],
                }

        setattr(owner, name, timed)

    # extract.py imports jsonl_to_parquet from the module when it converts: patched there.
    wrap(parquet_module, "jsonl_to_parquet", "convert")
    wrap(s3write.S3Destination, "write", "upload")


# -- timeline: where a short extract's wall time goes ---------------------------------------------

MARKS: list[tuple[str, float]] = []


def install_timeline() -> None:
    """Record when each stage of ``execute()`` starts and ends (wall clock, any thread)."""
    import functools

    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

    import airflow_provider_conpeek.client.client as client_module
    import airflow_provider_conpeek.extract as extract_module
    import airflow_provider_conpeek.s3write as s3write

    def wrap(owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            MARKS.append((f"{stage} start", time.perf_counter()))
            try:
                return original(*args, **kwargs)
            finally:
                MARKS.append((f"{stage} end", time.perf_counter()))

        setattr(owner, name, timed)

    wrap(AwsGenericHook, "get_conn", "S3 client")
    wrap(s3write.S3Destination, "check_bucket", "HeadBucket")
    wrap(s3write.S3Destination, "prepare", "HeadObject")
    wrap(extract_module.Extraction, "run", "paging and upload")
    wrap(s3write.S3Destination, "write", "upload")
    wrap(client_module.ConpeekClient, "fetch_page", "page")


def timeline(started: float) -> list[dict[str, Any]]:
    """Stages in order of start: ``{stage, start_ms, end_ms}`` (pages: first and last)."""
    spans: dict[str, list[float]] = {}
    for mark, t in MARKS:
        stage = mark.rpartition(" ")[0]
        span = spans.setdefault(stage, [t, t])
        span[0], span[1] = min(span[0], t), max(span[1], t)
    firsts = [t for mark, t in MARKS if mark == "page end"]
    if firsts:
        spans["first page"] = [spans["page"][0], firsts[0]]
    spans.pop("page", None)
    order = sorted(spans.items(), key=lambda kv: kv[1][0])
    return [
        {"stage": k, "start_ms": 1000 * (a - started), "end_ms": 1000 * (b - started)}
        for k, (a, b) in order
    ]


# -- profile summary -------------------------------------------------------------------------

CATEGORIES = (
    ("JSON decode (response body)", ("json/decoder.py", "json/__init__.py:loads")),
    ("JSON encode (write_page)", ("json/encoder.py",)),
    ("gzip/zlib compress", ("gzip.py", "zlib.Compress", "crc32")),
    ("socket I/O", ("_socket.socket", "socket.py", "select", "ssl.py")),
    ("HTTP client (requests, urllib3, http.client)", ("requests/", "urllib3/", "http/client")),
    ("S3 upload (S3Hook, boto3, botocore, s3transfer)", ("boto", "s3transfer", "amazon/aws")),
    ("provider code (airflow_provider_conpeek)", ("airflow_provider_conpeek",)),
    ("file write (temp file)", ("_io.BufferedWriter", "_io.FileIO")),
)


def _category(func: tuple[str, int, str]) -> str:
    text = f"{func[0]}:{func[2]}"
    for name, needles in CATEGORIES:
        if any(n in text for n in needles):
            return name
    return "other"


def _label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    parts = filename.replace("\\", "/").split("/")
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor) :]
            break
    return f"{'/'.join(parts[-3:])}:{line}({name})"


# (label, a part of the file name or "~" for a built-in, the function's name)
STAGES = (
    (
        "operator.execute, task thread (checks, S3 client)",
        "operators/voice_campaign_summary.py",
        "execute",
    ),
    ("extract thread: Extraction._work (pages, file, upload)", "extract.py", "_work"),
    ("fetch pages: fetch_page", "airflow_provider_conpeek/", "fetch_page"),
    ("  of which JSON decode: parse_page", "airflow_provider_conpeek/", "parse_page"),
    (
        "  of which proxy/env lookup: requests Session.merge_environment_settings",
        "requests/sessions.py",
        "merge_environment_settings",
    ),
    ("  of which URL re-encoding: urllib3", "urllib3/util/url.py", "_encode_invalid_chars"),
    ("  of which socket reads: recv_into", "~", "<method 'recv_into' of '_socket.socket' objects>"),
    ("write pages: JsonLinesFile.write_page", "jsonlines.py", "write_page"),
    ("  of which JSON encode: JSONEncoder.encode", "json/encoder.py", "encode"),
    ("  of which gzip: zlib compress", "~", "<method 'compress' of 'zlib.Compress' objects>"),
    ("  of which crc32", "~", "<built-in method zlib.crc32>"),
    ("finish gzip file: JsonLinesFile.close", "jsonlines.py", "close"),
    ("upload: S3Destination.write (conditional PutObject/multipart)", "s3write.py", "write"),
    ("S3 client: AwsGenericHook.get_conn (boto3 client)", "hooks/base_aws.py", "get_conn"),
)


def _stages(raw: dict[Any, Any]) -> list[tuple[str, float]]:
    """Cumulative CPU time of the stages of the client path (see STAGES)."""
    out = []
    for label, where, name in STAGES:
        cum = sum(
            v[3]
            for (filename, _line, func), v in raw.items()
            if func == name and (filename == where if where == "~" else where in filename)
        )
        out.append((label, cum))
    return out


THREAD_PROFILES: list[Any] = []


def profile_extract_thread() -> None:
    """Profile the extract's own thread too (it pages, writes and uploads; the task's main
    thread only waits for it), each thread on its own CPU clock; merged in the summary."""
    import cProfile

    import airflow_provider_conpeek.extract as extract_module

    original = extract_module.Extraction._work

    def profiled(self: Any) -> None:
        profiler = cProfile.Profile(time.thread_time)
        THREAD_PROFILES.append(profiler)
        profiler.enable()
        try:
            original(self)
        finally:
            profiler.disable()

    extract_module.Extraction._work = profiled  # type: ignore[method-assign]


def summarise_profile(profiler: Any) -> dict[str, Any]:
    import pstats

    stats = pstats.Stats(profiler)
    for other in THREAD_PROFILES:
        stats.add(other)
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())
    cats: dict[str, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        cats[_category(func)] = cats.get(_category(func), 0.0) + tt
    top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    cum = sorted(
        (kv for kv in raw.items() if "airflow_provider_conpeek" in kv[0][0] or "s3.py" in kv[0][0]),
        key=lambda kv: kv[1][3],
        reverse=True,
    )[:10]
    return {
        "total": total,
        "stages": _stages(raw),
        "categories": sorted(cats.items(), key=lambda kv: kv[1], reverse=True),
        "top_tottime": [
            {"func": _label(f), "ncalls": v[1], "tottime": v[2], "cumtime": v[3]} for f, v in top
        ],
        "top_cumtime_provider": [
            {"func": _label(f), "ncalls": v[1], "tottime": v[2], "cumtime": v[3]} for f, v in cum
        ],
    }


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=("naive", "operator"))
    p.add_argument("--out", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--start", required=True, help="window start day, YYYY-MM-DD (UTC)")
    p.add_argument("--end", required=True, help="window end day, exclusive")
    p.add_argument("--page-size", type=int, default=None, help="default: the operator's")
    p.add_argument("--concurrency", type=int, default=None, help="default: the operator's")
    p.add_argument("--max-concurrency", type=int, default=None, help="default: the operator's")
    p.add_argument(
        "--file-format", choices=("jsonl", "parquet"), default="jsonl", help="operator only"
    )
    p.add_argument("--base-url", default=None, help="naive: Conpeek base URL")
    p.add_argument("--api-key", default=None, help="naive: API key")
    p.add_argument("--s3-endpoint", default=None, help="naive: S3 endpoint URL")
    p.add_argument("--profile", action="store_true", help="run under cProfile (CPU clock)")
    p.add_argument("--timeline", action="store_true", help="operator: time each stage")
    p.add_argument("--stages", action="store_true", help="operator: time conversion, upload")
    args = p.parse_args()
    if args.mode == "naive" and args.page_size is None:
        args.page_size = 100
    if args.mode == "naive" and args.file_format != "jsonl":
        p.error("--file-format is the operator's")

    run = prepare_naive(args) if args.mode == "naive" else prepare_operator(args)
    if args.timeline:
        install_timeline()
    imports_s = time.perf_counter() - _STARTED
    baseline = proc_status_mb()

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)
        if args.mode == "operator":
            profile_extract_thread()
    user0, sys0 = cpu_seconds()
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    outcome = run()
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - t0
    user1, sys1 = cpu_seconds()
    final = proc_status_mb()

    result: dict[str, Any] = {
        "mode": args.mode,
        "page_size": args.page_size,
        "concurrency": args.concurrency,
        **outcome,
        "wall_s": wall,
        "cpu_user_s": user1 - user0,
        "cpu_sys_s": sys1 - sys0,
        "startup_and_imports_s": imports_s,
        "baseline_rss_mb": baseline["VmRSS"],
        "baseline_hwm_mb": baseline["VmHWM"],
        "peak_rss_mb": final["VmHWM"],
        "final_rss_mb": final["VmRSS"],
        "pid": os.getpid(),
    }
    if profiler is not None:
        result["profile"] = summarise_profile(profiler)
    if args.timeline:
        result["timeline"] = timeline(t0)
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
