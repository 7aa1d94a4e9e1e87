"""The API's ``YYYY-MM-DD HH:mm:ss`` (UTC) date-times, as the sandbox reads and writes them.

The sandbox keeps its own copy of these rules rather than the provider's
(:mod:`airflow_provider_conpeek.datetimes`), so a bug there cannot hide behind a fake that
shares it.

Example::

    parse_date("2026-01-01 00:00:00")  # 1767225600
    format_ts(1767225600)              # '2026-01-01 00:00:00'
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timezone

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
"""Format of ``created_date`` / ``closed_date`` values and of date filter values."""

DAY = 86400
"""Seconds in a (UTC) day."""

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def parse_date(value: object) -> int:
    """Parse ``YYYY-MM-DD HH:mm:ss`` (UTC) to epoch seconds.

    :param value: the date-time; anything but a string of exactly that form is refused.
    :raises ValueError: if ``value`` is malformed or not a real date-time.
    """
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ValueError(f"expected 'YYYY-MM-DD HH:mm:ss', got {value!r}")
    dt = datetime.strptime(value, DATE_FORMAT)
    return calendar.timegm(dt.timetuple())


def format_ts(ts: int) -> str:
    """Format epoch seconds as ``YYYY-MM-DD HH:mm:ss`` (UTC)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime(DATE_FORMAT)


def to_midnight_utc(start: datetime | date | str) -> int:
    """Epoch seconds of UTC midnight of the day of ``start``.

    :param start: a date, a date-time (naive means UTC) or an ISO date or date-time string.
    """
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if not isinstance(start, datetime):
        start = datetime(start.year, start.month, start.day)
    if start.tzinfo is not None:
        start = start.astimezone(timezone.utc).replace(tzinfo=None)
    return calendar.timegm(start.date().timetuple())


__all__ = ["DATE_FORMAT", "DAY", "format_ts", "parse_date", "to_midnight_utc"]
