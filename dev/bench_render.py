"""Render ``docs/benchmarks.json`` (written by ``dev/bench.py``) as reStructuredText.

The output, ``docs/benchmarks_results.inc``, is included by ``docs/benchmarks.rst`` under its
"Results" section, so its own sections use ``~`` underlines. The formats section is
also written alone, without its heading, as ``docs/formats_results.inc`` (for
``docs/formats.rst``). Only numbers and the sentences
that carry them are generated; what the benchmark does and why is written in
``docs/benchmarks.rst``. ``make bench`` renders after measuring; to re-render by hand::

    .venv/bin/python dev/bench_render.py [docs/benchmarks.json [docs/benchmarks_results.inc]]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench_targets import ceiling, cpu_rate, cpu_s, evaluate, growth, ideal_s, in_flight, rate

DOCS = Path(__file__).resolve().parent.parent / "docs"
DEFAULT_JSON = DOCS / "benchmarks.json"
DEFAULT_RST = DOCS / "benchmarks_results.inc"
FORMATS_RST = "formats_results.inc"
"""Beside the results: the formats section alone (``docs/formats.rst`` includes it)."""


def heading(title: str) -> list[str]:
    return [title, "~" * len(title), ""]


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [headers, *rows]:
        # A cell starting "(a) " would be an enumerated list: escape the parenthesis.
        first, *rest = (f"\\{cell}" if cell.startswith("(") else cell for cell in row)
        lines.append(f"   * - {first}")
        lines += [f"     - {cell}" for cell in rest]
    return [*lines, ""]


def code(lines: list[str], language: str = "sh") -> list[str]:
    return [f".. code-block:: {language}", "", *(f"   {line}" for line in lines), ""]


def mb(x: float) -> str:
    return f"{x:,.0f}"


def targets(res: dict[str, Any]) -> list[str]:
    rows = [
        [t["target"], t["measured"], "**PASS**" if t["pass"] else "**FAIL**"] for t in evaluate(res)
    ]
    return [*heading("Targets"), *table(["target", "measured", "result"], rows)]


def machine(res: dict[str, Any]) -> list[str]:
    servers = [f"# {name}\n{cmd}" for name, cmd in res["servers"].items()]
    return [
        *heading("Machine and command"),
        *table(["item", "value"], [[k, v] for k, v in res["machine"].items()]),
        f"Load average (1/5/15 min) at start: {res['load_before']}; at end: "
        f"{res['load_after']}. Total run time: {res['elapsed_s']:.0f} s. Command:",
        "",
        *code([res["command"]]),
        "Sandboxes started by it (``--port 0``: any free port):",
        "",
        *code("\n".join(servers).splitlines()),
    ]


def throughput(res: dict[str, Any]) -> list[str]:
    rows, latency = res["throughput"], res["settings"]["latency_ms"]
    a, c = rows[0], rows[-1]
    speed = [
        [
            r["label"],
            f"{r['pages']:,}",
            f"{r['wall_s']:.2f}",
            f"{rate(r):,.0f}",
            f"{a['wall_s'] / r['wall_s']:.2f}x",
            f"{cpu_s(r):.2f}",
        ]
        for r in rows
    ]
    footprint = [
        [
            r["label"],
            mb(r["baseline_rss_mb"]),
            mb(r["peak_rss_mb"]),
            f"{r['peak_rss_mb'] / a['peak_rss_mb']:.2f}x",
            f"{r['bytes'] / 1e6:.1f}",
        ]
        for r in rows
    ]
    return [
        *heading(f"1. Throughput at {latency:g} ms per request"),
        f"{a['records']:,} records in one daily window; the sandbox adds {latency:g} ms to "
        "every API request. *speed vs (a)* is (a)'s wall time divided by the row's.",
        "",
        *table(["client", "pages", "wall s", "records/s", "speed vs (a)", "CPU s"], speed),
        f"Sequential ceiling at this latency: 100 records / {latency / 1000:g} s = "
        f"{100 / (latency / 1000):,.0f} records/s. What the latency alone allows (c), "
        f"{c['pages']} pages with at most {in_flight(c)} in flight (its adaptive limit's "
        f"highest): {ideal_s(c['pages'], latency, in_flight(c)):.2f} s. The footprint of the "
        "same runs:",
        "",
        *table(
            ["client", "RSS after imports MB", "peak RSS MB", "peak RSS vs (a)", "object MB"],
            footprint,
        ),
    ]


def memory(res: dict[str, Any]) -> list[str]:
    headers = ["client", "records", "RSS after imports MB", "peak RSS MB"]
    headers += ["peak - after imports MB", "object MB"]
    cells = [
        [
            r["label"],
            f"{r['records']:,}",
            mb(r["baseline_rss_mb"]),
            mb(r["peak_rss_mb"]),
            mb(r["peak_rss_mb"] - r["baseline_rss_mb"]),
            f"{r['bytes'] / 1e6:.1f}",
        ]
        for r in res["memory"]
    ]
    out = [*heading("2. Memory: peak RSS against the size of the window"), *table(headers, cells)]
    for mode, name in (("operator", "Operator (defaults)"), ("naive", "Naive loop")):
        g = growth(res["memory"], mode)
        if g:
            small, large = g
            diff = large["peak_rss_mb"] - small["peak_rss_mb"]
            per_record = diff * 1024 / (large["records"] - small["records"])
            out += [
                f"{name}: peak RSS {diff:+,.0f} MB from {small['records']:,} to "
                f"{large['records']:,} records ({per_record:,.2f} KB per record).",
                "",
            ]
    return out


def cpu(res: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["label"],
            f"{r['records']:,}",
            f"{r['wall_s']:.1f}",
            f"{cpu_s(r):.2f}",
            f"{cpu_rate(r):,.0f}",
        ]
        for r in res["memory"]
    ]
    run, plain = res["profile"], res["unprofiled"]
    prof, records = run["profile"], run["records"]
    total = prof["total"]
    stages = [
        [name.strip(), f"{sec:.3f}", f"{100 * sec / total:.0f}%", f"{1e6 * sec / records:.1f}"]
        for name, sec in prof["stages"]
    ]
    top = [
        [f"``{t['func']}``", f"{t['ncalls']:,}", f"{t['tottime']:.3f}"]
        for t in prof["top_tottime"][:12]
    ]
    return [
        *heading("3. Client-side CPU"),
        "The runs of section 2, no latency; CPU is user+sys of the client process:",
        "",
        *table(["client", "records", "wall s", "CPU s", "records per CPU-second"], rows),
        f"Where it goes: the operator at ``concurrency=1``, {records:,} records. Without the "
        f"profiler: {cpu_s(plain):.2f} CPU-s ({1e6 * cpu_s(plain) / records:.1f} µs per record, "
        f"{cpu_rate(plain):,.0f} records per CPU-second). Under cProfile (each thread on its own "
        "CPU-time clock, the task's and the extract's, summed): "
        f"{total:.2f} CPU-s, {total / cpu_s(plain):.1f}x as much, so read the shares below as "
        "a ranking, not as absolute costs.",
        "",
        "Cumulative time by stage (an *of which* row is part of the stage above it):",
        "",
        *table(["stage", "CPU s", "share", "µs per record"], stages),
        "Top functions by own time (tottime):",
        "",
        *table(["function", "calls", "tottime s"], top),
    ]


def imports(res: dict[str, Any]) -> list[str]:
    im = res["imports"]
    rows = [
        ["``import airflow.sdk``", f"{im['sdk_median_ms']:.0f}", _runs(im["sdk_ms"], 0)],
        ["operator module, on top", f"{im['operator_median_ms']:.1f}", _runs(im["operator_ms"], 1)],
    ]
    added = ", ".join(f"``{m}``" for m in im["added_modules"])
    return [
        *heading("4. Import cost"),
        f"Fresh interpreter per run, {im['runs']} runs: ``import airflow.sdk``, then "
        f"``import {im['module']}`` in the same process.",
        "",
        *table(["import", "median ms", "runs ms"], rows),
        f"Modules the operator import adds (``python -X importtime``, "
        f"{im['added_self_ms']:.1f} ms of own time in total): {added}.",
        "",
    ]


def _runs(values: list[float], digits: int) -> str:
    return ", ".join(f"{x:.{digits}f}" for x in values)


def sandbox(res: dict[str, Any]) -> list[str]:
    sb = res["sandbox"]
    row = [f"{sb[k]:.2f}" for k in ("mean_ms", "median_ms", "p95_ms", "max_ms")]
    return [
        *heading("5. Sandbox request latency"),
        f"{sb['requests']} sequential ``limit=5`` requests on one keep-alive connection to a "
        "``conpeek-sandbox`` process with no added latency, each timed by the client.",
        "",
        *table(["mean ms", "median ms", "p95 ms", "max ms"], [row]),
    ]


def paging(res: dict[str, Any]) -> list[str]:
    pg = res["paging"]
    rows = []
    for name, flying in (("sequential", 1), ("concurrent", pg["concurrency"])):
        run = pg[name]
        ideal = ideal_s(run["requests"], pg["latency_ms"], flying)
        rows.append([str(flying), str(run["requests"]), f"{run['wall_s']:.3f}", f"{ideal:.3f}"])
    return [
        *heading("6. Paging speed"),
        f"``iter_pages`` over {pg['records']:,} records held in memory, ``page_size="
        f"{pg['page_size']}``, every request sleeping {pg['latency_ms']:g} ms: the paging "
        "alone, no HTTP.",
        "",
        *table(["in flight", "requests", "wall s", "requests x latency / in flight, s"], rows),
    ]


def _limit(r: dict[str, Any]) -> str:
    if r["mode"] == "naive":
        return "1"
    lim = r.get("limit")
    if not lim:
        return str(r["concurrency"])
    if not lim["adaptive"]:
        return f"{lim['maximum']} (pinned)"
    return f"{lim['peak_limit']} (ends at {lim['final']}, {lim['cuts']} cuts)"


def adaptive(res: dict[str, Any]) -> list[str]:
    rows = res.get("adaptive")
    if not rows:
        return []
    out = []
    for group in rows:
        naive = group["runs"][0]
        latency, allows = group["latency_ms"], group["allows"]
        for r in group["runs"]:
            n = in_flight(r) if allows is None else min(allows, in_flight(r))
            if r["mode"] == "operator" and allows is None and r.get("limit"):
                n = r["limit"]["maximum"]  # what its ceiling would allow
            top = ceiling(latency, n, r["page_size"] or 100)
            sv = r["server"]
            out.append(
                [
                    f"{group['server']}, {latency:g} ms",
                    r["label"],
                    f"{r['records']:,}",
                    f"{r['wall_s']:.2f}",
                    f"{rate(r):,.0f}",
                    f"{naive['wall_s'] / r['wall_s']:.2f}x",
                    f"{top:,.0f} ({n} in flight)",
                    f"{rate(r) / top:.0%}",
                    f"{sv['requests']} / {sv['refused_429']}",
                    _limit(r),
                    f"{sv['mean_in_flight']:.1f} / {sv['peak_in_flight']}",
                ]
            )
    return [
        *heading("7. Adaptive concurrency"),
        "Each row is one extract of one daily window, checked record for record like the "
        "others. *ceiling* is what the latency allows the row: page size x requests in "
        "flight / latency, where requests in flight is the fewest of the client's own (1 "
        "for the loop; ``max_concurrency`` for the defaults) and what the server allows. "
        "*requests / 429* and *server in flight* (mean / peak, at each request's arrival) "
        "are counted by the sandbox.",
        "",
        *table(
            [
                "server",
                "client",
                "records",
                "wall s",
                "records/s",
                "vs loop",
                "ceiling records/s",
                "of ceiling",
                "requests / 429",
                "client limit, highest",
                "server in flight",
            ],
            out,
        ),
    ]


def timeline(res: dict[str, Any]) -> list[str]:
    run = res.get("timeline")
    if not run or not run.get("timeline"):
        return []
    rows = [
        [
            t["stage"],
            f"{t['start_ms']:.0f}",
            f"{t['end_ms']:.0f}",
            f"{t['end_ms'] - t['start_ms']:.0f}",
        ]
        for t in run["timeline"]
    ]
    return [
        "",
        f"Where the time of a short extract goes: the defaults on the {run['records']:,}-record "
        f"window above ({run['pages']} pages), each stage's start and end from the start of "
        f"``execute()``, in ms (wall time {run['wall_s'] * 1000:.0f} ms). *paging and upload* "
        "runs from the first Conpeek request to the written object; *first page* is the "
        "request sent alone before any other (an empty window or a refused key costs one).",
        "",
        *table(["stage", "start ms", "end ms", "ms"], rows),
    ]


def formats(res: dict[str, Any]) -> list[str]:
    f = res.get("formats")
    if not f:
        return []
    jsonl, parquet = f["runs"]
    q = f["query"]

    def stage(r: dict[str, Any], name: str) -> str:
        st = r.get("stages", {}).get(name)
        return f"{st['cpu_s']:.2f} ({st['wall_s']:.2f})" if st else "--"

    write = [
        [
            r["label"],
            f"{r['wall_s']:.2f}",
            f"{cpu_s(r):.2f}",
            stage(r, "convert"),
            stage(r, "upload"),
            f"{cpu_rate(r):,.0f}",
        ]
        for r in (jsonl, parquet)
    ]
    footprint = [
        [
            r["label"],
            f"{r['bytes']:,}",
            f"{r['bytes'] / jsonl['bytes']:.0%}",
            f"{r['bytes'] / r['records']:.1f}",
            mb(r["baseline_rss_mb"]),
            mb(r["stages"]["convert"]["peak_rss_before_mb"])
            if "convert" in r.get("stages", {})
            else "--",
            mb(r["peak_rss_mb"]),
        ]
        for r in (jsonl, parquet)
    ]
    meta = parquet["parquet"]
    imp = parquet.get("format_imports")
    imports_note = (
        [
            "Not in these CPU figures (imports never are): what the Parquet path loads first, "
            "pyarrow"
            + (
                " and pandas (pyarrow imports it on its first ``pa.array()``)"
                if imp["pandas"]
                else ""
            )
            + f": {imp['cpu_s']:.2f} CPU-s ({imp['wall_s']:.2f} s wall) and "
            f"{imp['rss_mb']:,.0f} MB of RSS, which the *RSS after imports* column below includes. "
            "A task process pays them once, on its first Parquet extract.",
            "",
        ]
        if imp
        else []
    )
    cols = ", ".join(f"``{name}`` {kind}" for name, kind in meta["columns"].items())
    base = q["parquet"]["median_s"]
    reads = [
        [
            f"``{reader}``",
            f"{q[name]['bytes']:,}",
            f"{q[name]['median_s']:.3f}",
            _runs(q[name]["times_s"], 3),
            f"{q[name]['median_s'] / base:.1f}x" if base > 0 else "--",
        ]
        for name, reader in (("parquet", "read_parquet"), ("jsonl_gz", "read_ndjson"))
    ]
    out = [
        *heading("8. Formats: Parquet and gzip JSON Lines"),
        f"{f['records']:,} records in one daily window, no added latency, the sandbox warmed "
        f"(every record served once before, {f['warm_s']:.1f} s); the operator with its "
        "defaults, end to end into S3, once with a ``.jsonl.gz`` key and once with "
        f'``file_format="parquet"`` (pyarrow {f["pyarrow"]}). CPU is user+sys of the '
        "client process for the whole extract; *conversion* and *upload* are the process's CPU "
        "seconds (wall seconds in brackets) while ``jsonl_to_parquet`` and the upload ran, "
        "paging being over by then.",
        "",
        *table(
            [
                "format",
                "wall s",
                "CPU s",
                "of which conversion CPU s (wall)",
                "upload CPU s (wall)",
                "records per CPU-second",
            ],
            write,
        ),
        *imports_note,
        "The objects and the footprint of the same runs (*peak before conversion*: ``VmHWM`` "
        "when the conversion starts, i.e. after paging):",
        "",
        *table(
            [
                "format",
                "object bytes",
                "vs JSON Lines",
                "bytes per record",
                "RSS after imports MB",
                "peak before conversion MB",
                "peak RSS MB",
            ],
            footprint,
        ),
        f"Both objects checked: {jsonl['records']:,} lines in the JSON Lines object; the "
        f"Parquet footer says {meta['rows']:,} rows in {meta['row_groups']} row groups (largest "
        f"{meta['largest_row_group']:,}). Its columns: {cols}.",
        "",
        f"Then DuckDB {q['duckdb']} ({q['threads']} threads) counts records per "
        "``project_id`` in each object, downloaded once to a local file, each query "
        f"{q['runs']} times on a fresh in-memory connection (the file in the OS page cache "
        "after the first run); ``project_id`` is ``VARCHAR`` on both sides, so the two "
        f"count tables can be compared: equal, {q['groups']} groups, {q['records']:,} records.",
        "",
        *table(["reader", "file bytes", "median s", "runs s", "vs read_parquet"], reads),
        "The queries (``?``: the local file):",
        "",
        *code([q["queries"]["parquet"], q["queries"]["jsonl_gz"]], "text"),
    ]
    if f.get("command"):
        servers = [f"# {name}\n{cmd}" for name, cmd in f.get("servers", {}).items()]
        out += [
            f"This section was measured on its own (load average at start: "
            f"{f['load_before']}; at end: {f['load_after']}; {f['elapsed_s']:.0f} s), with "
            "its own sandbox:",
            "",
            *code([f["command"], *"\n".join(servers).splitlines()]),
        ]
    return out


SECTIONS = (
    (throughput, "throughput"),
    (memory, "memory"),
    (cpu, "profile"),
    (imports, "imports"),
    (sandbox, "sandbox"),
    (paging, "paging"),
    (adaptive, "adaptive"),
    (timeline, "timeline"),
    (formats, "formats"),
)
"""The sections in order, each with its key in the results (absent: not rendered)."""


def render(res: dict[str, Any]) -> str:
    parts = [
        [
            ".. Generated by dev/bench_render.py from docs/benchmarks.json (make bench).",
            "   Do not edit by hand.",
            "",
        ],
        targets(res),
        machine(res),
        *(f(res) for f, key in SECTIONS if key in res),
    ]
    return "\n".join(line for part in parts for line in part).rstrip() + "\n"


def write(json_path: Path = DEFAULT_JSON, rst_path: Path = DEFAULT_RST) -> Path:
    res = json.loads(json_path.read_text())
    rst_path.write_text(render(res))
    section = formats(res)[3:]  # without its heading
    if section:
        generated = ".. Generated by dev/bench_render.py from docs/benchmarks.json (make bench)."
        text = "\n".join([generated, "   Do not edit by hand.", "", *section]).rstrip() + "\n"
        (rst_path.parent / FORMATS_RST).write_text(text)
    return rst_path


if __name__ == "__main__":
    paths = [Path(a) for a in sys.argv[1:3]]
    print(f"Wrote {write(*paths)}")
