"""The extract window: which records a task run is responsible for.

Shared by the operator and the sensor. The window is half-open, ``[start, end)``, sent as
``gte`` start and ``lt`` end on a date property in UTC, so consecutive data intervals
neither overlap nor leave a gap: a record created at 00:00:00 belongs to the interval that
starts then.

By default the window is the run's data interval. In Airflow 3, ``schedule="@daily"``
means ``CronTriggerTimetable``, whose runs have a *zero-length* data interval; such a window
is refused with an explanation instead of silently extracting nothing.

:class:`WindowArguments` holds the four arguments both tasks take (``filters``,
``date_property``, ``window_start``, ``window_end``): their template fields, their resolution
and their documentation, once.

Example::

    window = resolve_window(context, None, None, "created_date")
    window.filters  # [{"property": "created_date", "operator": "gte", ...}, {... "lt" ...}]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_conpeek.datetimes import API_DATETIME_FORMAT, format_api_datetime
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.filters import DATE_PROPERTIES, Filter, date_window, validate_filters

log = logging.getLogger(__name__)

TIMETABLE_HINT = (
    "In Airflow 3, schedule='@daily' (or any cron string) uses CronTriggerTimetable, whose "
    "runs have a zero-length data interval. Schedule the DAG with "
    "CronDataIntervalTimetable('@daily', timezone='UTC') (from airflow.timetables.interval), "
    "or pass window_start and window_end explicitly."
)


@dataclass(frozen=True)
class Window:
    """A half-open window ``[start, end)`` on one date property, in the API's UTC format.

    Example::

        window = Window("created_date", "2026-01-01 00:00:00", "2026-01-02 00:00:00")
        window.filters  # gte start, lt end: ready for ConpeekHook.iter_pages()
    """

    date_property: str
    start: str
    end: str

    @property
    def filters(self) -> list[Filter]:
        """The ``gte``/``lt`` filter pair for this window."""
        return date_window(self.start, self.end, property=self.date_property)

    def as_dict(self) -> dict[str, str]:
        """JSON-safe form, for XCom and logs."""
        return {"date_property": self.date_property, "start": self.start, "end": self.end}


def resolve_window(
    context: Mapping[str, Any],
    window_start: Any,
    window_end: Any,
    date_property: str,
    *,
    warn_if_open: bool = True,
) -> Window:
    """Validate the window arguments against the run's data interval. No I/O.

    :param context: the task context (``data_interval_start`` / ``data_interval_end``).
    :param window_start: explicit start, or ``None`` for the data interval's start.
    :param window_end: explicit end, or ``None`` for the data interval's end.
    :param date_property: ``created_date`` or ``closed_date``.
    :param warn_if_open: warn when the window ends in the future (an extract of it would
        miss later records); a sensor waiting on an open window turns this off.
    """
    if date_property not in DATE_PROPERTIES:
        raise ConpeekConfigError(
            f"date_property must be one of {', '.join(DATE_PROPERTIES)}, got {date_property!r}."
        )
    start = _bound(context, window_start, "window_start", "data_interval_start")
    end = _bound(context, window_end, "window_end", "data_interval_end")
    if start == end:
        raise ConpeekConfigError(
            f"The window [{start}, {end}) is empty: window_start equals window_end, so there "
            f"is nothing to extract. {TIMETABLE_HINT}"
        )
    if start > end:  # the API's format sorts chronologically
        raise ConpeekConfigError(
            f"window_start ({start}) is after window_end ({end}). Swap them, or check the "
            "templates that render them."
        )
    now = datetime.now(timezone.utc).strftime(API_DATETIME_FORMAT)
    if warn_if_open and end > now:
        log.warning(
            "The window ends in the future (%s > now %s UTC): records created later in the "
            "window will be missing from this extract; rerun it after the window has closed.",
            end,
            now,
        )
    return Window(date_property=date_property, start=start, end=end)


def _bound(context: Mapping[str, Any], value: Any, name: str, context_key: str) -> str:
    if value is None or value == "":
        value = context.get(context_key)
        if value is None:
            raise ConpeekConfigError(
                f"{name} was not given and this run has no {context_key} (for example a run "
                f"whose timetable has no data interval). Pass {name} explicitly. "
                f"{TIMETABLE_HINT}"
            )
        if isinstance(value, datetime) and value.microsecond:
            # Airflow's own interval can carry a fraction (a manual run of a timedelta
            # schedule ends "now"); flooring both ends alike keeps windows contiguous.
            value = value.replace(microsecond=0)
    return format_api_datetime(value, name=name)


def combine_filters(window: Window, filters: Sequence[Any] | None) -> list[Filter]:
    """The window's filters plus the user's extra filters (validated).

    Extra filters on the window's own date property are refused: the window arguments own it.
    """
    extra = validate_filters(filters) if filters else []
    for item in extra:
        if item["property"] == window.date_property:
            raise ConpeekConfigError(
                f"filters contains a {window.date_property!r} condition, but the window "
                f"(window_start/window_end) already sets {window.date_property!r}. Remove it "
                "from filters and use window_start/window_end instead."
            )
    return window.filters + extra


WINDOW_TEMPLATE_FIELDS = ("filters", "date_property", "window_start", "window_end")
"""The template fields of :class:`WindowArguments`."""


class WindowArguments:
    """The extract window's arguments, shared by the operator and the sensor (a mixin).

    Each task takes them as keyword arguments of the same names and assigns them as is;
    they are resolved in ``execute()`` by :meth:`resolve_window_filters`.

    :param filters: extra filters ANDed with the window, in the API's dict form (templated);
        not on the window's own ``date_property``. See :doc:`/filters`.
    :param date_property: ``created_date`` (default) or ``closed_date`` (templated). A
        ``closed_date`` window never contains requests still open (null ``closed_date``):
        a request appears in the window in which it closes. Window on ``created_date`` to
        have every request, open ones included.
    :param window_start: start of the window, inclusive (templated; default
        ``data_interval_start``): a time-zone-aware datetime, an ISO 8601 string with an
        offset, or ``YYYY-MM-DD HH:mm:ss`` in UTC.
    :param window_end: end of the window, exclusive (templated; default
        ``data_interval_end``).

    Example::

        class MyOperator(WindowArguments, BaseOperator):
            template_fields = WINDOW_TEMPLATE_FIELDS

            def execute(self, context):
                window, filters = self.resolve_window_filters(context)
    """

    filters: Sequence[Any] | None
    date_property: str
    window_start: Any
    window_end: Any

    def resolve_window_filters(
        self, context: Mapping[str, Any], *, warn_if_open: bool = True
    ) -> tuple[Window, list[Filter]]:
        """The window and every filter of the request (window first). No I/O.

        :raises ConpeekConfigError: on any invalid argument, naming it.
        """
        window = resolve_window(
            context,
            self.window_start,
            self.window_end,
            self.date_property,
            warn_if_open=warn_if_open,
        )
        return window, combine_filters(window, self.filters)
