"""What a valid filter is: the documented properties and operators, and :func:`validate_filters`.

Its public names are re-exported by :mod:`airflow_provider_conpeek.filters`; import them from
there.

.. seealso:: :doc:`filters`, sections *Properties and operators* and *Validation*.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, TypeAlias, TypedDict

from airflow_provider_conpeek.datetimes import EXPECTED_FORMS, format_api_datetime
from airflow_provider_conpeek.exceptions import ConpeekFilterError

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
_DIGITS: Final = re.compile(r"[0-9]+")
_NATIVE: Final = (
    "set render_template_as_native_obj=True on the DAG, so that templates render Python objects"
)
_EXAMPLE: Final = "[{'property': 'project_id_list', 'value': [1]}]"


class _FilterRequired(TypedDict):
    property: str
    value: FilterValue


class Filter(_FilterRequired, total=False):
    """One filter object as the API takes it; ``operator`` only on date properties.

    >>> f: Filter = {"property": "created_date", "value": "2026-01-01 00:00:00", "operator": "gte"}
    """

    operator: str


def _type_name(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def _validate_list_value(value: object, prop: str, label: str) -> list[Any]:
    """The list value as sent; for integers, strings of digits (a template's output) count."""
    element_type = LIST_PROPERTIES[prop]
    one, kind = ("an integer", "integers") if element_type is int else ("a string", "strings")
    example = "[1, 2]" if element_type is int else "['123', '456']"
    expected = f"expected a non-empty list of {kind}, e.g. {example}"
    if not isinstance(value, (list, tuple)):
        hint = ""
        if isinstance(value, str):
            hint = (
                ". A template renders a string: template each element instead, e.g. "
                "['{{ params.id }}'], or " + _NATIVE
            )
        raise ConpeekFilterError(
            f"{label}: value must be a list, got {_type_name(value)}; {expected}{hint}"
        )
    if not value:
        raise ConpeekFilterError(
            f"{label}: value is an empty list, which is ambiguous (match nothing, or no "
            f"filter?); {expected}, or leave the filter out"
        )
    result: list[Any] = []
    for j, item in enumerate(value):
        if element_type is int and isinstance(item, str) and _DIGITS.fullmatch(item.strip()):
            item = int(item.strip())  # '{{ params.project_id }}' renders as '2'
        ok = (
            isinstance(item, int) and not isinstance(item, bool)
            if element_type is int
            else isinstance(item, str)
        )
        if not ok:
            hint = ""
            if element_type is int and isinstance(item, str):
                hint = (
                    ". A string of digits such as '2' (what a template renders) counts as "
                    f"an integer; for a template of another value, {_NATIVE}"
                )
            raise ConpeekFilterError(
                f"{label}: value[{j}] must be {one}, got {_type_name(item)}; {expected}{hint}"
            )
        result.append(item)
    return result


def _validate_date(item: Mapping[str, Any], prop: str, label: str) -> Filter:
    ops = ", ".join(OPERATORS)
    if "operator" not in item:
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
    value = item["value"]
    if not isinstance(value, (str, datetime)):
        raise ConpeekFilterError(
            f"{label}: value must be a date-time string or datetime, got {_type_name(value)}; "
            f"{EXPECTED_FORMS}"
        )
    formatted = format_api_datetime(value, f"{label} value")
    return {"property": prop, "value": formatted, "operator": operator}


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
    if prop in DATE_PROPERTIES:
        return _validate_date(item, prop, label)
    if "operator" in item:
        raise ConpeekFilterError(
            f"{label}: 'operator' is only allowed on the date properties "
            f"{', '.join(DATE_PROPERTIES)}; remove it"
        )
    return {"property": prop, "value": _validate_list_value(item["value"], prop, label)}


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


def _decode_json(text: str) -> Any:
    """A filter list rendered by a template (a JSON string), decoded."""
    try:
        decoded = json.loads(text)
    except ValueError:
        raise ConpeekFilterError(
            f"filters: got a string that is not JSON ({text[:80]!r}), expected a list of "
            f"filter dicts, e.g. {_EXAMPLE}. A template renders a list as Python text, "
            "which is not JSON: render it as JSON with '{{ params.filters | tojson }}', or "
            + _NATIVE
        ) from None
    if not isinstance(decoded, list):
        raise ConpeekFilterError(
            f"filters: the JSON string decodes to {type(decoded).__name__}, expected a list "
            f"of filter dicts, e.g. {_EXAMPLE} (wrap a single filter in [...])"
        )
    return decoded


def validate_filters(filters: Any) -> list[Filter]:
    """Check a filter list in the API's own form and return a normalised copy.

    Date values come back in the API's UTC format (see
    :func:`~airflow_provider_conpeek.datetimes.format_api_datetime`), list values as new lists.

    :param filters: a list of filter dicts, e.g. ``[{"property": "project_id_list",
        "value": [7]}]``, or that list as a JSON string (what a template renders with
        ``| tojson``). Strings of digits count as integers (``'7'``, as a template renders).
    :raises ConpeekFilterError: on the first problem found, naming the filter.

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
    """
    if isinstance(filters, str):
        filters = _decode_json(filters)
    if isinstance(filters, bytes) or not isinstance(filters, Sequence):
        raise ConpeekFilterError(
            f"filters: expected a list of filter dicts, got {type(filters).__name__}, "
            f"e.g. {_EXAMPLE}"
        )
    result = [_validate_one(i, item) for i, item in enumerate(filters)]
    _check_windows(result)
    return result
