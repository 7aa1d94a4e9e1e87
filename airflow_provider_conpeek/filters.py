"""Build, validate and encode ``filter`` values for ``GET /voice_campaign_request_summary``.

A filter is a list of objects ``{"property": ..., "value": ..., "operator": ...}`` (the
API's own form, see :class:`Filter`). Build one with the helpers, which validate as they go
and return lists, so they concatenate:

>>> window = date_window("2026-01-01 00:00:00", "2026-01-02 00:00:00")
>>> filters = window + project_ids(7, 9)
>>> [f["property"] for f in filters]
['created_date', 'created_date', 'project_id_list']

or validate a hand-written list with :func:`validate_filters`, then encode it once for the
query string with :func:`encode_filter`:

>>> encode_filter(validate_filters([{"property": "project_id_list", "value": [7]}]))
'%5B%7B%22property%22:%22project_id_list%22,%22value%22:%5B7%5D%7D%5D'

Every invalid input raises :class:`~airflow_provider_conpeek.exceptions.ConpeekFilterError`
(a ``ValueError``) naming the filter, what is wrong and what is expected. This module is the
public entry point: the property vocabulary and :func:`validate_filters` live in
:mod:`~airflow_provider_conpeek.filter_validation`, date-times in
:mod:`~airflow_provider_conpeek.datetimes`, and all are importable from here.

.. seealso:: :doc:`filters`: the properties, the decisions taken where the vendor's
   documentation is silent or inconsistent, and why the encoding differs from ``encodeURI``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from airflow_provider_conpeek.datetimes import API_DATETIME_FORMAT, format_api_datetime
from airflow_provider_conpeek.exceptions import ConpeekFilterError
from airflow_provider_conpeek.filter_validation import (
    DATE_PROPERTIES,
    LIST_PROPERTIES,
    OPERATORS,
    PROPERTIES,
    Filter,
    FilterValue,
    validate_filters,
)

__all__ = [
    "API_DATETIME_FORMAT",
    "DATE_PROPERTIES",
    "LIST_PROPERTIES",
    "OPERATORS",
    "PROPERTIES",
    "Filter",
    "FilterValue",
    "call_request_ids",
    "contact_numbers",
    "date_window",
    "encode_filter",
    "format_api_datetime",
    "project_ids",
    "validate_filters",
    "voice_campaign_ids",
]

# --------------------------------------------------------------------------- encoding

_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _json_default(obj: object) -> object:
    if isinstance(obj, Mapping):
        return dict(obj)
    hint = ""
    if isinstance(obj, datetime):
        hint = " (format date-times with format_api_datetime or use validate_filters)"
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON serialisable{hint}")


def encode_filter(filters: Sequence[Mapping[str, Any]]) -> str:
    """Serialise ``filters`` as JSON and percent-encode it for the ``filter`` query parameter.

    Use the result verbatim as ``filter=<result>``; do not encode it again. This does not
    validate (see :func:`validate_filters`).

    :param filters: filter dicts; any JSON-serialisable values.
    :raises ConpeekFilterError: if ``filters`` cannot be written as JSON.

    >>> encode_filter([{"property": "contact_number", "value": "452442123"}])
    '%5B%7B%22property%22:%22contact_number%22,%22value%22:%22452442123%22%7D%5D'
    >>> encode_filter([{"property": "p", "value": "a&b=c é"}])
    '%5B%7B%22property%22:%22p%22,%22value%22:%22a%26b%3Dc%20%C3%A9%22%7D%5D'

    .. seealso:: :doc:`filters`, section *Encoding*: ``JSON.stringify``'s JSON, and which
       characters stay literal.
    """
    try:
        text = json.dumps(
            filters,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
    except (TypeError, ValueError) as exc:
        raise ConpeekFilterError(f"filter cannot be encoded as JSON: {exc}") from exc
    # Lone surrogates cannot be written as UTF-8; escape them as JSON.stringify does.
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return urllib.parse.quote(text, safe=":,")


# --------------------------------------------------------------------------- helpers


def date_window(
    start: datetime | str, end: datetime | str, *, property: str = "created_date"
) -> list[Filter]:
    """Filters for the half-open window ``start <= property < end`` (``gte`` and ``lt``).

    :param start: the first instant in the window (see :func:`format_api_datetime`).
    :param end: the first instant after the window; must be later than ``start``.
    :param property: the date property, ``created_date`` or ``closed_date``.
    :raises ConpeekFilterError: for an invalid bound, an empty window or a ``property`` that
        is not a date property.

    >>> date_window(  # doctest: +NORMALIZE_WHITESPACE
    ...     "2026-01-01T00:00:00Z", "2026-01-01 01:00:00", property="closed_date"
    ... )
    [{'property': 'closed_date', 'value': '2026-01-01 00:00:00', 'operator': 'gte'},
     {'property': 'closed_date', 'value': '2026-01-01 01:00:00', 'operator': 'lt'}]
    """
    if property not in DATE_PROPERTIES:
        raise ConpeekFilterError(
            f"date_window: property {property!r} is not a date property; "
            f"expected one of {', '.join(DATE_PROPERTIES)}"
        )
    lo = format_api_datetime(start, "start")
    hi = format_api_datetime(end, "end")
    if lo >= hi:
        raise ConpeekFilterError(
            f"date_window: start ({lo!r} UTC) must be before end ({hi!r} UTC); the window "
            "[start, end) is half-open, so it would match nothing"
        )
    return validate_filters(
        [
            {"property": property, "value": lo, "operator": "gte"},
            {"property": property, "value": hi, "operator": "lt"},
        ]
    )


def _list_filter(helper: str, prop: str, values: tuple[Any, ...]) -> list[Filter]:
    if not values:
        raise ConpeekFilterError(
            f"{helper}() needs at least one value for {prop!r}; an empty filter is ambiguous, "
            "so leave the filter out instead"
        )
    for value in values:
        if isinstance(value, (list, tuple, set, frozenset)):
            raise ConpeekFilterError(
                f"{helper}(): got a {type(value).__name__} as one argument for {prop!r}; "
                f"pass values separately or unpack: {helper}(*values)"
            )
    return validate_filters([{"property": prop, "value": list(values)}])


def contact_numbers(*numbers: str) -> list[Filter]:
    """A ``contact_number_list`` filter.

    >>> contact_numbers("452442123", "48600100200")
    [{'property': 'contact_number_list', 'value': ['452442123', '48600100200']}]
    """
    return _list_filter("contact_numbers", "contact_number_list", numbers)


def voice_campaign_ids(*ids: str) -> list[Filter]:
    """A ``voice_campaign_id_list`` filter.

    >>> voice_campaign_ids("c1")
    [{'property': 'voice_campaign_id_list', 'value': ['c1']}]
    """
    return _list_filter("voice_campaign_ids", "voice_campaign_id_list", ids)


def project_ids(*ids: int) -> list[Filter]:
    """A ``project_id_list`` filter (integers; ``bool`` is rejected).

    >>> project_ids(1, 2)
    [{'property': 'project_id_list', 'value': [1, 2]}]
    """
    return _list_filter("project_ids", "project_id_list", ids)


def call_request_ids(*ids: str) -> list[Filter]:
    """A ``call_request_id_list`` filter.

    >>> call_request_ids("r-1", "r-2")
    [{'property': 'call_request_id_list', 'value': ['r-1', 'r-2']}]
    """
    return _list_filter("call_request_ids", "call_request_id_list", ids)
