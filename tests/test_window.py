"""The window: half-open bounds from the data interval or explicit arguments."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pendulum
import pytest

from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.window import combine_filters, resolve_window

UTC = timezone.utc


def test_data_interval_bounds_in_utc() -> None:
    ctx = {
        "data_interval_start": pendulum.datetime(2026, 1, 1, 1, tz="Europe/Warsaw"),
        "data_interval_end": pendulum.datetime(2026, 1, 2, 1, tz="Europe/Warsaw"),
    }
    window = resolve_window(ctx, None, None, "created_date")
    assert (window.start, window.end) == ("2026-01-01 00:00:00", "2026-01-02 00:00:00")
    assert window.filters == [
        {"property": "created_date", "value": "2026-01-01 00:00:00", "operator": "gte"},
        {"property": "created_date", "value": "2026-01-02 00:00:00", "operator": "lt"},
    ]


def test_fractional_data_interval_is_floored_alike() -> None:
    """A manual run of a timedelta schedule ends "now", with microseconds: accepted."""
    end = datetime(2026, 1, 1, 12, 30, 15, 750_000, tzinfo=UTC)
    ctx = {"data_interval_start": end - timedelta(hours=1), "data_interval_end": end}
    window = resolve_window(ctx, None, None, "closed_date")
    assert (window.start, window.end) == ("2026-01-01 11:30:15", "2026-01-01 12:30:15")


def test_explicit_fractional_bound_is_still_refused() -> None:
    explicit = datetime(2026, 1, 1, 12, 0, 0, 500, tzinfo=UTC)
    with pytest.raises(ConpeekConfigError, match="window_end"):
        resolve_window({}, "2026-01-01 00:00:00", explicit, "created_date")


def test_extra_filters_are_added_and_may_not_own_the_window() -> None:
    window = resolve_window({}, "2026-01-01 00:00:00", "2026-01-02 00:00:00", "created_date")
    combined = combine_filters(window, [{"property": "project_id_list", "value": [11]}])
    assert combined[-1] == {"property": "project_id_list", "value": [11]}
    assert len(combined) == 3
    closed = [{"property": "closed_date", "operator": "lt", "value": "2026-01-03 00:00:00"}]
    assert len(combine_filters(window, closed)) == 3  # the other date property is fine
    own = [{"property": "created_date", "operator": "lt", "value": "2026-01-03 00:00:00"}]
    with pytest.raises(ConpeekConfigError, match="window_start/window_end"):
        combine_filters(window, own)
