"""Tests for airflow_provider_conpeek.datetimes: every accepted and refused form."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_conpeek import datetimes
from airflow_provider_conpeek.exceptions import ConpeekFilterError
from airflow_provider_conpeek.filters import format_api_datetime


def _error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConpeekFilterError) as info:
        call(*args, **kwargs)
    return str(info.value)


# format_api_datetime's accepted and refused strings, on every boundary. The parser was
# rewritten on the standard library (issue #11); these pin the behaviour of the regex
# parser it replaced, case by case.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 1, tzinfo=timezone.utc), "2026-01-01 00:00:00"),
        (datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Warsaw")), "2026-07-01 10:00:00"),
        (datetime(2026, 1, 1, 1, tzinfo=ZoneInfo("Europe/Warsaw")), "2026-01-01 00:00:00"),
        (datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))), "2026-01-01 05:00:00"),
        (pendulum.datetime(2026, 3, 29, 3, 30, tz="Europe/Warsaw"), "2026-03-29 01:30:00"),
        (pendulum.datetime(2026, 1, 1, tz="UTC"), "2026-01-01 00:00:00"),
        (datetime(1, 1, 1, tzinfo=timezone.utc), "0001-01-01 00:00:00"),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc), "9999-12-31 23:59:59"),
        # The API's own form, UTC by definition, passed through.
        ("2026-01-01 00:00:00", "2026-01-01 00:00:00"),
        ("2024-02-29 23:59:59", "2024-02-29 23:59:59"),
        ("2000-02-29 00:00:00", "2000-02-29 00:00:00"),  # divisible by 400: a leap year
        ("0001-01-01 00:00:00", "0001-01-01 00:00:00"),
        ("0999-12-31 23:59:59", "0999-12-31 23:59:59"),
        ("9999-12-31 23:59:59", "9999-12-31 23:59:59"),
        # ISO 8601 with 'Z' or an offset, 'T' or a space.
        ("2026-01-01T00:00:00+00:00", "2026-01-01 00:00:00"),
        ("2026-01-01T00:00:00Z", "2026-01-01 00:00:00"),
        ("2026-01-01 00:00:00Z", "2026-01-01 00:00:00"),
        ("2026-01-01 00:00:00+02:00", "2025-12-31 22:00:00"),
        ("2026-01-01T23:30:00-01:30", "2026-01-02 01:00:00"),
        ("2024-02-29T23:00:00-01:00", "2024-03-01 00:00:00"),
        ("2024-03-01T00:30:00+01:00", "2024-02-29 23:30:00"),
        ("2026-01-01T00:00:00-00:00", "2026-01-01 00:00:00"),
        ("2026-01-01T00:00:00+14:00", "2025-12-31 10:00:00"),
        ("2026-01-01T00:00:00-12:00", "2026-01-01 12:00:00"),
        ("2026-01-01T00:00:00+23:59", "2025-12-31 00:01:00"),
        ("2026-01-01T00:00:00-23:59", "2026-01-01 23:59:00"),
        ("0001-01-01T00:00:00Z", "0001-01-01 00:00:00"),
        ("0001-01-01T00:00:00-01:00", "0001-01-01 01:00:00"),
        ("1000-01-01T00:30:00+01:00", "0999-12-31 23:30:00"),
        ("9999-12-31T23:59:59+01:00", "9999-12-31 22:59:59"),
        # Offsets without a colon.
        ("2026-01-01T00:00:00+0100", "2025-12-31 23:00:00"),
        ("2026-01-01T00:00:00-0530", "2026-01-01 05:30:00"),
        ("2026-01-01T00:00:00+0000", "2026-01-01 00:00:00"),
        ("2026-01-01T00:00:00-0000", "2026-01-01 00:00:00"),
        # Fractions of all zeros, any length.
        ("2026-01-01T00:00:00.0+00:00", "2026-01-01 00:00:00"),
        ("2026-01-01T00:00:00.000Z", "2026-01-01 00:00:00"),
        ("2026-01-01T00:00:00.000000+00:00", "2026-01-01 00:00:00"),
        ("2026-01-01 00:00:00.0000000000-0100", "2026-01-01 01:00:00"),
    ],
)
def test_format_api_datetime(value: datetime | str, expected: str) -> None:
    assert format_api_datetime(value) == expected


def test_format_airflow_rendered_data_interval() -> None:
    # What Airflow renders for {{ data_interval_start }}: str() of a pendulum DateTime.
    start = pendulum.datetime(2026, 5, 4, 22, 0, tz="UTC")
    assert format_api_datetime(str(start)) == "2026-05-04 22:00:00"
    assert format_api_datetime(start.isoformat()) == "2026-05-04 22:00:00"
    warsaw = pendulum.datetime(2026, 5, 5, 0, 0, tz="Europe/Warsaw")
    assert format_api_datetime(str(warsaw)) == "2026-05-04 22:00:00"


def test_format_pads_early_years() -> None:
    assert format_api_datetime(datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == (
        "0999-01-02 03:04:05"
    )


def test_naive_datetime_rejected() -> None:
    msg = _error(format_api_datetime, datetime(2026, 1, 1), name="window_start")
    assert msg.startswith("window_start:")
    assert "naive" in msg
    assert "ambiguous" in msg
    assert 'tz="UTC"' in msg or "tz='UTC'" in msg
    assert "YYYY-MM-DD HH:mm:ss" in msg


def test_microseconds_rejected() -> None:
    msg = _error(format_api_datetime, datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc), "end")
    assert msg.startswith("end:")
    assert "whole-second" in msg
    assert "fractional second" in msg
    assert "truncate" in msg
    msg = _error(format_api_datetime, pendulum.datetime(2026, 1, 1, microsecond=500000))
    assert "whole-second" in msg


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00.5+00:00",
        "2026-01-01T00:00:00.5Z",
        "2026-01-01T00:00:00.000001+00:00",
        "2026-01-01T00:00:00.0000001Z",  # beyond microseconds: still not zero
        "2026-01-01 00:00:00.5",  # the fraction is reported before the missing offset
        "2026-01-01T00:00:00.5",
        "2026-01-01T00:00:00.5+25:00",  # ... and before the invalid offset
    ],
)
def test_fractional_second_strings_rejected(value: str) -> None:
    msg = _error(format_api_datetime, value, "end")
    assert msg.startswith(f"end: {value!r} has a fractional second")
    assert "whole-second" in msg
    assert "dt.replace(microsecond=0)" in msg


def test_sub_second_offset_rejected() -> None:
    tz = timezone(timedelta(seconds=1, microseconds=5))
    assert "whole second" in _error(format_api_datetime, datetime(2026, 1, 1, tzinfo=tz))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-02-30 00:00:00", "day is out of range for month"),
        ("2025-02-29 00:00:00", "day is out of range for month"),  # not a leap year
        ("1900-02-29 00:00:00", "day is out of range for month"),  # divisible by 100: not one
        ("2026-04-31 00:00:00", "day is out of range for month"),
        ("2026-01-00 00:00:00", "day is out of range for month"),
        ("2026-13-01 00:00:00", "month must be in 1..12"),
        ("2026-00-01 00:00:00", "month must be in 1..12"),
        ("0000-01-01 00:00:00", "year 0 is out of range"),
        ("2026-01-01 24:00:00", "hour must be in 0..23"),
        ("2026-01-01 00:60:00", "minute must be in 0..59"),
        ("2026-01-01 00:00:60", "second must be in 0..59"),
        ("2026-02-30T00:00:00+00:00", "day is out of range for month"),
        ("2025-02-29T00:00:00Z", "day is out of range for month"),
        ("2026-01-01T24:00:00Z", "hour must be in 0..23"),
        # The calendar is checked first, before the fraction and the offset.
        ("2026-02-30T00:00:00.5+25:00", "day is out of range for month"),
        ("2026-02-30T00:00:00", "day is out of range for month"),
    ],
)
def test_invalid_calendar_dates_rejected(value: str, reason: str) -> None:
    msg = _error(format_api_datetime, value, "window_end")
    assert msg.startswith(f"window_end: {value!r} is not a real calendar date-time ({reason});")
    assert "YYYY-MM-DD HH:mm:ss" in msg


def test_hour_24_rejected_where_fromisoformat_accepts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python 3.14's fromisoformat reads 24:00:00 as the next day's midnight; emulate it.
    class Py314(datetime):
        @classmethod
        def fromisoformat(cls, date_string: str) -> Any:
            if date_string.endswith("T24:00:00"):
                return datetime.fromisoformat(date_string[:10]) + timedelta(days=1)
            return datetime.fromisoformat(date_string)

    monkeypatch.setattr(datetimes, "datetime", Py314)
    for value in ("2026-01-01 24:00:00", "2026-01-01T24:00:00Z"):
        msg = _error(format_api_datetime, value, "end")
        assert msg.startswith(f"end: {value!r} is not a real calendar date-time (hour must be")
    assert format_api_datetime("2026-01-01 23:59:59") == "2026-01-01 23:59:59"


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+01:00", "0001-01-01T00:59:59+01:00", "9999-12-31T23:59:59-00:01"],
)
def test_out_of_range_in_utc_rejected(value: str) -> None:
    msg = _error(format_api_datetime, value, "start")
    assert msg.startswith("start: datetime.datetime(")  # the value as parsed
    assert "is out of range in UTC;" in msg
    assert "between 0001-01-01 00:00:00 and 9999-12-31 23:59:59 UTC" in msg


def test_out_of_range_datetime_rejected() -> None:
    aware = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert "out of range in UTC" in _error(format_api_datetime, aware)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2026-01-01T00:00:00", "no UTC offset"),
        ("2026-01-01 00:00:00.000", "no UTC offset"),
        ("2026-01-01T00:00:00.0", "no UTC offset"),
        ("2026-01-01", "date without a time"),
        ("0001-01-01", "date without a time"),
        ("2026-01-01T00:00:00+25:00", "invalid UTC offset"),
        ("2026-01-01T00:00:00+24:00", "invalid UTC offset"),
        ("2026-01-01T00:00:00-24:00", "invalid UTC offset"),
        ("2026-01-01T00:00:00+2400", "invalid UTC offset"),
        ("2026-01-01T00:00:00+05:60", "invalid UTC offset"),
        ("2026-01-01T00:00:00+99:99", "invalid UTC offset"),
        ("garbage", "not a recognised date-time"),
        ("", "not a recognised date-time"),
        (" 2026-01-01 00:00:00", "not a recognised date-time"),
        ("2026-01-01 00:00:00 ", "not a recognised date-time"),
        ("2026-01-01 00:00:00\n", "not a recognised date-time"),
        ("2026-01-01  00:00:00", "not a recognised date-time"),
        ("2026-01-01\t00:00:00", "not a recognised date-time"),
        ("2026-01-01 00:00", "not a recognised date-time"),
        ("2026-01-01T00", "not a recognised date-time"),
        ("2026-1-1 0:0:0", "not a recognised date-time"),
        ("12026-01-01 00:00:00", "not a recognised date-time"),
        ("+2026-01-01 00:00:00", "not a recognised date-time"),
        ("20260101T000000Z", "not a recognised date-time"),
        ("2026-W01-1T00:00:00Z", "not a recognised date-time"),
        ("2026-001T00:00:00Z", "not a recognised date-time"),
        ("2026-01-01t00:00:00Z", "not a recognised date-time"),  # lower-case 't'
        ("2026-01-01T00:00:00z", "not a recognised date-time"),  # lower-case 'z'
        ("2026-01-01x00:00:00", "not a recognised date-time"),
        ("2026-01-01T00:00:00+01", "not a recognised date-time"),
        ("2026-01-01T00:00:00+1:00", "not a recognised date-time"),
        ("2026-01-01T00:00:00+01:00:00", "not a recognised date-time"),
        ("2026-01-01T00:00:00+01:00Z", "not a recognised date-time"),
        ("2026-01-01T00:00:00 +01:00", "not a recognised date-time"),
        ("2026-01-01T00:00:00\u221201:00", "not a recognised date-time"),  # minus sign
        ("2026-01-01T00:00:00 UTC", "not a recognised date-time"),
        ("2026-01-01T00:00:00.Z", "not a recognised date-time"),
        ("2026-01-01T00:00:00,0Z", "not a recognised date-time"),
        ("٢٠٢٦-01-01 00:00:00", "not a recognised date-time"),  # non-ASCII digits
        ("\uff12\uff10\uff12\uff16-01-01 00:00:00", "not a recognised date-time"),  # full-width
        ("2026-01-01T00:00:00.\u0660Z", "not a recognised date-time"),  # Arabic-Indic zero
    ],
)
def test_bad_strings_rejected(value: str, fragment: str) -> None:
    msg = _error(format_api_datetime, value, "start")
    assert msg.startswith(f"start: {value!r} ")
    assert fragment in msg
    assert "YYYY-MM-DD HH:mm:ss" in msg
    assert "2026-01-01T00:00:00+00:00" in msg


def test_date_only_message_suggests_midnight() -> None:
    assert "'2026-01-01 00:00:00'" in _error(format_api_datetime, "2026-01-01")


@pytest.mark.parametrize("value", [1767225600, None, 1.5, b"2026-01-01 00:00:00"])
def test_non_string_non_datetime_rejected(value: Any) -> None:
    msg = _error(format_api_datetime, value)
    assert "expected a datetime or a string" in msg


def test_date_object_rejected() -> None:
    from datetime import date

    assert "expected a datetime or a string" in _error(format_api_datetime, date(2026, 1, 1))


_offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_aware = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_offsets
).map(lambda dt: dt.replace(microsecond=0))


def _iso_forms(dt: datetime) -> list[str]:
    iso = dt.isoformat()  # ...+HH:MM
    forms = [iso, dt.isoformat(sep=" "), iso[:-3] + iso[-2:], dt.isoformat(timespec="milliseconds")]
    if not dt.utcoffset():
        forms.append(iso[:-6] + "Z")
    return forms


@given(_aware)
def test_every_iso_form_of_an_aware_datetime_means_the_same_instant(dt: datetime) -> None:
    u = dt.astimezone(timezone.utc)
    expected = f"{u.year:04d}-{u.month:02d}-{u.day:02d} {u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    assert format_api_datetime(dt) == expected
    for form in _iso_forms(dt):
        assert format_api_datetime(form) == expected, form


@given(st.datetimes(min_value=datetime(1, 1, 1)).map(lambda dt: dt.replace(microsecond=0)))
def test_api_form_passes_through_and_naive_iso_is_refused(dt: datetime) -> None:
    api = dt.isoformat(sep=" ")
    assert format_api_datetime(api) == api
    assert "no UTC offset" in _error(format_api_datetime, dt.isoformat())


@given(_aware, st.integers(1, 999_999))
def test_any_fraction_is_refused(dt: datetime, microsecond: int) -> None:
    dt = dt.replace(microsecond=microsecond)
    assert "fractional second" in _error(format_api_datetime, dt)
    assert "fractional second" in _error(format_api_datetime, dt.isoformat())
