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
(a ``ValueError``) naming the filter, what is wrong and what is expected.

Decisions where the vendor's documentation is silent or inconsistent:

* **Date-times are UTC, whole seconds.** The API takes ``YYYY-MM-DD HH:mm:ss`` in UTC.
  :func:`~airflow_provider_conpeek.datetimes.format_api_datetime` (also importable from
  here) converts aware datetimes (stdlib or pendulum) to UTC, and
  accepts ISO-8601 strings *with* an offset or ``Z`` (what Airflow renders for
  ``{{ data_interval_start }}``, e.g. ``2026-01-01T00:00:00+00:00``), converting them to UTC.
  A string already in the API format is taken as UTC, as the API defines it.
* **Naive datetimes are rejected**, as are naive ISO strings (``2026-01-01T00:00:00``) and
  bare dates: which instant they mean depends on a time zone nobody stated. Attach one, e.g.
  ``pendulum.datetime(2026, 1, 1, tz="UTC")``, or pass an API-format string.
* **Fractional seconds are rejected, not truncated.** The API has whole-second resolution,
  so a half-open window ``[start, end)`` whose bounds carry fractions cannot be expressed
  exactly; silently truncating would shift a bound. Truncate yourself if that is what you
  mean (``dt.replace(microsecond=0)``).
* ``contact_number`` **is rejected.** The vendor's example filter uses it but the documented
  property list has only ``contact_number_list``; a filter the server silently ignored would
  widen an extract, so use ``contact_number_list`` with a list of strings.
* **Empty lists are rejected** for list properties: "match nothing" and "no filter" are both
  plausible readings, and the server's is undocumented.
* **Contradictory date bounds are rejected**: a lower bound (``gt``/``gte``) and an upper
  bound (``lt``/``lte``) on the same property that leave no instant in between.
* **Encoding.** The vendor describes ``encodeURI(JSON.stringify(filters))``. We write the same
  JSON (no spaces, non-ASCII kept as UTF-8) but percent-encode everything except RFC 3986
  unreserved characters and ``:``/``,``: ``encodeURI`` would leave ``&``, ``=``, ``+``,
  ``#`` and ``?`` raw, which would corrupt values containing them in a query string. The
  vendor's own example encodes byte-for-byte as documented.

This module imports only the standard library and the provider's exceptions (which import
only ``airflow.exceptions``), so it is cheap to import from DAG files.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, TypeAlias, TypedDict

from airflow_provider_conpeek.datetimes import (
    API_DATETIME_FORMAT,
    EXPECTED_FORMS,
    format_api_datetime,
)
from airflow_provider_conpeek.exceptions import ConpeekFilterError

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

#: Properties holding a UTC date-time; these (and only these) take an ``operator``.
DATE_PROPERTIES: Final = ("created_date", "closed_date")

#: Operators of the date properties: later than, later or equal, earlier, earlier or equal.
OPERATORS: Final = ("gt", "gte", "lt", "lte")

#: List properties and the type of their elements (``bool`` does not count as ``int``).
LIST_PROPERTIES: Final[Mapping[str, type]] = MappingProxyType(
    {
        "contact_number_list": str,
        "voice_campaign_id_list": str,
        "project_id_list": int,
        "call_request_id_list": str,
    }
)

#: Every documented filterable property.
PROPERTIES: Final = (
    "contact_number_list",
    "created_date",
    "closed_date",
    "voice_campaign_id_list",
    "project_id_list",
    "call_request_id_list",
)

#: Type of a filter's ``value``.
FilterValue: TypeAlias = str | list[str] | list[int]

_KEYS: Final = ("property", "value", "operator")
_LOWER: Final = ("gt", "gte")


class _FilterRequired(TypedDict):
    property: str
    value: FilterValue


class Filter(_FilterRequired, total=False):
    """One filter object as the API takes it; ``operator`` only on date properties.

    >>> f: Filter = {"property": "created_date", "value": "2026-01-01 00:00:00", "operator": "gte"}
    """

    operator: str


# --------------------------------------------------------------------------- encoding

_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_default(obj: object) -> object:
    if isinstance(obj, Mapping):
        return dict(obj)
    hint = ""
    if isinstance(obj, datetime):
        hint = " (format date-times with format_api_datetime or use validate_filters)"
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON serialisable{hint}")


def encode_filter(filters: Sequence[Mapping[str, Any]]) -> str:
    """Serialise ``filters`` to JSON and percent-encode it for the ``filter`` query parameter.

    The JSON matches JavaScript's ``JSON.stringify`` (no spaces, non-ASCII kept); the
    percent-encoding keeps only RFC 3986 unreserved characters, ``:`` and ``,`` literal. Use
    the result verbatim as ``filter=<result>``; do not encode it again. This does not
    validate properties (see :func:`validate_filters`).

    >>> encode_filter([{"property": "contact_number", "value": "452442123"}])
    '%5B%7B%22property%22:%22contact_number%22,%22value%22:%22452442123%22%7D%5D'
    >>> encode_filter([{"property": "p", "value": "a&b=c é"}])
    '%5B%7B%22property%22:%22p%22,%22value%22:%22a%26b%3Dc%20%C3%A9%22%7D%5D'

    :raises ConpeekFilterError: if ``filters`` cannot be written as JSON.
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


# --------------------------------------------------------------------------- validation


def _type_name(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def _validate_list_value(value: object, prop: str, label: str) -> list[Any]:
    element_type = LIST_PROPERTIES[prop]
    one, kind = ("an integer", "integers") if element_type is int else ("a string", "strings")
    example = "[1, 2]" if element_type is int else "['123', '456']"
    expected = f"expected a non-empty list of {kind}, e.g. {example}"
    if not isinstance(value, (list, tuple)):
        raise ConpeekFilterError(
            f"{label}: value must be a list, got {_type_name(value)}; {expected}"
        )
    if not value:
        raise ConpeekFilterError(
            f"{label}: value is an empty list, which is ambiguous (match nothing, or no "
            f"filter?); {expected}, or leave the filter out"
        )
    for j, item in enumerate(value):
        ok = (
            isinstance(item, int) and not isinstance(item, bool)
            if element_type is int
            else isinstance(item, str)
        )
        if not ok:
            raise ConpeekFilterError(
                f"{label}: value[{j}] must be {one}, got {_type_name(item)}; {expected}"
            )
    return list(value)


def _validate_one(i: int, item: object) -> Filter:
    if not isinstance(item, Mapping):
        raise ConpeekFilterError(
            f"filter[{i}]: expected a dict with keys 'property' and 'value' (and 'operator' "
            f"for date properties), got {_type_name(item)}"
        )
    unknown = [k for k in item if k not in _KEYS]
    if unknown:
        raise ConpeekFilterError(
            f"filter[{i}]: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
            "a filter has only 'property', 'value' and optionally 'operator'"
        )
    missing = [k for k in ("property", "value") if k not in item]
    if missing:
        raise ConpeekFilterError(
            f"filter[{i}]: missing {' and '.join(repr(k) for k in missing)}; every filter needs "
            "'property' and 'value', e.g. {'property': 'project_id_list', 'value': [1]}"
        )
    prop = item["property"]
    valid = ", ".join(PROPERTIES)
    if not isinstance(prop, str):
        raise ConpeekFilterError(
            f"filter[{i}]: 'property' must be a string, got {_type_name(prop)}; one of {valid}"
        )
    label = f"filter[{i}] ({prop!r})"
    if prop == "contact_number":
        raise ConpeekFilterError(
            f"{label}: unknown property 'contact_number'. The vendor's example uses it, but the "
            "documented property list does not, and the server might ignore it and return "
            "every record; use 'contact_number_list' with a list of strings, e.g. "
            "{'property': 'contact_number_list', 'value': ['452442123']}, or "
            "contact_numbers('452442123')"
        )
    if prop not in PROPERTIES:
        raise ConpeekFilterError(f"{label}: unknown property; valid properties: {valid}")
    value = item["value"]
    has_operator = "operator" in item
    if prop in LIST_PROPERTIES:
        if has_operator:
            raise ConpeekFilterError(
                f"{label}: 'operator' is only allowed on the date properties "
                f"{', '.join(DATE_PROPERTIES)}; remove it"
            )
        return {"property": prop, "value": _validate_list_value(value, prop, label)}
    ops = ", ".join(OPERATORS)
    if not has_operator:
        raise ConpeekFilterError(
            f"{label}: date properties need an 'operator', one of {ops} "
            "(gt: later than, gte: at or later, lt: earlier than, lte: at or earlier)"
        )
    operator = item["operator"]
    if operator not in OPERATORS:
        hint = (
            " (operators are lower-case)"
            if isinstance(operator, str) and operator.lower() in OPERATORS
            else ""
        )
        raise ConpeekFilterError(
            f"{label}: unknown operator {operator!r}{hint}; expected one of {ops}"
        )
    if not isinstance(value, (str, datetime)):
        raise ConpeekFilterError(
            f"{label}: value must be a date-time string or datetime, got {_type_name(value)}; "
            f"{EXPECTED_FORMS}"
        )
    formatted = format_api_datetime(value, f"{label} value")
    return {"property": prop, "value": formatted, "operator": operator}


def _check_windows(result: Sequence[Filter]) -> None:
    for prop in DATE_PROPERTIES:
        bounds = [(i, f) for i, f in enumerate(result) if f["property"] == prop]
        lowers = [(i, f) for i, f in bounds if f["operator"] in _LOWER]
        uppers = [(i, f) for i, f in bounds if f["operator"] not in _LOWER]
        for i, low in lowers:
            for j, high in uppers:
                start, end = str(low["value"]), str(high["value"])  # fixed width: sortable
                inclusive = low["operator"] == "gte" and high["operator"] == "lte"
                if start > end or (start == end and not inclusive):
                    raise ConpeekFilterError(
                        f"filter[{i}] and filter[{j}] ({prop!r}): window start must be before "
                        f"its end, but {low['operator']} {start!r} and {high['operator']} "
                        f"{end!r} match nothing"
                    )


def validate_filters(filters: Any) -> list[Filter]:
    """Check a filter list in the API's own form and return a normalised copy.

    Date values may be datetimes or strings (see :func:`format_api_datetime`); they come
    back in the API's UTC format. List values come back as new lists.

    >>> validate_filters([
    ...     {"property": "closed_date", "operator": "lt", "value": "2026-01-01T01:00:00+01:00"},
    ...     {"property": "call_request_id_list", "value": ["r-1"]},
    ... ])  # doctest: +NORMALIZE_WHITESPACE
    [{'property': 'closed_date', 'value': '2026-01-01 00:00:00', 'operator': 'lt'},
     {'property': 'call_request_id_list', 'value': ['r-1']}]
    >>> bad = [{"property": "contact_number", "value": "452442123"}]
    >>> validate_filters(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    airflow_provider_conpeek.exceptions.ConpeekFilterError: ... use 'contact_number_list' ...

    :raises ConpeekFilterError: on the first problem found.
    """
    if isinstance(filters, (str, bytes)) or not isinstance(filters, Sequence):
        hint = " (parse a JSON string with json.loads first)" if isinstance(filters, str) else ""
        raise ConpeekFilterError(
            f"filters: expected a list of filter dicts, got {type(filters).__name__}{hint}, "
            "e.g. [{'property': 'project_id_list', 'value': [1]}]"
        )
    result = [_validate_one(i, item) for i, item in enumerate(filters)]
    _check_windows(result)
    return result


# --------------------------------------------------------------------------- helpers


def date_window(
    start: datetime | str, end: datetime | str, *, property: str = "created_date"
) -> list[Filter]:
    """Filters for the half-open window ``start <= property < end`` (``gte`` and ``lt``).

    >>> date_window(  # doctest: +NORMALIZE_WHITESPACE
    ...     "2026-01-01T00:00:00Z", "2026-01-01 01:00:00", property="closed_date"
    ... )
    [{'property': 'closed_date', 'value': '2026-01-01 00:00:00', 'operator': 'gte'},
     {'property': 'closed_date', 'value': '2026-01-01 01:00:00', 'operator': 'lt'}]

    :raises ConpeekFilterError: unless ``start`` is strictly before ``end``, or for a
        ``property`` that is not a date property.
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
