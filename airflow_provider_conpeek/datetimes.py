"""Date-times in the API's own form: ``YYYY-MM-DD HH:mm:ss``, UTC, whole seconds.

:func:`format_api_datetime` is the one gate every date-time passes through -- window bounds
and date filter values alike.

>>> format_api_datetime("2026-01-01T01:00:00+01:00")
'2026-01-01 00:00:00'

.. seealso:: :doc:`filters`, section *Date-times*: what is accepted, what is refused and why.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Final

from airflow_provider_conpeek.exceptions import ConpeekFilterError

#: strftime format of the API's date-times (always UTC).
API_DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

#: The accepted forms, as error messages state them.
EXPECTED_FORMS: Final = (
    "expected 'YYYY-MM-DD HH:mm:ss' (UTC, the API's format, e.g. '2026-01-01 00:00:00') or "
    "an ISO-8601 date-time with an offset or 'Z' (e.g. '2026-01-01T00:00:00+00:00'), "
    "or a time-zone-aware datetime"
)

# Which strings are accepted at all: fixed-width ASCII digits, an upper-case 'T' or a space,
# an optional fraction, and 'Z', '+HH:MM' or '+HHMM' as the offset. Reading the values is left
# to the standard library, but its parsers accept more, and more with each Python:
# fromisoformat reads '+05:60' as +06:00, and from 3.11 takes '+01' and '20260101T00';
# strptime takes '2026-1-1', runs of spaces and non-ASCII digits. This pins the forms.
_SHAPE: Final = re.compile(
    r"""
    (?P<date> \d{4}-\d\d-\d\d )
    (?:  # the time, absent from a bare date
        (?P<sep> [T\ ] ) (?P<time> \d\d:\d\d:\d\d )
        (?: \. (?P<fraction> \d+ ) )?
        (?P<offset> Z | [+-] \d\d :? \d\d )?
    )?
    """,
    re.ASCII | re.VERBOSE,
)

_WHOLE_SECONDS: Final = (
    "the API has whole-second resolution, so a fractional second cannot be sent exactly; "
    "truncate it first (e.g. dt.replace(microsecond=0))"
)


def _aware_to_api(value: datetime, name: str) -> str:
    if value.microsecond:
        raise ConpeekFilterError(f"{name}: {value!r} has a fractional second; {_WHOLE_SECONDS}")
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ConpeekFilterError(
            f"{name}: {value!r} is out of range in UTC; the API takes date-times between "
            "0001-01-01 00:00:00 and 9999-12-31 23:59:59 UTC"
        ) from exc
    if utc.microsecond:  # only with an offset that has sub-second parts
        raise ConpeekFilterError(
            f"{name}: {value!r} is not a whole second in UTC; {_WHOLE_SECONDS}"
        )
    # isoformat, unlike strftime("%Y") on some libcs, zero-pads years before 1000.
    return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def _parse_string(value: str, name: str) -> str:
    shape = _SHAPE.fullmatch(value)
    if shape is None:
        raise ConpeekFilterError(
            f"{name}: {value!r} is not a recognised date-time; {EXPECTED_FORMS}"
        )
    if shape["time"] is None:
        raise ConpeekFilterError(
            f"{name}: {value!r} is a date without a time; {EXPECTED_FORMS} "
            f"(for midnight UTC write '{value} 00:00:00')"
        )
    try:
        local = datetime.fromisoformat(f"{shape['date']}T{shape['time']}")
        # Python 3.14 reads 24:00:00 as the next day's midnight; every other version refuses it.
        if local.strftime("%H:%M:%S") != shape["time"]:
            raise ValueError("hour must be in 0..23")
    except ValueError as exc:
        raise ConpeekFilterError(
            f"{name}: {value!r} is not a real calendar date-time ({exc}); {EXPECTED_FORMS}"
        ) from exc
    fraction, offset = shape["fraction"], shape["offset"]
    if fraction is not None and fraction.strip("0"):
        raise ConpeekFilterError(f"{name}: {value!r} has a fractional second; {_WHOLE_SECONDS}")
    if offset is None:
        if shape["sep"] == " " and fraction is None:
            return value  # the API's own format: UTC by definition
        raise ConpeekFilterError(
            f"{name}: {value!r} has no UTC offset, so the instant it means is ambiguous; "
            f"{EXPECTED_FORMS}"
        )
    try:
        tz = datetime.strptime(offset, "%z").tzinfo  # refuses minutes > 59 and hours > 23
    except ValueError as exc:
        raise ConpeekFilterError(
            f"{name}: {value!r} has an invalid UTC offset; {EXPECTED_FORMS}"
        ) from exc
    return _aware_to_api(local.replace(tzinfo=tz), name)


def format_api_datetime(value: datetime | str, name: str = "value") -> str:
    """Return ``value`` as the API's ``YYYY-MM-DD HH:mm:ss`` in UTC.

    :param value: a time-zone-aware ``datetime`` (stdlib or pendulum), converted to UTC; a
        string in the API's format (UTC by definition; the date is checked); or an ISO-8601
        string with an offset or ``Z``, as Airflow renders ``{{ data_interval_start }}``.
    :param name: what ``value`` is (e.g. ``"window_start"``); prefixes error messages.
    :raises ConpeekFilterError: for naive datetimes, naive or date-only strings, fractional
        seconds, impossible dates, invalid offsets and anything else.

    >>> import pendulum
    >>> format_api_datetime(pendulum.datetime(2026, 1, 1, 2, 30, tz="Europe/Warsaw"))
    '2026-01-01 01:30:00'
    >>> format_api_datetime("2026-01-01T00:00:00+02:00")
    '2025-12-31 22:00:00'
    >>> format_api_datetime("2026-02-30 00:00:00", "window_start")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    airflow_provider_conpeek.exceptions.ConpeekFilterError: window_start: ... not a real calendar...
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
