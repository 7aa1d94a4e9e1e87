"""Provider metadata against Airflow's own schemas, entry point and ProvidersManager."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import warnings
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.connection import EXTRA_FIELDS
from airflow_provider_conpeek.hooks.conpeek import ConpeekHook
from airflow_provider_conpeek.provider_info import get_provider_info

AIRFLOW_DIR = Path(os.path.dirname(airflow.__file__))
HOOK_CLASS = "airflow_provider_conpeek.hooks.conpeek.ConpeekHook"


def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((AIRFLOW_DIR / name).read_text())
    return schema


def conpeek_connection_type() -> dict[str, Any]:
    (entry,) = get_provider_info()["connection-types"]
    assert isinstance(entry, dict)
    return entry


def test_provider_info_matches_airflows_schema() -> None:
    schema = load_schema("provider_info.schema.json")
    validator = jsonschema.Draft7Validator(schema)
    info = get_provider_info()
    assert list(validator.iter_errors(info)) == []
    assert info["package-name"] == "airflow-provider-conpeek"
    assert info["versions"] == [__version__]
    # The validator catches a broken entry (the test can fail).
    broken = {**info, "connection-types": [{"hook-name": "Conpeek"}]}
    assert list(validator.iter_errors(broken))


def test_connection_form_matches_provider_yaml_schema() -> None:
    schema = load_schema("provider.yaml.schema.json")
    item_schema = schema["properties"]["connection-types"]["items"]
    validator = jsonschema.Draft7Validator(item_schema)
    entry = conpeek_connection_type()
    checked = entry
    if "conn-fields" not in item_schema["properties"]:
        # Airflow before 3.2 reads neither key (its form comes from the hook's methods, see
        # test_extras.py) and its schema lists neither; the 3.2+ legs validate them.
        checked = {k: v for k, v in entry.items() if k not in ("conn-fields", "ui-field-behaviour")}
    assert list(validator.iter_errors(checked)) == []
    assert entry["connection-type"] == "conpeek"
    assert entry["hook-name"] == "Conpeek"
    assert entry["hook-class-name"] == HOOK_CLASS
    assert set(entry["conn-fields"]) == set(EXTRA_FIELDS)
    for spec in entry["conn-fields"].values():  # every default satisfies its own schema
        if "default" in spec["schema"]:
            jsonschema.validate(spec["schema"]["default"], spec["schema"])
        assert spec["schema"]["type"][-1] == "null"  # an empty form field means the default
    # The validator catches a broken entry (the test can fail).
    assert list(validator.iter_errors({**checked, "hook-class-name": None}))
    if checked is entry:
        bad = {**entry, "ui-field-behaviour": {"hidden-fields": ["nonsense"]}}
        assert list(validator.iter_errors(bad))


def test_listed_modules_import() -> None:
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for group in info[kind]:
            assert group["integration-name"] in {
                i["integration-name"] for i in info["integrations"]
            }
            for module in group["python-modules"]:
                importlib.import_module(module)


def test_entry_point_resolves_to_get_provider_info() -> None:
    points = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_conpeek")
    ]
    assert len(points) == 1
    assert points[0].load() is get_provider_info
    assert importlib.metadata.version("airflow-provider-conpeek") == __version__


def test_providers_manager_lists_package_and_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-conpeek" in manager.providers
    assert manager.providers["airflow-provider-conpeek"].version == __version__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ProvidersManager.hooks is deprecated in 3.2+
        hook_info = manager.hooks["conpeek"]
    assert hook_info is not None
    assert hook_info.hook_name == "Conpeek"
    assert hook_info.connection_type == "conpeek"
    assert hook_info.hook_class_name == HOOK_CLASS
    assert hook_info.connection_id_attribute_name == "conpeek_conn_id"
    module, _, name = hook_info.hook_class_name.rpartition(".")
    assert getattr(importlib.import_module(module), name) is ConpeekHook
    # The connection form Airflow builds from the metadata.
    assert manager.field_behaviours["conpeek"] == ConpeekHook.get_ui_field_behaviour()
    widgets = {k for k in manager.connection_form_widgets if k.startswith("extra__conpeek__")}
    assert widgets == {f"extra__conpeek__{name}" for name in EXTRA_FIELDS}
    # What the UI's form gets for one extra: its label, default, help and limits.
    field = manager.connection_form_widgets["extra__conpeek__read_timeout"].field
    help_text = EXTRA_FIELDS["read_timeout"].help_text
    if isinstance(field, dict):  # Airflow 3.2+: built from the conn-fields metadata
        assert field["value"] == 60.0
        assert field["schema"]["title"] == "Read timeout (s)"
        assert (field["schema"]["minimum"], field["schema"]["maximum"]) == (0, 3600)
        assert field["description"] == help_text
    else:  # Airflow 2.11-3.1: the wtforms field from get_connection_form_widgets()
        assert field.args == ("Read timeout (s)",)
        assert field.kwargs["default"] == "60"
        assert field.kwargs["description"] == help_text
        assert [type(v).__name__ for v in field.kwargs["validators"]] == [
            "Optional",
            "ExtraValidator",
        ]


def test_task_sdk_providers_manager_finds_the_hook() -> None:
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:
        pytest.skip(
            f"the Task SDK's own ProvidersManagerTaskRuntime does not exist in Airflow "
            f"{airflow.__version__} (3.2+); tasks use ProvidersManager, tested above"
        )

    hook_info = ProvidersManagerTaskRuntime().hooks["conpeek"]
    assert hook_info is not None
    assert hook_info.hook_name == "Conpeek"
    assert hook_info.hook_class_name == HOOK_CLASS


def test_ui_field_behaviour_matches_metadata() -> None:
    behaviour = conpeek_connection_type()["ui-field-behaviour"]
    assert ConpeekHook.get_ui_field_behaviour() == {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
    schema = load_schema("customized_form_field_behaviours.schema.json")
    jsonschema.validate(ConpeekHook.get_ui_field_behaviour(), schema)
    # Fields the hook reads are not hidden; fields it ignores are.
    assert {"host", "password", "extra"}.isdisjoint(behaviour["hidden-fields"])
    assert {"login", "port", "schema"} <= set(behaviour["hidden-fields"])


def test_hook_class_attributes() -> None:
    entry = conpeek_connection_type()
    assert ConpeekHook.conn_type == entry["connection-type"]
    assert ConpeekHook.hook_name == entry["hook-name"]
    assert ConpeekHook.default_conn_name == "conpeek_default"
    assert ConpeekHook.conn_name_attr == "conpeek_conn_id"


@pytest.mark.parametrize("name", sorted(EXTRA_FIELDS))
def test_every_conn_field_is_read_by_the_hook(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A field in the form that the hook rejected as unknown would break every connection."""
    value = {"boolean": True, "integer": 3, "number": 2.5, "string": "/tmp/x"}[
        EXTRA_FIELDS[name].kind
    ]
    if name == "proxy":
        value = "http://proxy.internal:3128"
    conn = {"conn_type": "conpeek", "host": "https://t.example.com", "password": "k" * 8}
    conn["extra"] = {f"extra__conpeek__{name}": value}  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(conn))
    assert ConpeekHook().settings is not None
