"""VoiceCampaignSummarySensor: wait until a window holds at least ``min_records`` records.

Each poke is one ``limit=1`` request at ``offset=min_records-1``
(:meth:`~airflow_provider_conpeek.client.ConpeekClient.has_at_least`); the window is
never downloaded. Heavy imports (requests, the hook, the trigger) happen at run time, so a
DAG file that uses the sensor parses fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_conpeek._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    conf,
)
from airflow_provider_conpeek.connection import DEFAULT_CONN_ID
from airflow_provider_conpeek.window import WINDOW_TEMPLATE_FIELDS, WindowArguments

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_conpeek.filters import Filter

DEFERRAL_TIMEOUT_ERRORS = frozenset({"Trigger timeout", "Trigger/execution timeout"})
"""The ``error`` Airflow resumes a timed-out deferral with: 3.x's
``TriggerFailureReason.TRIGGER_TIMEOUT`` (a ``str`` enum) and 2.11's scheduler message."""


class VoiceCampaignSummarySensor(WindowArguments, BaseSensorOperator):
    """Wait until a window of voice campaign request summaries holds enough records.

    The window is the operator's (same arguments, same defaults), so a sensor placed before
    :class:`~airflow_provider_conpeek.operators.voice_campaign_summary.VoiceCampaignSummaryToS3Operator`
    waits for the very records it extracts. Every poke is one request (``limit=1``,
    ``offset=min_records - 1``); the window is never paged through.

    Transient errors (429, 5xx, timeouts, dropped connections) that outlast the retries
    count as "not yet". Errors that waiting cannot fix (bad arguments, HTTP 400, a rejected
    key, a wrong base URL) fail the task at once as ``AirflowFailException``. ``soft_fail``,
    ``never_fail`` and ``silent_fail`` are handled by Airflow's own sensor logic, in every
    mode.

    :param conpeek_conn_id: the Conpeek connection.
    :param filters: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param date_property: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param window_start: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param window_end: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param min_records: how many matching records are enough (a positive integer; default 1).
    :param deferrable: wait in the triggerer instead of a worker slot (default: the
        ``[operators] default_deferrable`` option). The sensor pokes once in the worker, then
        defers to
        :class:`~airflow_provider_conpeek.triggers.voice_campaign_summary.VoiceCampaignSummaryTrigger`,
        which polls every ``poke_interval`` seconds until ``timeout``; ``exponential_backoff``
        does not apply to the trigger's polls.

    .. seealso:: :doc:`/sensor`

    Example::

        wait = VoiceCampaignSummarySensor(
            task_id="wait_for_calls",
            filters=[{"property": "project_id_list", "value": [7]}],
            min_records=100,
            poke_interval=300,
            timeout=6 * 3600,
            mode="reschedule",
        )
        wait >> VoiceCampaignSummaryToS3Operator(task_id="extract", ...)
    """

    template_fields: Sequence[str] = WINDOW_TEMPLATE_FIELDS
    template_fields_renderers = {"filters": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        conpeek_conn_id: str = DEFAULT_CONN_ID,
        filters: list[dict[str, Any]] | None = None,
        date_property: str = "created_date",
        window_start: Any = None,
        window_end: Any = None,
        min_records: int = 1,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conpeek_conn_id = conpeek_conn_id
        self.filters = filters
        self.date_property = date_property
        self.window_start = window_start
        self.window_end = window_end
        self.min_records = min_records
        self.deferrable = deferrable

    def poke(self, context: Context) -> bool:
        """Whether the window holds ``min_records`` records (one request).

        In deferrable mode a "no" defers to the trigger instead of returning: the deferral
        leaves ``BaseSensorOperator.execute`` from inside its poke loop, so the first poke
        gets Airflow's own ``soft_fail``/``never_fail``/``silent_fail`` handling.
        """
        filters = self.resolve_filters(context)
        found = self._check(filters)
        if not found and self.deferrable:
            self._defer(filters)
        return found

    def resolve_filters(self, context: Context) -> list[Filter]:
        """The window's date filters plus ``filters``, validated. No I/O.

        :raises ConpeekConfigError: (an ``AirflowFailException``) on invalid input.
        """
        from airflow_provider_conpeek.client.paging import validate_min_records

        validate_min_records(self.min_records)
        return self.resolve_window_filters(context, warn_if_open=False)[1]

    def _check(self, filters: list[Filter]) -> bool:
        from airflow_provider_conpeek.exceptions import ConpeekTransientError
        from airflow_provider_conpeek.hooks.conpeek import ConpeekHook

        try:
            with ConpeekHook(conpeek_conn_id=self.conpeek_conn_id).get_conn() as client:
                found = client.has_at_least(filters, self.min_records)
        except ConpeekTransientError as exc:
            self.log.warning("Conpeek is failing transiently; will poke again: %s", exc)
            return False
        if found:
            self.log.info("At least %d matching record(s) found.", self.min_records)
        else:
            self.log.info("Fewer than %d matching record(s) so far.", self.min_records)
        return found

    def _defer(self, filters: list[Filter]) -> None:
        from airflow_provider_conpeek.triggers.voice_campaign_summary import (
            VoiceCampaignSummaryTrigger,
        )

        self.log.info(
            "Deferring: polling every %.1f s for up to %.0f s.", self.poke_interval, self.timeout
        )
        self.defer(
            trigger=VoiceCampaignSummaryTrigger(
                conpeek_conn_id=self.conpeek_conn_id,
                filters=[dict(item) for item in filters],
                min_records=self.min_records,
                poll_interval=self.poke_interval,
                # This poke found nothing: polling again at once would only repeat it. (An
                # immediate fire also meets an Airflow race, apache/airflow#72716, where
                # the resumed try is failed by the stale "success" of the deferring one.)
                first_poll_after=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        """Airflow's, except that a deferral timeout is the same on every supported version.

        It raises ``AirflowSensorTimeout`` (no task retry), or skips under ``soft_fail`` or
        ``never_fail``, as Airflow 3.1+ does. Airflow 2.11 would raise a plain, retried
        ``TaskDeferralError``, and 3.0 ignores ``soft_fail`` there.
        """
        error = (next_kwargs or {}).get("error")
        if next_method == "__fail__" and error in DEFERRAL_TIMEOUT_ERRORS:
            message = (
                f"Fewer than {self.min_records} matching record(s) after the sensor's "
                f"timeout ({self.timeout:.0f} s): {error}."
            )
            if self.soft_fail or getattr(self, "never_fail", False):
                raise AirflowSkipException(f"{message} Skipping (soft_fail/never_fail).")
            raise AirflowSensorTimeout(message)
        return super().resume_execution(next_method, next_kwargs, context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger fired: return on success, fail with its message on error.

        Errors raised here go through Airflow's ``BaseSensorOperator.resume_execution``: a
        skip under ``soft_fail``/``never_fail``.
        """
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowException(f"The Conpeek trigger sent an unexpected event: {event!r}.")
        if event["status"] == "success":
            self.log.info(
                "At least %s matching record(s) found. Exiting.", event.get("records_at_least")
            )
            return
        message = event.get("message") or "unknown error"
        text = f"Conpeek sensor failed while deferred: {message}"
        if event.get("fatal"):
            raise AirflowFailException(text)
        raise AirflowException(text)
