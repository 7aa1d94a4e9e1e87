"""VoiceCampaignSummarySensor: wait until a window holds at least ``min_records`` records.

Each poke is one ``limit=1`` request at ``offset=min_records-1``
(:meth:`~airflow_provider_conpeek.hooks.conpeek.ConpeekHook.has_at_least`); the window is
never downloaded. Heavy imports (requests, the hook, the trigger) happen at run time, so a
DAG file that uses the sensor parses fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_provider_conpeek._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    conf,
)
from airflow_provider_conpeek.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_conpeek.filters import Filter


class VoiceCampaignSummarySensor(BaseSensorOperator):
    """Wait until a window of voice campaign request summaries holds enough records.

    The window is half-open, ``[window_start, window_end)``, on ``date_property`` (UTC), and
    defaults to the run's data interval, exactly as in
    :class:`~airflow_provider_conpeek.operators.voice_campaign_summary.VoiceCampaignSummaryToS3Operator`,
    so a sensor placed before the operator waits for the very records the operator extracts.
    A zero-length data interval (Airflow 3's ``schedule="@daily"``) is refused with an
    explanation; use ``CronDataIntervalTimetable("@daily", timezone="UTC")``.

    Every poke sends one request (``limit=1``, ``offset=min_records - 1``) and never pages
    through the window.

    Failures:

    * Transient errors (HTTP 429, 5xx, timeouts, dropped connections) that outlast the
      hook's own retries count as "not yet": a warning is logged and the sensor keeps
      waiting until its ``timeout``.
    * Errors that waiting cannot fix -- invalid arguments or filters, an empty or inverted
      window, HTTP 400, a rejected API key (401/403), a wrong base URL (404) -- fail the task
      at once with the hook's message, as :class:`~airflow.sdk.exceptions.AirflowFailException`,
      so task retries are not spent on them. As for every Airflow sensor, ``soft_fail=True``
      turns such a failure, or a timeout, into a skip; ``never_fail=True`` skips on any
      failed poke.
    * Anything else (a malformed response, a missing connection) fails the task normally, and
      the task's ``retries`` apply.

    :param conpeek_conn_id: the Conpeek connection.
    :param filters: extra filters ANDed with the window, in the API's dict form (templated).
    :param date_property: ``created_date`` (default) or ``closed_date`` (templated).
    :param window_start: start of the window, inclusive (templated; default
        ``data_interval_start``). A time-zone-aware datetime, an ISO 8601 string with an
        offset, or ``YYYY-MM-DD HH:mm:ss`` in UTC.
    :param window_end: end of the window, exclusive (templated; default ``data_interval_end``).
    :param min_records: how many matching records are enough (a positive integer; default 1).
    :param deferrable: wait in the triggerer instead of a worker slot (default: the
        ``[operators] default_deferrable`` option). The sensor pokes once first and succeeds
        at once if the records are already there; otherwise it defers to
        :class:`~airflow_provider_conpeek.triggers.voice_campaign_summary.VoiceCampaignSummaryTrigger`,
        which polls every ``poke_interval`` seconds until ``timeout``.

    ``poke_interval``, ``timeout``, ``mode`` (``poke`` or ``reschedule``), ``soft_fail``,
    ``exponential_backoff`` and the other :class:`~airflow.sdk.BaseSensorOperator` arguments
    behave as for any sensor; in deferrable mode ``poke_interval`` is the trigger's polling
    interval and ``timeout`` the deferral timeout.

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

    template_fields: Sequence[str] = (
        "filters",
        "date_property",
        "window_start",
        "window_end",
    )
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

    # -- poke / reschedule ----------------------------------------------------------------

    def poke(self, context: Context) -> bool:
        """Whether the window holds at least ``min_records`` matching records (one request)."""
        return self._check(self.resolve_filters(context))

    def resolve_filters(self, context: Context) -> list[Filter]:
        """The window's date filters plus ``filters``, validated. No I/O.

        Raises :class:`~airflow_provider_conpeek.exceptions.ConpeekConfigError` (an
        ``AirflowFailException``) on invalid input.
        """
        from airflow_provider_conpeek.paging import validate_min_records
        from airflow_provider_conpeek.window import combine_filters, resolve_window

        validate_min_records(self.min_records)
        window = resolve_window(
            context, self.window_start, self.window_end, self.date_property, warn_if_open=False
        )
        return combine_filters(window, self.filters)

    def _check(self, filters: list[Filter]) -> bool:
        from airflow_provider_conpeek.exceptions import ConpeekTransientError
        from airflow_provider_conpeek.hooks.conpeek import ConpeekHook

        hook = ConpeekHook(conpeek_conn_id=self.conpeek_conn_id)
        try:
            # Errors no wait can cure are already AirflowFailException (see exceptions.py).
            found = hook.has_at_least(filters, self.min_records)
        except ConpeekTransientError as exc:
            self.log.warning("Conpeek is failing transiently; will poke again: %s", exc)
            return False
        finally:
            hook.close()
        if found:
            self.log.info("At least %d matching record(s) found.", self.min_records)
        else:
            self.log.info("Fewer than %d matching record(s) so far.", self.min_records)
        return found

    # -- execute / deferral ---------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Poke (``poke``/``reschedule`` mode) or poke once and defer (``deferrable=True``)."""
        if not self.deferrable:
            return super().execute(context)

        from airflow_provider_conpeek.triggers.voice_campaign_summary import (
            VoiceCampaignSummaryTrigger,
        )

        # The first poke, with BaseSensorOperator.execute's soft_fail/never_fail/silent_fail.
        try:
            filters = self.resolve_filters(context)
        except AirflowFailException as exc:
            self._skip_if_soft(exc)
            raise
        try:
            found = self._check(filters)
        except AirflowFailException as exc:
            self._skip_if_soft(exc)
            raise
        except Exception as exc:
            if self.never_fail:
                raise AirflowSkipException(f"Skipping ({exc}): never_fail.") from exc
            if not self.silent_fail:
                raise
            self.log.exception("Sensor poke failed; deferring anyway (silent_fail=True).")
            found = False
        if found:
            self.log.info("Success criteria met. Exiting.")
            return None
        self.log.info(
            "Deferring: polling every %.1f s for up to %.0f s.", self.poke_interval, self.timeout
        )
        self.defer(
            trigger=VoiceCampaignSummaryTrigger(
                conpeek_conn_id=self.conpeek_conn_id,
                filters=[dict(item) for item in filters],
                min_records=self.min_records,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def _skip_if_soft(self, exc: AirflowFailException) -> None:
        if self.soft_fail or self.never_fail:
            raise AirflowSkipException(f"Skipping ({exc}): soft_fail/never_fail is set.") from exc

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger fired: return on success, fail with its message on error.

        A deferral timeout never reaches this method: Airflow fails the task with
        ``AirflowSensorTimeout`` (a skip with ``soft_fail=True``), as for every sensor.
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
