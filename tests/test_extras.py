"""The one description of the connection's extras, and everything generated from it: the
3.2+ form's JSON schema, the older forms' wtforms fields, read_settings' checks, the docs."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_provider_conpeek.connection import (
    CONN_FIELDS,
    EXTRA_FIELDS,
    ExtraField,
    connection_form_widgets,
)
from airflow_provider_conpeek.connection.reference import extras_table
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.settings import read_settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
NUMERIC = sorted(
    name for name, extra in EXTRA_FIELDS.items() if extra.kind in ("number", "integer")
)


def settings_for(extra: dict[str, Any], **overrides: Any) -> Any:
    conn = types.SimpleNamespace(
        host="https://t.example.com/api", password="k" * 8, schema=None, port=None
    )
    conn.extra = json.dumps(extra)
    return read_settings("conpeek_x", conn, overrides)


@pytest.mark.parametrize("name", sorted(EXTRA_FIELDS))
def test_default_is_valid_and_its_own_parse(name: str) -> None:
    extra = EXTRA_FIELDS[name]
    assert extra.name == name
    if extra.default is not None:
        assert extra.parse(extra.default) == extra.default
        jsonschema.validate(extra.default, extra.json_schema())
        assert type(extra.parse(extra.default)) is type(extra.default)


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("value", [-1, 0, 1e-9, 0.5, 1, 1.5, 3600, 3600.5, 1e5, 1e10, True])
def test_json_schema_and_read_settings_agree(name: str, value: Any) -> None:
    """The 3.2+ form's schema accepts exactly the JSON values that read_settings accepts."""
    schema_ok = jsonschema.Draft7Validator(CONN_FIELDS[name]["schema"]).is_valid(value)
    try:
        settings_for({name: value})
    except ConpeekConfigError:
        assert not schema_ok
    else:
        assert schema_ok


def test_ranges_reach_the_form_of_airflow_3_2() -> None:
    schema = CONN_FIELDS["read_timeout"]["schema"]
    assert schema["exclusiveMinimum"] == 0  # > 0, for JSON-schema validators
    assert schema["minimum"] == 0  # what Airflow 3.3's number input reads as its limit
    assert schema["maximum"] == 3600
    assert CONN_FIELDS["max_retries"]["schema"] == {
        "type": ["integer", "null"],
        "default": 5,
        "minimum": 0,
    }
    assert CONN_FIELDS["max_pages"]["schema"]["minimum"] == 1
    assert "Must be > 0 and <= 3600." in CONN_FIELDS["read_timeout"]["description"]
    assert CONN_FIELDS["proxy"]["label"] == "Proxy URL"
    assert "http and https" in CONN_FIELDS["proxy"]["description"]


def test_parse_problems() -> None:
    extra = ExtraField("n", "integer", "N", "A count.", default=1, minimum=1, maximum=9)
    assert (extra.parse("3"), extra.parse(4.0), extra.parse(" 9 ")) == (3, 4, 9)
    for bad, problem in [
        ("x", "must be a whole number, got str 'x'"),
        (1.5, "must be a whole number, got float 1.5"),
        (True, "must be a whole number, got bool True"),
        ("inf", "must be a whole number, got str 'inf'"),
        (10**400, "must be a whole number, got int 1000"),
        (0, "must be >= 1 and <= 9, got 0"),
        ("10", "must be >= 1 and <= 9, got '10'"),
    ]:
        with pytest.raises(ValueError, match=re.escape(problem)):
            extra.parse(bad)
    flag = ExtraField("f", "boolean", "F", "A flag.")
    assert [flag.parse(v) for v in (True, " TRUE ", "1", "yes", False, "no", "0")] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    # What Airflow 2.11's FAB form posts for a ticked checkbox (its Test button): "y".
    assert [flag.parse(v) for v in ("y", "on", "n", "off")] == [True, True, False, False]
    with pytest.raises(ValueError, match="must be true or false, got int 1"):
        flag.parse(1)


def test_errors_name_connection_extra_problem_and_fix_never_the_key() -> None:
    with pytest.raises(ConpeekConfigError) as info:
        settings_for({"extra__conpeek__max_retries": "-1"})
    assert str(info.value) == (
        "Connection 'conpeek_x': extra 'extra__conpeek__max_retries' must be >= 0, got '-1'. "
        "Correct it in the connection's extra, or remove it to use the default (5)."
    )
    with pytest.raises(ConpeekConfigError) as info:
        settings_for({"proxy": 3128})
    assert str(info.value).endswith(
        "must be a string, got int 3128. Correct it in the connection's extra, or remove it."
    )
    with pytest.raises(ConpeekConfigError) as info:
        settings_for({"ca_bundle": ["k" * 8]})  # the key, pasted into the wrong field
    assert "k" * 8 not in str(info.value)


def test_docs_example_message_is_the_real_one() -> None:
    with pytest.raises(ConpeekConfigError) as info:
        settings_for({"read_timeout": 0})
    message = str(info.value).replace("conpeek_x", "conpeek_default")
    page = " ".join((DOCS / "connection.rst").read_text().split())
    assert f"``{message}``" in page


# -- the forms of Airflow before 3.2 (wtforms) --------------------------------------------


def test_no_wtforms_no_widgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wtforms", None)
    assert connection_form_widgets() == {}


class _FormData(dict[str, str]):
    def getlist(self, key: str) -> list[str]:
        return [self[key]] if key in self else []


def test_wtforms_fields_check_like_read_settings() -> None:
    import wtforms  # a dev dependency: this test always runs

    widgets = connection_form_widgets()
    assert list(widgets) == list(EXTRA_FIELDS)
    form_class = type("ConpeekForm", (wtforms.Form,), dict(widgets))
    kinds = {"number": "StringField", "integer": "IntegerField", "boolean": "BooleanField"}
    for name, widget in widgets.items():
        assert widget.field_class.__name__ == kinds.get(EXTRA_FIELDS[name].kind, "StringField")
        assert widget.args[0] == EXTRA_FIELDS[name].label
        assert widget.kwargs["description"] == EXTRA_FIELDS[name].help_text
    good = _FormData(read_timeout="30", max_retries="0", max_pages="", proxy="", verify="y")
    assert form_class(formdata=good).validate()
    bad = _FormData(read_timeout="0", connect_timeout="nan", max_retries="-1", max_pages="0")
    form = form_class(formdata=bad)
    assert not form.validate()
    assert set(form.errors) == {"read_timeout", "connect_timeout", "max_retries", "max_pages"}
    assert form.errors["read_timeout"] == ["Read timeout (s) must be > 0 and <= 3600, got '0'."]


def test_widgets_under_airflows_wtforms_stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.0-3.1's API server builds the fields with its own stand-ins for wtforms."""
    try:
        from airflow.api_fastapi.core_api.services.ui import connections
    except ImportError:
        import airflow

        pytest.skip(
            f"the API server's wtforms stand-ins (Airflow 3.x) do not exist in Airflow "
            f"{airflow.__version__}: its FAB form uses wtforms itself (tested above)"
        )
    meta = connections.HookMetaService
    fake = types.ModuleType("wtforms")
    fake.__dict__.update(
        StringField=meta.MockStringField,
        IntegerField=meta.MockIntegerField,
        BooleanField=meta.MockBooleanField,
    )
    validators = types.ModuleType("wtforms.validators")
    validators.__dict__.update(Optional=meta.MockOptional, NumberRange=lambda **_: None)
    monkeypatch.setitem(sys.modules, "wtforms", fake)
    monkeypatch.setitem(sys.modules, "wtforms.validators", validators)
    params = {name: widget.param.dump() for name, widget in connection_form_widgets().items()}
    assert params["read_timeout"]["value"] == "60"
    assert params["read_timeout"]["schema"]["title"] == "Read timeout (s)"
    assert params["max_pages"]["schema"]["type"] == ["integer", "null"]
    assert params["verify"]["value"] is True


# -- the docs ------------------------------------------------------------------------------


def test_docs_table_is_generated_not_copied() -> None:
    page = (DOCS / "connection.rst").read_text()
    assert "\n.. conpeek-extras::\n" in page
    assert "   * - ``connect_timeout``" not in page  # no hand-written row
    assert "def setup" in (DOCS / "conf.py").read_text()
    table = "\n".join(extras_table(EXTRA_FIELDS))
    for extra in EXTRA_FIELDS.values():
        assert f"   * - ``{extra.name}``\n     - {extra.label}\n     - {extra.kind}\n" in table
    assert "Must be > 0 and <= 3600." in table
    assert "``http://proxy.internal:3128``" in table
    assert extras_table(EXTRA_FIELDS, ["max_pages"])[-5:] == extras_table(EXTRA_FIELDS)[-25:-20]
    with pytest.raises(ValueError, match="not extras: nope"):
        extras_table(EXTRA_FIELDS, ["nope"])
