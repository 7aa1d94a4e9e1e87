"""Tests for airflow_provider_conpeek.filters: encoding, validation, helpers (date-times:
test_datetimes.py)."""

from __future__ import annotations

import doctest
import json
import urllib.parse
from datetime import datetime
from typing import Any

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_conpeek import datetimes, filter_validation
from airflow_provider_conpeek import filters as filters_module
from airflow_provider_conpeek.exceptions import ConpeekFilterError
from airflow_provider_conpeek.filters import (
    API_DATETIME_FORMAT,
    DATE_PROPERTIES,
    LIST_PROPERTIES,
    OPERATORS,
    PROPERTIES,
    Filter,
    FilterValue,
    call_request_ids,
    contact_numbers,
    date_window,
    encode_filter,
    project_ids,
    validate_filters,
    voice_campaign_ids,
)

VENDOR_EXAMPLE = [{"property": "contact_number", "value": "452442123"}]
VENDOR_ENCODED = "%5B%7B%22property%22:%22contact_number%22,%22value%22:%22452442123%22%7D%5D"


def _error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConpeekFilterError) as info:
        call(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------- constants


def test_constants() -> None:
    assert DATE_PROPERTIES == ("created_date", "closed_date")
    assert OPERATORS == ("gt", "gte", "lt", "lte")
    assert API_DATETIME_FORMAT == "%Y-%m-%d %H:%M:%S"
    assert dict(LIST_PROPERTIES) == {
        "contact_number_list": str,
        "voice_campaign_id_list": str,
        "project_id_list": int,
        "call_request_id_list": str,
    }
    assert set(PROPERTIES) == set(DATE_PROPERTIES) | set(LIST_PROPERTIES)
    assert len(PROPERTIES) == 6


def test_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="project_id_list"):
        validate_filters([{"property": "project_id_list", "value": []}])


@pytest.mark.parametrize(
    ("module", "examples"), [(filters_module, 9), (filter_validation, 3), (datetimes, 4)]
)
def test_doctests(module: Any, examples: int) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= examples
    assert result.failed == 0


def test_public_names_importable_from_filters() -> None:
    assert set(filters_module.__all__) == {
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
    }
    for name in filters_module.__all__:
        assert getattr(filters_module, name) is not None, name
    # Re-exported, not copied: one object, wherever it is imported from.
    assert filters_module.validate_filters is filter_validation.validate_filters
    assert Filter is filter_validation.Filter
    assert FilterValue == str | list[str] | list[int]
    assert filters_module.format_api_datetime is datetimes.format_api_datetime


# --------------------------------------------------------------------------- encoding


def test_vendor_example_byte_for_byte() -> None:
    assert encode_filter(VENDOR_EXAMPLE) == VENDOR_ENCODED


def test_encoding_is_compact_json_with_utf8() -> None:
    encoded = encode_filter([{"property": "p", "value": "zażółć 😀"}])
    decoded = urllib.parse.unquote(encoded)
    assert decoded == '[{"property":"p","value":"zażółć 😀"}]'
    assert "%C5%BC" in encoded  # ż as UTF-8 bytes
    assert "%F0%9F%98%80" in encoded  # emoji as 4 UTF-8 bytes, not \\ud83d\\ude00


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("&", "%26"),
        ("=", "%3D"),
        ("+", "%2B"),
        ("#", "%23"),
        ("?", "%3F"),
        (" ", "%20"),
        ("%", "%25"),
        ("/", "%2F"),
        ("é", "%C3%A9"),
    ],
)
def test_reserved_characters_escaped(char: str, escaped: str) -> None:
    encoded = encode_filter([{"property": "p", "value": f"a{char}b"}])
    assert f"a{escaped}b" in encoded


def test_unreserved_characters_literal() -> None:
    value = "AZaz09-_.~:,"
    encoded = encode_filter([{"property": "p", "value": value}])
    assert value in encoded


def test_encoding_preserves_key_order_and_types() -> None:
    f = [{"value": [1, 2], "operator": "gte", "property": "x"}]
    assert (
        urllib.parse.unquote(encode_filter(f))
        == '[{"value":[1,2],"operator":"gte","property":"x"}]'
    )


def test_encode_does_not_validate() -> None:
    # Pure encoding: unknown properties pass through.
    assert "nonsense" in encode_filter([{"property": "nonsense", "value": 1}])


def test_encode_lone_surrogate_escaped_like_json_stringify() -> None:
    encoded = encode_filter([{"property": "p", "value": "a\ud800b"}])
    assert urllib.parse.unquote(encoded) == '[{"property":"p","value":"a\\ud800b"}]'
    assert json.loads(urllib.parse.unquote(encoded))[0]["value"] == "a\ud800b"


def test_encode_rejects_unserialisable() -> None:
    msg = _error(encode_filter, [{"property": "created_date", "value": datetime(2026, 1, 1)}])
    assert "format_api_datetime" in msg
    assert "cannot be encoded as JSON" in _error(
        encode_filter, [{"property": "p", "value": float("nan")}]
    )


def test_encode_accepts_non_dict_mappings() -> None:
    from types import MappingProxyType

    assert encode_filter([MappingProxyType(VENDOR_EXAMPLE[0])]) == VENDOR_ENCODED


_tricky = st.text(alphabet=st.sampled_from(list("&=+#?%/ ,:;\"'\\[]{}aZ9éż€😀\n\t\x00")))
_text = st.one_of(_tricky, st.text())
_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _text),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)
_filters = st.lists(
    st.fixed_dictionaries({"property": _text, "value": _json_value}, optional={"operator": _text}),
    max_size=4,
)


@given(_filters)
def test_encoding_round_trips(f: list[dict[str, Any]]) -> None:
    encoded = encode_filter(f)
    assert json.loads(urllib.parse.unquote(encoded)) == f
    # The server's view: the parameter decoded from a query string.
    server = urllib.parse.parse_qs("limit=100&filter=" + encoded + "&offset=0", strict_parsing=True)
    assert json.loads(server["filter"][0]) == f
    assert server["limit"] == ["100"]
    assert server["offset"] == ["0"]
    for raw in "&=+#? ":
        assert raw not in encoded
    assert encoded.isascii()


@given(_text)
def test_encoding_round_trips_single_string(value: str) -> None:
    f = [{"property": "contact_number_list", "value": [value]}]
    encoded = encode_filter(f)
    assert urllib.parse.quote(urllib.parse.unquote(encoded), safe=":,") == encoded
    assert json.loads(urllib.parse.parse_qs("filter=" + encoded)["filter"][0]) == f


# --------------------------------------------------------------------------- validation


def test_validate_normalises_and_copies() -> None:
    ids = [1, 2]
    original: list[dict[str, Any]] = [
        {"property": "created_date", "operator": "gte", "value": pendulum.datetime(2026, 1, 1)},
        {"property": "closed_date", "operator": "lte", "value": "2026-01-01T02:00:00+01:00"},
        {"property": "project_id_list", "value": ids},
        {"property": "contact_number_list", "value": ("1", "2")},
        {"property": "voice_campaign_id_list", "value": ["c"]},
        {"property": "call_request_id_list", "value": ["r"]},
    ]
    result = validate_filters(original)
    assert result == [
        {"property": "created_date", "value": "2026-01-01 00:00:00", "operator": "gte"},
        {"property": "closed_date", "value": "2026-01-01 01:00:00", "operator": "lte"},
        {"property": "project_id_list", "value": [1, 2]},
        {"property": "contact_number_list", "value": ["1", "2"]},
        {"property": "voice_campaign_id_list", "value": ["c"]},
        {"property": "call_request_id_list", "value": ["r"]},
    ]
    assert result[2]["value"] is not ids
    assert isinstance(original[0]["value"], datetime)  # input untouched
    assert validate_filters([]) == []
    assert validate_filters(tuple(result)) == result


@pytest.mark.parametrize(
    ("filters", "fragments"),
    [
        (
            "[{'property': 'project_id_list', 'value': [1]}]",
            [
                "filters",
                "not JSON",
                "list of filter dicts",
                "| tojson",
                "render_template_as_native",
            ],
        ),
        ("None", ["filters", "not JSON", "'None'", "tojson"]),
        ('{"property": "project_id_list", "value": [1]}', ["JSON string decodes to dict", "[...]"]),
        ('[{"property": "project_id_list", "value": "1"}]', ["filter[0]", "must be a list"]),
        (b"[]", ["filters", "list of filter dicts", "bytes"]),
        ({"property": "x"}, ["filters", "list of filter dicts", "dict"]),
        (None, ["filters", "list of filter dicts"]),
        (["created_date"], ["filter[0]", "expected a dict", "'property'", "'value'"]),
        ([{"value": ["1"]}], ["filter[0]", "missing 'property'", "need"]),
        ([{"property": "project_id_list"}], ["filter[0]", "missing 'value'"]),
        ([{}], ["missing 'property' and 'value'"]),
        (
            [{"property": "project_id_list", "value": [1], "op": "gt"}],
            ["filter[0]", "unknown key(s) 'op'", "'property', 'value' and optionally 'operator'"],
        ),
        ([{"property": 5, "value": [1]}], ["filter[0]", "'property' must be a string", "one of"]),
        (
            [{"property": "project_id_list", "value": [1]}, {"property": "nope", "value": "x"}],
            ["filter[1]", "'nope'", "unknown property", *PROPERTIES],
        ),
        (
            [{"property": "contact_number", "value": "452442123"}],
            [
                "filter[0]",
                "'contact_number'",
                "vendor's example",
                "documented",
                "contact_number_list",
                "list of strings",
            ],
        ),
        (
            [{"property": "project_id_list", "value": 5}],
            ["filter[0] ('project_id_list')", "must be a list", "int 5", "list of integers"],
        ),
        (
            [{"property": "project_id_list", "value": ["5x"]}],
            [
                "('project_id_list')",
                "value[0] must be an integer",
                "str '5x'",
                "list of integers",
                "string of digits such as '2'",
                "render_template_as_native_obj=True",
            ],
        ),
        (
            [{"property": "project_id_list", "value": ["-5", "5"]}],
            ["value[0] must be an integer", "str '-5'"],
        ),
        (
            [{"property": "project_id_list", "value": "5"}],
            ["must be a list", "str '5'", "['{{ params.id }}']", "render_template_as_native_obj"],
        ),
        (
            [{"property": "project_id_list", "value": [1, True]}],
            ["('project_id_list')", "value[1] must be an integer", "bool True"],
        ),
        (
            [{"property": "project_id_list", "value": [1.0]}],
            ["value[0] must be an integer", "float 1.0"],
        ),
        (
            [{"property": "contact_number_list", "value": "452442123"}],
            ["('contact_number_list')", "must be a list", "list of strings"],
        ),
        (
            [{"property": "contact_number_list", "value": [452442123]}],
            ["('contact_number_list')", "value[0] must be a string", "list of strings"],
        ),
        (
            [{"property": "voice_campaign_id_list", "value": [None]}],
            ["('voice_campaign_id_list')", "value[0] must be a string"],
        ),
        (
            [{"property": "call_request_id_list", "value": []}],
            ["('call_request_id_list')", "empty list", "ambiguous", "non-empty list of strings"],
        ),
        (
            [{"property": "project_id_list", "value": [1], "operator": "gte"}],
            ["('project_id_list')", "'operator' is only allowed", "created_date", "closed_date"],
        ),
        (
            [{"property": "created_date", "value": "2026-01-01 00:00:00"}],
            ["('created_date')", "need an 'operator'", "gt, gte, lt, lte"],
        ),
        (
            [{"property": "closed_date", "value": "2026-01-01 00:00:00", "operator": "eq"}],
            ["('closed_date')", "unknown operator 'eq'", "gt, gte, lt, lte"],
        ),
        (
            [{"property": "closed_date", "value": "2026-01-01 00:00:00", "operator": "GTE"}],
            ["unknown operator 'GTE'", "lower-case"],
        ),
        (
            [{"property": "created_date", "value": "2026-02-30 00:00:00", "operator": "gt"}],
            ["filter[0] ('created_date') value", "'2026-02-30 00:00:00'", "calendar"],
        ),
        (
            [{"property": "created_date", "value": "2026-01-01", "operator": "gt"}],
            ["filter[0] ('created_date') value", "date without a time", "YYYY-MM-DD HH:mm:ss"],
        ),
        (
            [{"property": "created_date", "value": datetime(2026, 1, 1), "operator": "lt"}],
            ["('created_date') value", "naive"],
        ),
        (
            [{"property": "created_date", "value": ["2026-01-01 00:00:00"], "operator": "lt"}],
            ["('created_date')", "date-time string or datetime", "list"],
        ),
    ],
)
def test_validation_errors(filters: Any, fragments: list[str]) -> None:
    msg = _error(validate_filters, filters)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_strings_of_digits_count_as_integers() -> None:
    """What a template renders for an integer: '{{ params.project_id }}' gives '2'."""
    assert validate_filters([{"property": "project_id_list", "value": ["2", 3, " 07\n"]}]) == [
        {"property": "project_id_list", "value": [2, 3, 7]}
    ]
    assert project_ids("2") == [{"property": "project_id_list", "value": [2]}]
    # ... for the integer property only: string properties keep their strings.
    assert validate_filters([{"property": "contact_number_list", "value": ["007"]}]) == [
        {"property": "contact_number_list", "value": ["007"]}
    ]
    for odd in ["", " ", "2.0", "1e3", "²", "0x1f", "+2"]:
        with pytest.raises(ConpeekFilterError, match="must be an integer"):
            validate_filters([{"property": "project_id_list", "value": [odd]}])


def test_a_json_string_of_filters_is_decoded_and_validated() -> None:
    """What a template renders with ``| tojson``, or a JSON filter list from anywhere."""
    text = json.dumps(
        [
            {"property": "created_date", "operator": "gte", "value": "2026-01-01T01:00:00+01:00"},
            {"property": "project_id_list", "value": ["13"]},
        ]
    )
    assert validate_filters(text) == [
        {"property": "created_date", "value": "2026-01-01 00:00:00", "operator": "gte"},
        {"property": "project_id_list", "value": [13]},
    ]
    assert validate_filters("[]") == []
    assert validate_filters(" [] \n") == []
    msg = _error(validate_filters, '[{"property": "nope", "value": [1]}]')
    assert "filter[0]" in msg
    assert "unknown property" in msg


def _window(low_op: str, low: str, high_op: str, high: str, prop: str = "created_date") -> Any:
    return [
        {"property": prop, "operator": low_op, "value": low},
        {"property": "project_id_list", "value": [1]},
        {"property": prop, "operator": high_op, "value": high},
    ]


A, B = "2026-01-01 00:00:00", "2026-01-01 00:00:01"


@pytest.mark.parametrize(
    ("low_op", "low", "high_op", "high"),
    [
        ("gte", B, "lt", A),
        ("gte", A, "lt", A),
        ("gt", A, "lt", A),
        ("gt", A, "lte", A),
        ("gte", B, "lte", A),
        ("gt", B, "lte", A),
    ],
)
def test_empty_windows_rejected(low_op: str, low: str, high_op: str, high: str) -> None:
    msg = _error(validate_filters, _window(low_op, low, high_op, high, "closed_date"))
    assert "window start must be before its end" in msg
    assert "filter[0] and filter[2]" in msg
    assert "'closed_date'" in msg


@pytest.mark.parametrize(
    ("low_op", "low", "high_op", "high"),
    [("gte", A, "lt", B), ("gte", A, "lte", A), ("gt", A, "lte", B), ("gt", A, "lt", B)],
)
def test_non_empty_windows_accepted(low_op: str, low: str, high_op: str, high: str) -> None:
    assert len(validate_filters(_window(low_op, low, high_op, high))) == 3


def test_windows_compare_in_utc_and_per_property() -> None:
    # 01:00+02:00 is 23:00 UTC the day before, i.e. before the lower bound.
    msg = _error(
        validate_filters,
        _window("gte", "2026-01-01 00:00:00", "lt", "2026-01-01T01:00:00+02:00"),
    )
    assert "window start must be before its end" in msg
    # Bounds on different properties never contradict each other.
    mixed = [
        {"property": "created_date", "operator": "gte", "value": B},
        {"property": "closed_date", "operator": "lt", "value": A},
    ]
    assert len(validate_filters(mixed)) == 2
    # Two lower bounds alone are fine.
    lows = [
        {"property": "created_date", "operator": "gte", "value": B},
        {"property": "created_date", "operator": "gt", "value": A},
    ]
    assert len(validate_filters(lows)) == 2


# --------------------------------------------------------------------------- helpers


def test_date_window() -> None:
    start = pendulum.datetime(2026, 1, 1, 1, tz="Europe/Warsaw")
    assert date_window(start, "2026-01-02T00:00:00Z") == [
        {"property": "created_date", "value": "2026-01-01 00:00:00", "operator": "gte"},
        {"property": "created_date", "value": "2026-01-02 00:00:00", "operator": "lt"},
    ]
    closed = date_window(A, B, property="closed_date")
    assert [f["property"] for f in closed] == ["closed_date", "closed_date"]
    assert [f.get("operator") for f in closed] == ["gte", "lt"]


def test_date_window_errors() -> None:
    msg = _error(date_window, B, A)
    assert "start" in msg
    assert "before end" in msg
    assert "half-open" in msg
    assert "before end" in _error(date_window, A, A)
    assert _error(date_window, datetime(2026, 1, 1), B).startswith("start:")
    assert _error(date_window, A, "2026-01-01").startswith("end:")
    msg = _error(date_window, A, B, property="project_id_list")
    assert "'project_id_list'" in msg
    assert "created_date, closed_date" in msg


def test_list_helpers() -> None:
    assert contact_numbers("1", "2") == [{"property": "contact_number_list", "value": ["1", "2"]}]
    assert voice_campaign_ids("v") == [{"property": "voice_campaign_id_list", "value": ["v"]}]
    assert project_ids(3, 4) == [{"property": "project_id_list", "value": [3, 4]}]
    assert call_request_ids("r") == [{"property": "call_request_id_list", "value": ["r"]}]


def test_helpers_concatenate_and_encode() -> None:
    f = date_window(A, B) + project_ids(1, 2) + contact_numbers("+48 600")
    assert validate_filters(f) == f
    decoded = json.loads(urllib.parse.parse_qs("filter=" + encode_filter(f))["filter"][0])
    assert decoded == f
    assert len(f) == 4


@pytest.mark.parametrize(
    ("helper", "args", "fragments"),
    [
        (contact_numbers, (), ["contact_numbers()", "at least one", "contact_number_list"]),
        (project_ids, (), ["project_ids()", "at least one"]),
        (project_ids, ("1.5",), ["project_id_list", "must be an integer", "str '1.5'"]),
        (project_ids, (True,), ["project_id_list", "must be an integer", "bool True"]),
        (voice_campaign_ids, (12,), ["voice_campaign_id_list", "must be a string"]),
        (call_request_ids, (None,), ["call_request_id_list", "must be a string"]),
        (contact_numbers, (["1", "2"],), ["contact_numbers()", "got a list", "*values"]),
        (project_ids, ((1, 2),), ["project_ids()", "got a tuple", "*values"]),
    ],
)
def test_list_helper_errors(helper: Any, args: tuple[Any, ...], fragments: list[str]) -> None:
    msg = _error(helper, *args)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
