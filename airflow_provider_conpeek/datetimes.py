"""Date-times in the API's own form: ``YYYY-MM-DD HH:mm:ss``, UTC, whole seconds.

:func:`format_api_datetime` is the one gate every date-time passes through -- window
bounds and date filter values alike. Aware datetimes are converted to UTC; naive ones, and
fractional seconds, are refused (see the decisions in :mod:`airflow_provider_conpeek.filters`).

>>> format_api_datetime("2026-01-01T01:00:00+01:00")
'2026-01-01 00:00:00'
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Final

from airflow_provider_conpeek.exceptions import ConpeekFilterError

#: strftime format of the API's date-times (always UTC).
API_DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})([T ])(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(Z|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)
_DATE_ONLY_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
EXPECTED_FORMS = (
    "expected 'YYYY-MM-DD HH:mm:ss' (UTC, the API's format, e.g. '2026-01-01 00:00:00') or "
    "an ISO-8601 date-time with an offset or 'Z' (e.g. '2026-01-01T00:00:00+00:00'), "
    "or a time-zone-aware datetime"
)
_WHOLE_SECONDS = (
    "the API has whole-second resolution, so a fractional second cannot be sent exactly; "
    "truncate it first (e.g. dt.replace(microsecond=0))"
)


def _to_api(dt: datetime) -> str:
    # Formatted by hand: strftime("%Y") does not zero-pad years before 1000 on every libc.
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def _aware_to_api(value: datetime, name: str) -> str:
    if value.microsecond:
        raise ConpeekFilterError(f"{name}: {value!r} has a fractional second; {_WHOLE_SECONDS}")
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ConpeekFilterError(f"{name}: {value!r} is out of range in UTC") from exc
    if utc.microsecond:  # only with an offset that has sub-second parts
        raise ConpeekFilterError(
            f"{name}: {value!r} is not a whole second in UTC; {_WHOLE_SECONDS}"
        )
    return _to_api(utc)


def _parse_string(value: str, name: str) -> str:
    m = _DATETIME_RE.fullmatch(value)
    if m is None:
        if _DATE_ONLY_RE.fullmatch(value):
            raise ConpeekFilterError(
                f"{name}: {value!r} is a date without a time; {EXPECTED_FORMS} "
                f"(for midnight UTC write '{value} 00:00:00')"
            )
        raise ConpeekFilterError(
            f"{name}: {value!r} is not a recognised date-time; {EXPECTED_FORMS}"
        )
    year, month, day, sep, hour, minute, second, fraction, offset = m.groups()
    try:
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError as exc:
        raise ConpeekFilterError(
            f"{name}: {value!r} is not a real calendar date-time ({exc}); {EXPECTED_FORMS}"
        ) from exc
    if fraction is not None and fraction.strip("0"):
        raise ConpeekFilterError(f"{name}: {value!r} has a fractional second; {_WHOLE_SECONDS}")
    if offset is None:
        if sep == " " and fraction is None:
            return value  # the API's own format: UTC by definition
        raise ConpeekFilterError(
            f"{name}: {value!r} has no UTC offset, so the instant it means is ambiguous; "
            f"{EXPECTED_FORMS}"
        )
    if offset == "Z":
        tz = timezone.utc
    else:
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise ConpeekFilterError(
                f"{name}: {value!r} has an invalid UTC offset; {EXPECTED_FORMS}"
            )
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-delta if offset[0] == "-" else delta)
    return _aware_to_api(parsed.replace(tzinfo=tz), name)


def format_api_datetime(value: datetime | str, name: str = "value") -> str:
    """Return ``value`` as the API's ``YYYY-MM-DD HH:mm:ss`` in UTC.

    Accepts a time-zone-aware ``datetime`` (stdlib or pendulum; converted to UTC), a string
    already in the API's format (UTC by definition; the date is checked), or an ISO-8601
    string with an offset or ``Z``, as Airflow renders ``{{ data_interval_start }}``.
    ``name`` (e.g. ``"window_start"``) prefixes error messages.

    >>> import pendulum
    >>> format_api_datetime(pendulum.datetime(2026, 1, 1, 2, 30, tz="Europe/Warsaw"))
    '2026-01-01 01:30:00'
    >>> format_api_datetime("2026-01-01T00:00:00+02:00")
    '2025-12-31 22:00:00'
    >>> format_api_datetime("2026-02-30 00:00:00", "window_start")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    airflow_provider_conpeek.exceptions.ConpeekFilterError: window_start: ... not a real calendar...

    :raises ConpeekFilterError: for naive datetimes, naive or date-only strings, fractional
        seconds, impossible dates and anything else.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConpeekFilterError(
                f"{name}: naive datetime {value!r} has no time zone, so the UTC instant it "
                "means is ambiguous; attach one, e.g. pendulum.datetime(2026, 1, 1, tz='UTC') "
                "or dt.replace(tzinfo=datetime.timezone.utc), or pass a string in the API's "
                "format 'YYYY-MM-DD HH:mm:ss', which is UTC by definition"
            )
        return _aware_to_api(value, name)
    if isinstance(value, str):
        return _parse_string(value, name)
    raise ConpeekFilterError(
        f"{name}: expected a datetime or a string, got {type(value).__name__} {value!r}; "
        f"{EXPECTED_FORMS}"
    )
