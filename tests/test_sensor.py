"""Tests of VoiceCampaignSummarySensor: real HTTP against the Conpeek sandbox, real Airflow.

Windows in February 2026 are empty in the default sandbox (its generated records cover
2026-01-01..03), so tests there control exactly which records exist.
"""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from airflow_compat import (
    AIRFLOW_3,
    AIRFLOW_VERSION,
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
    run_dag_file,
)
from packaging.version import Version

from airflow_provider_conpeek.sensors.voice_campaign_summary import (
    DEFERRAL_TIMEOUT_ERRORS,
    VoiceCampaignSummarySensor,
)
from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule, SandboxServer
from airflow_provider_conpeek.triggers.voice_campaign_summary import CLASSPATH

UTC = timezone.utc
START, END = "2026-02-01 10:00:00", "2026-02-01 11:00:00"
WINDOW_FILTERS = [
    {"property": "created_date", "value": START, "operator": "gte"},
    {"property": "created_date", "value": END, "operator": "lt"},
]


def record(created: str, n: int = 0) -> dict[str, Any]:
    return {"call_request_id": f"cr-{created}-{n}", "created_date": created, "project_id": 7}


def context(
    start: datetime | None = datetime(2026, 2, 1, 10, tzinfo=UTC),
    end: datetime | None = datetime(2026, 2, 1, 11, tzinfo=UTC),
) -> Any:  # a Context, as far as the sensor can tell
    return {"data_interval_start": start, "data_interval_end": end, "ti": _TI()}


class _TI:
    """The part of a task instance that BaseSensorOperator's reschedule mode reads (Airflow
    2.11 looks the first try's start up in the metadata DB by these keys: none is found)."""

    dag_id, task_id, run_id, map_index, max_tries = "no_dag", "wait", "no_run", -1, 0

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


def sensor(**kwargs: Any) -> VoiceCampaignSummarySensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("deferrable", False)
    return VoiceCampaignSummarySensor(**kwargs)


def api_requests(server: SandboxServer) -> list[Any]:
    return [e for e in server.request_log if e.path == server.api_path]


class AddAfterRequests(threading.Thread):
    """Adds ``records`` once the sandbox has answered ``n`` API requests (records that
    appear while a sensor waits, independent of how long Airflow takes to start it)."""

    def __init__(self, server: SandboxServer, n: int, records: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.server, self.n, self.records = server, n, records
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            if len(api_requests(self.server)) >= self.n:
                self.server.add_records(self.records)
                return

    def __enter__(self) -> AddAfterRequests:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


# -- poke ----------------------------------------------------------------------------------


def test_poke_true_when_window_has_records_false_when_empty(sb: SandboxServer) -> None:
    assert sensor().poke(context()) is False  # February: empty
    day = context(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert sensor().poke(day) is True


def test_poke_sees_records_that_appear_while_waiting(sb: SandboxServer) -> None:
    s = sensor()
    assert s.poke(context()) is False
    sb.add_records([record("2026-02-01 10:30:00")])
    assert s.poke(context()) is True


def test_poke_mode_execute_succeeds_once_records_arrive(sb: SandboxServer) -> None:
    with AddAfterRequests(sb, 2, [record("2026-02-01 10:59:59")]):
        assert sensor(mode="poke").execute(context()) is None
    calls = api_requests(sb)
    assert len(calls) >= 3  # two empty pokes, then the record
    assert [c.status for c in calls] == [200] * len(calls)


def test_min_records_threshold_is_exact_and_bounds_are_half_open(sb: SandboxServer) -> None:
    inside = [record(f"2026-02-01 10:00:0{i}", i) for i in range(5)]
    outside = [record("2026-02-01 09:59:59"), record("2026-02-01 10:00:05")]
    sb.add_records(inside + outside)
    ctx = context(datetime(2026, 2, 1, 10, tzinfo=UTC), datetime(2026, 2, 1, 10, 0, 5, tzinfo=UTC))
    sb.clear_log()
    assert sensor(min_records=5).poke(ctx) is True
    assert sensor(min_records=6).poke(ctx) is False
    assert sensor(min_records=1).poke(ctx) is True
    calls = api_requests(sb)
    assert len(calls) == 3  # exactly one request per poke
    expected = [
        {"property": "created_date", "value": "2026-02-01 10:00:00", "operator": "gte"},
        {"property": "created_date", "value": "2026-02-01 10:00:05", "operator": "lt"},
    ]
    for call, offset in zip(calls, (4, 5, 0), strict=True):
        assert call.params["limit"] == ["1"]
        assert call.params["offset"] == [str(offset)]
        assert json.loads(call.params["filter"][0]) == expected


def test_extra_filters_and_templated_fields_are_sent(sb: SandboxServer) -> None:
    sb.add_records([record("2026-02-01 10:10:00")])
    s = sensor(filters=[{"property": "project_id_list", "value": [7]}], date_property="closed_date")
    assert "filters" in s.template_fields
    assert "window_start" in s.template_fields
    sb.clear_log()
    assert s.poke(context()) is False  # generated/added records carry no closed_date match
    (call,) = api_requests(sb)
    assert json.loads(call.params["filter"][0]) == [
        {"property": "closed_date", "value": START, "operator": "gte"},
        {"property": "closed_date", "value": END, "operator": "lt"},
        {"property": "project_id_list", "value": [7]},
    ]


def test_explicit_window_overrides_data_interval(sb: SandboxServer) -> None:
    s = sensor(window_start="2026-01-01T00:00:00+00:00", window_end="2026-01-01 01:00:00")
    sb.clear_log()
    assert s.poke(context(None, None)) is True
    (call,) = api_requests(sb)
    assert json.loads(call.params["filter"][0])[0]["value"] == "2026-01-01 00:00:00"


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["503", "429"])
def test_transient_error_after_hook_retries_is_not_yet(
    sb: SandboxServer, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sb.add_records([record("2026-02-01 10:30:00")])  # would succeed if the API answered
    sb.set_faults(FaultConfig(rules=[FaultRule(kind, retry_after="0")]))
    sb.clear_log()
    assert sensor().poke(context()) is False
    calls = api_requests(sb)
    assert [c.status for c in calls] == [int(kind)] * 2  # first try + max_retries=1
    assert "failing transiently; will poke again" in capsys.readouterr().out  # task log
    sb.set_faults(None)
    assert sensor().poke(context()) is True


def test_transient_errors_then_success_in_poke_mode(sb: SandboxServer) -> None:
    sb.add_records([record("2026-02-01 10:30:00")])
    sb.set_faults(FaultConfig(rules=[FaultRule("503", retry_after="0", first=4)]))
    assert sensor(mode="poke").execute(context()) is None
    statuses = [c.status for c in api_requests(sb)]
    assert statuses == [503, 503, 503, 503, 200]


def test_bad_key_fails_at_once_with_the_hooks_message(
    sb: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sb.airflow_connection_dict()
    conn["password"] = "wrong-key-123"
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(conn))
    with pytest.raises(AirflowFailException, match=r"refused the API key.*HTTP 401") as info:
        sensor(mode="poke").execute(context())
    assert "wrong-key-123" not in str(info.value)
    assert len(api_requests(sb)) == 1  # no retry, no second poke


@pytest.fixture
def http_400_server() -> Iterator[str]:
    """A real HTTP server that answers every request with HTTP 400 (the sandbox's body)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"error": "invalid_filter", "message": "unsupported filter combination"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1_3"
    server.shutdown()
    server.server_close()


def test_bad_request_fails_at_once_with_the_servers_message(
    http_400_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "conpeek", "host": http_400_server, "password": "k"}
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(conn))
    with pytest.raises(AirflowFailException, match=r"HTTP 400.*unsupported filter combination"):
        sensor().poke(context())


def test_wrong_base_url_fails_at_once(sb: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = sb.airflow_connection_dict()
    conn["host"] = sb.url.removesuffix("/api/v1_3")
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(conn))
    with pytest.raises(AirflowFailException, match=r"HTTP 404"):
        sensor().poke(context())


def test_fatal_error_with_soft_fail_skips(
    sb: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sb.airflow_connection_dict()
    conn["password"] = "wrong"
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(conn))
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).execute(context())
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True, deferrable=True).execute(context())


@pytest.mark.parametrize("deferrable", [False, True])
def test_zero_length_interval_fails_before_any_request(sb: SandboxServer, deferrable: bool) -> None:
    at = datetime(2026, 2, 1, tzinfo=UTC)
    with pytest.raises(AirflowFailException, match="zero-length data interval"):
        sensor(deferrable=deferrable).execute(context(at, at))
    assert api_requests(sb) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_records": 0}, "min_records must be a positive integer"),
        ({"min_records": -3}, "min_records must be a positive integer"),
        ({"min_records": True}, "min_records must be a positive integer"),
        ({"min_records": "5"}, "min_records must be a positive integer"),
        ({"window_start": "2026-02-02 00:00:00"}, "is after window_end"),
        ({"date_property": "updated_date"}, "date_property must be one of"),
        ({"filters": [{"property": "contact_number", "value": "1"}]}, "contact_number_list"),
        ({"filters": [{"property": "created_date", "value": START, "operator": "gt"}]}, "window"),
    ],
)
def test_invalid_arguments_fail_in_execute_not_init(
    sb: SandboxServer, kwargs: dict[str, Any], message: str
) -> None:
    s = sensor(**kwargs)  # constructing never validates (DAG parsing stays cheap and lenient)
    with pytest.raises(AirflowFailException, match=message):
        s.execute(context())
    assert api_requests(sb) == []


def test_missing_data_interval_fails_with_hint(sb: SandboxServer) -> None:
    with pytest.raises(AirflowFailException, match="Pass window_start explicitly"):
        sensor().poke(context(None, None))


# -- timeouts and modes --------------------------------------------------------------------


def test_poke_mode_timeout_raises_sensor_timeout(sb: SandboxServer) -> None:
    with pytest.raises(AirflowSensorTimeout, match="timed out"):
        sensor(mode="poke", timeout=0.3).execute(context())
    assert len(api_requests(sb)) >= 3


def test_poke_mode_timeout_with_soft_fail_skips(sb: SandboxServer) -> None:
    with pytest.raises(AirflowSkipException, match="timed out"):
        sensor(mode="poke", timeout=0.2, soft_fail=True).execute(context())


def test_reschedule_mode_reschedules_when_data_is_missing(
    sb: SandboxServer, airflow_db: Path
) -> None:
    """(Airflow 2.11's reschedule mode reads the metadata DB, hence ``airflow_db``.)"""
    before = datetime.now(UTC)
    with pytest.raises(AirflowRescheduleException) as info:
        sensor(mode="reschedule", poke_interval=30).execute(context())
    assert before + timedelta(seconds=29) <= info.value.reschedule_date
    assert len(api_requests(sb)) == 1
    sb.add_records([record("2026-02-01 10:30:00")])
    assert sensor(mode="reschedule", poke_interval=30).execute(context()) is None


# -- deferral ------------------------------------------------------------------------------


def test_deferrable_defers_with_the_rendered_window(sb: SandboxServer) -> None:
    s = sensor(
        deferrable=True,
        min_records=3,
        poke_interval=7.5,
        timeout=600,
        filters=[{"property": "project_id_list", "value": [7]}],
    )
    with pytest.raises(TaskDeferred) as info:
        s.execute(context())
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=600)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "conpeek_conn_id": "conpeek_default",
        "filters": [*WINDOW_FILTERS, {"property": "project_id_list", "value": [7]}],
        "min_records": 3,
        "poll_interval": 7.5,
        "first_poll_after": 7.5,  # it has just poked
    }
    json.dumps(kwargs)  # JSON-safe
    (call,) = api_requests(sb)  # the one immediate poke
    assert call.params["offset"] == ["2"]


def test_deferrable_succeeds_without_deferring_when_data_is_there(sb: SandboxServer) -> None:
    sb.add_records([record("2026-02-01 10:30:00")])
    assert sensor(deferrable=True).execute(context()) is None
    assert len(api_requests(sb)) == 1


def test_deferrable_initial_transient_error_still_defers(sb: SandboxServer) -> None:
    sb.add_records([record("2026-02-01 10:30:00")])
    sb.set_faults(FaultConfig(rules=[FaultRule("503", retry_after="0")]))
    with pytest.raises(TaskDeferred):
        sensor(deferrable=True).execute(context())


def test_deferrable_first_poke_never_fail_skips_any_error(sb: SandboxServer) -> None:
    # A malformed body is not an AirflowFailException: Airflow's own sensor logic turns it
    # into a skip under never_fail, in deferrable mode as in poke mode.
    sb.set_faults(FaultConfig(rules=[FaultRule("malformed")]))
    with pytest.raises(AirflowSkipException, match="never_fail"):
        sensor(never_fail=True, deferrable=True).execute(context())
    assert len(api_requests(sb)) == 1


def test_deferrable_first_poke_silent_fail_pokes_again_then_defers(sb: SandboxServer) -> None:
    sb.set_faults(FaultConfig(rules=[FaultRule("malformed", first=1)]))
    with pytest.raises(TaskDeferred):
        sensor(silent_fail=True, deferrable=True).execute(context())
    # The failed poke was logged and ignored; the next poke found nothing and deferred.
    assert [e.fault for e in api_requests(sb)] == ["malformed", None]


def test_deferrable_default_comes_from_config() -> None:
    import inspect
    import os
    import subprocess
    import sys

    default = inspect.signature(VoiceCampaignSummarySensor.__init__).parameters["deferrable"]
    assert default.default is False  # [operators] default_deferrable is unset here
    assert sensor(deferrable=True).deferrable is True
    code = (
        "from airflow_provider_conpeek.sensors.voice_campaign_summary import "
        "VoiceCampaignSummarySensor as S; print(S(task_id='t').deferrable)"
    )
    env = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_execute_complete_success_returns(sb: SandboxServer) -> None:
    event = {"status": "success", "records_at_least": 1, "conpeek_conn_id": "conpeek_default"}
    sensor().execute_complete(context(), event)  # returns (None): the task succeeds


def test_execute_complete_error_fails_with_message() -> None:
    fatal = {"status": "error", "message": "Conpeek refused the API key", "fatal": True}
    with pytest.raises(AirflowFailException, match="refused the API key"):
        sensor().execute_complete(context(), fatal)
    other = {"status": "error", "message": "Malformed response", "fatal": False}
    with pytest.raises(AirflowException, match="Malformed response") as info:
        sensor().execute_complete(context(), other)
    assert not isinstance(info.value, AirflowFailException)  # task retries apply
    with pytest.raises(AirflowException, match="unexpected event"):
        sensor().execute_complete(context(), None)


def test_resume_after_error_event_with_soft_fail_skips() -> None:
    event = {"status": "error", "message": "bad key", "fatal": True}
    s = sensor(soft_fail=True)
    with pytest.raises(AirflowSkipException):
        s.resume_execution("execute_complete", {"event": event}, context())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param("Trigger timeout", id="3.x TriggerFailureReason.TRIGGER_TIMEOUT"),
        pytest.param("Trigger/execution timeout", id="2.11 scheduler"),
    ],
)
def test_deferral_timeout_is_a_sensor_timeout_or_a_skip_with_soft_fail(error: str) -> None:
    """The same on every Airflow: 2.11 raised a retried TaskDeferralError, 3.0 ignored
    soft_fail."""
    kwargs = {"error": error}
    with pytest.raises(AirflowSensorTimeout, match="after the sensor's timeout"):
        sensor().resume_execution("__fail__", kwargs, context())  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("__fail__", kwargs, context())  # type: ignore[arg-type]


def test_airflows_own_deferral_timeout_reason_is_recognised() -> None:
    try:
        from airflow.sdk.bases.operator import TriggerFailureReason
    except ImportError:  # Airflow 2.11: the scheduler resumes with a plain string
        from airflow.jobs import scheduler_job_runner

        assert "Trigger/execution timeout" in Path(scheduler_job_runner.__file__).read_text()
        return
    assert TriggerFailureReason.TRIGGER_TIMEOUT in DEFERRAL_TIMEOUT_ERRORS


def test_other_trigger_failures_stay_airflows() -> None:
    with pytest.raises(AirflowException) as info:
        sensor().resume_execution("__fail__", {"error": "Trigger failure"}, context())  # type: ignore[arg-type]
    assert not isinstance(info.value, AirflowSensorTimeout)


# -- through Airflow: dag.test() on the SQLite metadata database ----------------------------


@pytest.fixture
def run_dag(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, str, datetime], Any]:
    """Write a daily DAG of ``tasks`` into a fresh DAGs folder and run it with ``dag.test()``."""

    def run(dag_id: str, tasks: str, logical_date: datetime) -> Any:
        body = textwrap.dedent(
            """
            import pendulum
            from airflow.timetables.interval import CronDataIntervalTimetable
            from airflow_provider_conpeek.sensors.voice_campaign_summary import (
                VoiceCampaignSummarySensor,
            )

            with DAG(
                dag_id="{dag_id}",
                schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
                start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
                catchup=False,
            ) as dag:
            """
        ).format(dag_id=dag_id) + textwrap.indent(textwrap.dedent(tasks), " " * 4)
        return run_dag_file(tmp_path, monkeypatch, dag_id, body, logical_date)

    return run


RESCHEDULE_BUG = "unsupported operand type(s) for -: 'datetime.datetime' and 'str'"


def _reschedules(ti: Any) -> int:
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        if hasattr(TaskReschedule, "ti_id"):  # Airflow 3
            query = select(func.count()).where(TaskReschedule.ti_id == ti.id)
        else:  # Airflow 2.11: keyed by the task instance's fields
            query = select(func.count()).where(
                TaskReschedule.dag_id == ti.dag_id,
                TaskReschedule.task_id == ti.task_id,
                TaskReschedule.run_id == ti.run_id,
                TaskReschedule.map_index == ti.map_index,
            )
        return int(session.scalar(query) or 0)


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.e2e
def test_dag_reschedule_mode_waits_for_records(
    sb: SandboxServer, run_dag: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    # Manual run at 2026-02-02: data interval [2026-02-01, 2026-02-02) from the timetable.
    with AddAfterRequests(sb, 2, [record("2026-02-01 23:59:59")]):
        dag_run = run_dag(
            "conpeek_sensor_reschedule",
            """
            VoiceCampaignSummarySensor(
                task_id="wait", mode="reschedule", poke_interval=0.2, timeout=60
            )
            """,
            datetime(2026, 2, 2, tzinfo=UTC),
        )
    if AIRFLOW_3 and Version("3.1") > AIRFLOW_VERSION:
        # Airflow 3.0's BaseSensorOperator fails the second poke of any sensor in reschedule
        # mode: the first reschedule date reaches it as a string (docs/compatibility.rst).
        assert _states(dag_run) == {"wait": "failed"}
        output = capfd.readouterr()
        assert RESCHEDULE_BUG in output.out + output.err
        pytest.xfail(f"Airflow {AIRFLOW_VERSION}'s reschedule mode: {RESCHEDULE_BUG}")
    assert _states(dag_run) == {"wait": "success"}
    calls = api_requests(sb)
    assert len(calls) >= 3  # rescheduled at least twice before the record appeared
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 1  # rescheduled, not retried
    assert _reschedules(ti) == len(calls) - 1
    assert json.loads(calls[0].params["filter"][0]) == [
        {"property": "created_date", "value": "2026-02-01 00:00:00", "operator": "gte"},
        {"property": "created_date", "value": "2026-02-02 00:00:00", "operator": "lt"},
    ]


@pytest.mark.e2e
def test_dag_poke_mode_timeout_fails_or_skips(
    sb: SandboxServer, run_dag: Callable[..., Any]
) -> None:
    dag_run = run_dag(
        "conpeek_sensor_timeout",
        """
        VoiceCampaignSummarySensor(task_id="times_out", poke_interval=0.1, timeout=0.5)
        VoiceCampaignSummarySensor(
            task_id="soft", poke_interval=0.1, timeout=0.5, soft_fail=True
        )
        VoiceCampaignSummarySensor(
            task_id="templated",
            window_start="{{ data_interval_start.subtract(days=31) }}",
            window_end="{{ data_interval_start.subtract(days=30) }}",
            poke_interval=0.1,
            timeout=5,
        )
        """,
        datetime(2026, 2, 2, tzinfo=UTC),
    )
    assert _states(dag_run) == {"times_out": "failed", "soft": "skipped", "templated": "success"}


@pytest.mark.e2e
def test_dag_deferrable_runs_the_trigger_and_resumes(
    sb: SandboxServer, run_dag: Callable[..., Any]
) -> None:
    with AddAfterRequests(sb, 3, [record("2026-02-01 12:00:00")]):
        dag_run = run_dag(
            "conpeek_sensor_deferrable",
            """
            VoiceCampaignSummarySensor(
                task_id="wait", deferrable=True, poke_interval=0.2, timeout=60
            )
            """,
            datetime(2026, 2, 2, tzinfo=UTC),
        )
    assert _states(dag_run) == {"wait": "success"}
    assert len(api_requests(sb)) >= 4  # the task's poke, then the trigger's polls
