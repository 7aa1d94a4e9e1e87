"""Reading the Airflow connection: base URL forms, extras, timeouts and their errors.

Connections come from ``AIRFLOW_CONN_*`` env vars, read by Airflow's own BaseHook.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Callable
from typing import Any

import pytest
import requests
from airflow_compat import AirflowNotFoundException

from airflow_provider_conpeek.client.auth import new_session
from airflow_provider_conpeek.client.settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_READ_TIMEOUT,
)
from airflow_provider_conpeek.connection import EXTRA_FIELDS
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.hooks.conpeek import ConpeekHook
from airflow_provider_conpeek.settings import read_settings
from airflow_provider_conpeek.testing.sandbox import SandboxServer

KEY = "sk-LEAK-5e8d1c0b9a7f"


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: dict[str, Any] | str) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", text)


def conn(host: str | None = "https://tenant.example.com/api/v1_3", **fields: Any) -> dict[str, Any]:
    return {"conn_type": "conpeek", "host": host, "password": KEY, **fields}


def settings_error(monkeypatch: pytest.MonkeyPatch, value: dict[str, Any] | str, **kw: Any) -> str:
    set_conn(monkeypatch, "conpeek_cfg", value)
    with pytest.raises(ConpeekConfigError) as info:
        _ = ConpeekHook("conpeek_cfg", **kw).settings
    message = str(info.value)
    assert "conpeek_cfg" in message
    assert KEY not in message
    return message


@pytest.fixture
def timeouts_sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``timeout`` of every request that reaches the transport (requests are real)."""
    seen: list[Any] = []
    original = requests.adapters.HTTPAdapter.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return seen


# -- defaults and timeouts ----------------------------------------------------------------


def test_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "conpeek_default", conn())
    s = ConpeekHook().settings
    assert (s.connect_timeout, s.read_timeout) == (10.0, 60.0)
    assert (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT) == (10.0, 60.0)
    assert s.retry.max_retries == DEFAULT_MAX_RETRIES == 5
    assert s.retry.max_wait == DEFAULT_MAX_RETRY_WAIT == 60.0
    assert s.max_pages == DEFAULT_MAX_PAGES
    assert s.max_concurrency == DEFAULT_MAX_CONCURRENCY == 16
    assert s.verify is True
    assert s.proxy is None
    defaults = {name: extra.default for name, extra in EXTRA_FIELDS.items()}
    assert defaults == {
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "read_timeout": DEFAULT_READ_TIMEOUT,
        "max_retries": DEFAULT_MAX_RETRIES,
        "max_retry_wait": DEFAULT_MAX_RETRY_WAIT,
        "max_pages": DEFAULT_MAX_PAGES,
        "max_concurrency": DEFAULT_MAX_CONCURRENCY,
        "verify": True,
        "ca_bundle": None,
        "proxy": None,
    }


@pytest.mark.parametrize(
    ("extra", "hook_kwargs", "expected"),
    [
        ({}, {}, (10.0, 60.0)),
        ({"connect_timeout": 3, "read_timeout": 7.5}, {}, (3.0, 7.5)),
        ({"extra__conpeek__connect_timeout": "4", "extra__conpeek__read_timeout": "8"}, {}, (4, 8)),
        ({"connect_timeout": 3, "read_timeout": 7}, {"read_timeout": 2.5}, (3.0, 2.5)),
        ({}, {"connect_timeout": 1.5, "read_timeout": 2.5}, (1.5, 2.5)),
        ({"connect_timeout": "", "read_timeout": None}, {}, (10.0, 60.0)),
    ],
)
def test_timeouts_always_sent(
    conpeek_sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    timeouts_sent: list[Any],
    extra: dict[str, Any],
    hook_kwargs: dict[str, Any],
    expected: tuple[float, float],
) -> None:
    set_conn(monkeypatch, "conpeek_default", conpeek_sandbox.airflow_connection_dict(**extra))
    hook = ConpeekHook(**hook_kwargs)
    with hook.get_conn() as client:
        assert client.has_at_least(None, 1) is True
        assert sum(map(len, client.iter_pages(page_size=500))) == 1000
    assert hook.test_connection()[0] is True
    assert len(timeouts_sent) >= 5
    assert set(timeouts_sent) == {expected}


def test_read_timeout_from_extra_is_used(
    conpeek_sandbox_factory: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule

    server = conpeek_sandbox_factory(
        records=3, faults=FaultConfig(rules=[FaultRule("stall", stall_seconds=2)])
    )
    extra = {"read_timeout": 0.2, "max_retries": 1, "max_retry_wait": 0.01}
    set_conn(monkeypatch, "conpeek_default", server.airflow_connection_dict(**extra))
    from airflow_provider_conpeek.exceptions import ConpeekTransientError

    with pytest.raises(ConpeekTransientError, match=r"timed out after 0\.2 s"):
        ConpeekHook().get_conn().fetch_page(offset=0, limit=1)


# -- extras -------------------------------------------------------------------------------


def test_all_extras_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {
        "connect_timeout": 2,
        "read_timeout": "30",
        "extra__conpeek__max_retries": "0",
        "max_retry_wait": 1.5,
        "max_pages": 7,
        "verify": "false",
        "proxy": "http://user:pr0xy-pass@proxy.internal:3128",
    }
    set_conn(monkeypatch, "conpeek_default", conn(extra=extra))
    hook = ConpeekHook()
    s = hook.settings
    assert (s.connect_timeout, s.read_timeout, s.max_pages) == (2.0, 30.0, 7)
    assert (s.retry.max_retries, s.retry.max_wait) == (0, 1.5)
    assert s.verify is False
    session = new_session(hook.get_conn().settings)
    assert session.verify is False
    assert session.proxies == {"http": extra["proxy"], "https": extra["proxy"]}
    assert session.trust_env is False


def test_ca_bundle_is_used_for_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "conpeek_default", conn(extra={"ca_bundle": "/etc/ssl/corp.pem"}))
    hook = ConpeekHook()
    assert new_session(hook.get_conn().settings).verify == "/etc/ssl/corp.pem"


def test_unknown_extra_named(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, conn(extra={"read_timout": 5}))
    assert "'read_timout'" in message
    assert "read_timeout" in message  # the known extras are listed
    message = settings_error(monkeypatch, conn(extra={"extra__conpeek__bogus": ""}))
    assert "extra__conpeek__bogus" in message
    message = settings_error(monkeypatch, conn(extra={"extra__http__read_timeout": 1}))
    assert "extra__http__read_timeout" in message


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"read_timeout": "abc"}, "read_timeout"),
        ({"read_timeout": True}, "read_timeout"),
        ({"read_timeout": "nan"}, "read_timeout"),
        ({"connect_timeout": "inf"}, "connect_timeout"),
        ({"connect_timeout": [5]}, "connect_timeout"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": "three"}, "max_retries"),
        ({"max_pages": {"n": 1}}, "max_pages"),
        ({"verify": "maybe"}, "verify"),
        ({"verify": 2}, "verify"),
        ({"proxy": 3128}, "proxy"),
        ({"extra__conpeek__max_retry_wait": "soon"}, "extra__conpeek__max_retry_wait"),
    ],
)
def test_bad_extra_types_named(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], named: str
) -> None:
    message = settings_error(monkeypatch, conn(extra=extra))
    assert repr(named) in message
    assert "must be" in message


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"read_timeout": 0}, "read_timeout"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"max_retry_wait": 0}, "max_retry_wait"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_pages": 0}, "max_pages"),
        ({"extra__conpeek__read_timeout": "3600.5"}, "extra__conpeek__read_timeout"),
        ({"max_retry_wait": 1e10}, "max_retry_wait"),
    ],
)
def test_out_of_range_extras_named(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], named: str
) -> None:
    message = settings_error(monkeypatch, conn(extra=extra))
    assert f"extra {named!r} must be {EXTRA_FIELDS[named.split('__')[-1]].rule}, got" in message
    assert "Correct it in the connection's extra, or remove it to use the default" in message


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"read_timeout": 0}, "read_timeout"),
        ({"connect_timeout": math.nan}, "connect_timeout"),
        ({"max_retries": -2}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retry_wait": "x"}, "max_retry_wait"),
        ({"max_pages": True}, "max_pages"),
        ({"connect_timeout": 7200}, "connect_timeout"),
    ],
)
def test_bad_hook_arguments_named(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], named: str
) -> None:
    message = settings_error(monkeypatch, conn(), **kwargs)
    assert f"Argument {named!r} (connection 'conpeek_cfg') must be" in message
    assert "pass None" in message


def test_empty_ui_values_mean_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {f"extra__conpeek__{name}": "" for name in EXTRA_FIELDS} | {"verify": None}
    set_conn(monkeypatch, "conpeek_default", conn(extra=extra))
    s = ConpeekHook().settings
    assert (s.connect_timeout, s.read_timeout, s.max_pages) == (10.0, 60.0, DEFAULT_MAX_PAGES)
    assert (s.verify, s.proxy) == (True, None)


def test_prefixed_and_plain_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    same = {"read_timeout": 5, "extra__conpeek__read_timeout": "5"}
    set_conn(monkeypatch, "conpeek_default", conn(extra=same))
    assert ConpeekHook().settings.read_timeout == 5.0
    message = settings_error(
        monkeypatch, conn(extra={"read_timeout": 5, "extra__conpeek__read_timeout": "6"})
    )
    assert "disagree" in message


@pytest.mark.parametrize("extra", ["[1, 2]", '"text"', "{not json", "42"])
def test_extra_must_be_a_json_object(extra: str) -> None:
    # Straight to read_settings: Airflow 3.0-3.1's env-var backend drops such a connection
    # itself ("isn't defined"), so through the hook only other versions would reach ours.
    fields = {**conn(extra=extra), "schema": None, "port": None}
    with pytest.raises(ConpeekConfigError) as info:
        read_settings("conpeek_cfg", types.SimpleNamespace(**fields), {})
    message = str(info.value)
    assert "conpeek_cfg" in message
    assert KEY not in message
    assert "extra" in message
    assert "JSON" in message


# -- host, key and base URL ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "base_url"),
    [
        ({"host": "https://tenant.example.com/api/v1_3"}, "https://tenant.example.com/api/v1_3"),
        ({"host": "https://tenant.example.com/api/v1_3/"}, "https://tenant.example.com/api/v1_3"),
        ({"host": "  https://tenant.example.com/  "}, "https://tenant.example.com"),
        ({"host": "tenant.example.com/api/v1_3"}, "https://tenant.example.com/api/v1_3"),
        (
            {"host": "tenant.example.com", "schema": "api/v1_3"},
            "https://tenant.example.com/api/v1_3",
        ),
        ({"host": "tenant.example.com", "port": 8443}, "https://tenant.example.com:8443"),
        ({"host": "http://10.0.0.1", "port": 8080, "schema": "api"}, "http://10.0.0.1:8080/api"),
        ({"host": "http://10.0.0.1:8080/api", "port": 8080}, "http://10.0.0.1:8080/api"),
        ({"host": "http://[::1]:9000/api/v1_3"}, "http://[::1]:9000/api/v1_3"),
    ],
)
def test_base_url_forms(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], base_url: str
) -> None:
    set_conn(monkeypatch, "conpeek_default", conn(**fields))
    settings = ConpeekHook().settings
    assert settings.base_url == base_url
    assert settings.endpoint_url == f"{base_url}/voice_campaign_request_summary"


def test_uri_form_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch, "conpeek_uri", "conpeek://:s3cr%2Fet-key@tenant.example.com:8443/api%2Fv1_3"
    )
    settings = ConpeekHook("conpeek_uri").settings
    assert settings.base_url == "https://tenant.example.com:8443/api/v1_3"
    assert settings.api_key == "s3cr/et-key"


def test_uri_form_with_protocol_over_http(
    conpeek_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Airflow splits this into host "http://127.0.0.1", port and schema "api/v1_3".
    uri = f"conpeek://http://:{conpeek_sandbox.api_key}@127.0.0.1:{conpeek_sandbox.port}/api/v1_3"
    set_conn(monkeypatch, "conpeek_uri", uri)
    hook = ConpeekHook("conpeek_uri")
    assert hook.settings.base_url == conpeek_sandbox.url
    ok, message = hook.test_connection()
    assert ok, message


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"host": None}, "has no host"),
        ({"host": "   "}, "has no host"),
        ({"password": None}, "has no API key"),
        ({"password": "  "}, "has no API key"),
        ({"host": f"https://user:{KEY}@tenant.example.com/api"}, "must not contain credentials"),
        ({"host": f"https://:{KEY}@tenant.example.com/api"}, "must not contain credentials"),
        ({"host": "ftp://tenant.example.com/api"}, "not an http(s) URL"),
        ({"host": "https://"}, "not an http(s) URL"),
        ({"host": "https://tenant.example.com:99999/api"}, "not an http(s) URL"),
        ({"host": "https://tenant.example.com/api?x=1"}, "query or a fragment"),
        ({"host": "https://tenant.example.com:8443", "port": 9443}, "port"),
        ({"host": "https://tenant.example.com/api/v1_3", "schema": "v2"}, "schema"),
    ],
)
def test_bad_connection_named(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], says: str
) -> None:
    assert says in settings_error(monkeypatch, conn(**fields))


def test_missing_connection_names_the_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_CONPEEK_NOWHERE", raising=False)
    with pytest.raises(AirflowNotFoundException, match="conpeek_nowhere"):
        _ = ConpeekHook("conpeek_nowhere").settings
    ok, message = ConpeekHook("conpeek_nowhere").test_connection()
    assert not ok
    assert "conpeek_nowhere" in message


def test_settings_hide_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "conpeek_default", conn())
    hook = ConpeekHook()
    assert hook.settings.api_key == KEY
    for text in (repr(hook), repr(hook.settings), str(hook.settings), repr(hook.settings.retry)):
        assert KEY not in text
    assert KEY not in repr(new_session(hook.settings).auth)
    assert KEY not in repr(hook.get_conn())


def test_key_with_surrounding_whitespace_is_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key pasted or read from a file with a trailing newline works, and never leaks."""
    set_conn(monkeypatch, "conpeek_default", {**conn(), "password": f"  {KEY}\n"})
    assert ConpeekHook().settings.api_key == KEY


@pytest.mark.parametrize("bad", [f"{KEY[:6]}\n{KEY[6:]}", f"{KEY}\x00x", f"{KEY}ł"])
def test_key_that_cannot_be_a_header_is_refused_without_echo(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    set_conn(monkeypatch, "conpeek_cfg", {**conn(), "password": bad})
    hook = ConpeekHook("conpeek_cfg")
    with pytest.raises(ConpeekConfigError, match="control or non-ASCII") as info:
        _ = hook.settings
    message = str(info.value)
    assert KEY[:6] not in message
    assert KEY[6:] not in message
    ok, text = hook.test_connection()
    assert ok is False
    assert KEY[:6] not in text
    assert KEY[6:] not in text
