"""``conpeek-sandbox``: run the fake Conpeek API from the command line.

Example::

    conpeek-sandbox --port 8080 --records 50000 --latency-ms 20 \\
        --fault-json '{"rules": [{"kind": "429", "retry_after": "1", "every": 10}]}'
    conpeek-sandbox --latency-ms 50 --capacity 4 --over-capacity queue  # 4 workers

Prints one line with the base URL and the ``AIRFLOW_CONN_CONPEEK_DEFAULT`` value, then
serves until SIGINT or SIGTERM.

.. seealso:: :doc:`/sandbox`, section *From the command line*, for every option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when needed: --help stays quick
    import airflow_provider_conpeek.testing.faults


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conpeek-sandbox", description="Run the fake Conpeek API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--records", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", default="2026-01-01", help="first UTC day (ISO date)")
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--api-key", default="sandbox-key")
    p.add_argument("--path-prefix", default="/api/v1_3")
    p.add_argument("--latency-ms", type=float, default=None, help="added to every API request")
    p.add_argument("--max-limit", type=int, default=None, help="silently clamp larger limits")
    p.add_argument("--reject-limit-above", type=int, default=None, help="HTTP 400 above this")
    p.add_argument("--tls", action="store_true", help="serve HTTPS, self-signed certificate")
    p.add_argument(
        "--fault-json",
        default=None,
        help="FaultConfig as JSON; the fault options given (latency, capacity) override its fields",
    )
    p.add_argument(
        "--capacity",
        type=_positive_int,
        default=None,
        metavar="K",
        help="API requests served at once; more get --over-capacity",
    )
    p.add_argument(
        "--over-capacity",
        choices=("429", "queue"),
        default=None,
        help="beyond --capacity: answer 429 at once (default) or queue for a free slot",
    )
    p.add_argument(
        "--capacity-retry-after",
        default=None,
        metavar="VALUE",
        help="Retry-After of the --capacity 429s, verbatim (default: no header)",
    )
    p.add_argument("--verbose", action="store_true", help="log each request to stderr")
    return p


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def faults_from_argv(argv: list[str]) -> airflow_provider_conpeek.testing.faults.FaultConfig | None:
    """The faults ``conpeek-sandbox ARGV`` serves with: ``--fault-json`` (None if absent),
    with the fault options given (``--latency-ms``, ``--capacity``, ``--over-capacity``,
    ``--capacity-retry-after``) overriding the same fields.

    :raises ValueError: for an invalid ``--fault-json`` or combination of fault options.

    Example::

        faults_from_argv(["--fault-json", '{"capacity": 4}', "--over-capacity", "queue"])
        # FaultConfig(capacity=4, over_capacity="queue", ...)
    """
    return _faults(_parser().parse_args(argv))


def _faults(args: argparse.Namespace) -> airflow_provider_conpeek.testing.faults.FaultConfig | None:
    from airflow_provider_conpeek.testing.faults import FaultConfig

    faults = FaultConfig.from_dict(json.loads(args.fault_json)) if args.fault_json else None
    overrides: dict[str, Any] = {
        "latency": None if args.latency_ms is None else args.latency_ms / 1000.0,
        "capacity": args.capacity,
        "over_capacity": args.over_capacity,
        "capacity_retry_after": args.capacity_retry_after,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return faults
    return dataclasses.replace(faults or FaultConfig(), **overrides)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until SIGINT/SIGTERM; returns the exit status.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    :return: 0 after a signal, 1 if the port cannot be bound, 2 for an invalid
        ``--fault-json`` or combination of fault options.
    """
    args = _parser().parse_args(argv)
    from airflow_provider_conpeek.testing.sandbox import SandboxServer

    try:
        faults = _faults(args)
        server = SandboxServer(
            args.records,
            seed=args.seed,
            start=args.start,
            days=args.days,
            api_key=args.api_key,
            path_prefix=args.path_prefix,
            host=args.host,
            port=args.port,
            max_limit=args.max_limit,
            reject_limit_above=args.reject_limit_above,
            tls=args.tls,
            faults=faults,
            verbose=args.verbose,
        )
    except (ValueError, TypeError) as exc:  # handshake faults without --tls included
        print(f"conpeek-sandbox: invalid --fault-json or fault options: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    old = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
    except OSError as exc:
        print(f"conpeek-sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        extra = {"ca_bundle": server.ca_file} if server.ca_file else {}
        conn = shlex.quote(server.airflow_connection_json(**extra))
        print(
            f"conpeek-sandbox serving {server.url} (export AIRFLOW_CONN_CONPEEK_DEFAULT={conn})",
            flush=True,
        )
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
