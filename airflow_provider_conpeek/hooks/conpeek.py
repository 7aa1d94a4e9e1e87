"""ConpeekHook: an Airflow connection -> validated settings -> a :class:`ConpeekClient`.

Everything between settings and records (sessions, retries, paging) is the client's
(:mod:`airflow_provider_conpeek.client`); the hook adds what is Airflow's: the connection,
its form in the UI and the Test button.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow_provider_conpeek._compat import BaseHook, aget_connection
from airflow_provider_conpeek.client import ConpeekClient, ConpeekSettings
from airflow_provider_conpeek.client.responses import redact
from airflow_provider_conpeek.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    HOOK_NAME,
    connection_form_widgets,
    ui_field_behaviour,
)
from airflow_provider_conpeek.settings import read_settings


class ConpeekHook(BaseHook):
    """Talks to the Conpeek API through an Airflow connection of type ``conpeek``.

    The connection's host is the base URL (a path prefix such as ``/api/v1_3`` is normal)
    and its password the API key. Timeouts, retries, TLS and proxy settings live in the
    connection extra; the arguments below override them.

    :param conpeek_conn_id: the Airflow connection to use.
    :param connect_timeout: seconds to wait for a connection.
    :param read_timeout: seconds to wait between bytes of a response.
    :param max_retries: retries after the first try on 429/5xx/network errors.
    :param max_retry_wait: cap on any single wait between tries, seconds.
    :param max_pages: ceiling on pages per extract.
    :param max_concurrency: ceiling on requests in flight per extract.

    .. seealso:: :doc:`/connection` for every extra and its default.

    Example::

        from airflow_provider_conpeek.filters import date_window

        hook = ConpeekHook(conpeek_conn_id="conpeek_default")
        window = date_window("2026-01-01 00:00:00", "2026-01-02 00:00:00")
        with hook.get_conn() as client:  # one client per extract, closed at the end
            for page in client.iter_pages(window, page_size=500):
                print(len(page))
    """

    conn_name_attr = "conpeek_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        conpeek_conn_id: str = DEFAULT_CONN_ID,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_wait: float | None = None,
        max_pages: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        super().__init__()
        self.conpeek_conn_id = conpeek_conn_id
        self._overrides: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_retries": max_retries,
            "max_retry_wait": max_retry_wait,
            "max_pages": max_pages,
            "max_concurrency": max_concurrency,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conpeek_conn_id={self.conpeek_conn_id!r})"

    @cached_property
    def settings(self) -> ConpeekSettings:
        """The validated connection settings (read once, on first use)."""
        return read_settings(
            self.conpeek_conn_id, self.get_connection(self.conpeek_conn_id), self._overrides
        )

    def get_conn(self) -> ConpeekClient:
        """A new client on this connection's settings; close it when done (``with``)."""
        return ConpeekClient(self.settings)

    async def aget_conn(self) -> ConpeekClient:
        """:meth:`get_conn` for a coroutine (the trigger), safe in every Airflow's triggerer.

        The connection is read with Airflow's async access where it is safe
        (:func:`~airflow_provider_conpeek._compat.aget_connection`), and validated (the key
        registered with the secrets masker, a synchronous Airflow call) under asgiref's
        ``sync_to_async``, never from a plain worker thread. The client itself is plain.
        """
        if "settings" not in self.__dict__:
            from asgiref.sync import sync_to_async

            conn = await aget_connection(type(self), self.conpeek_conn_id)
            settings = await sync_to_async(read_settings)(
                self.conpeek_conn_id, conn, self._overrides
            )
            self.__dict__["settings"] = settings
        return ConpeekClient(self.settings)

    def test_connection(self) -> tuple[bool, str]:
        """One ``limit=1`` request without retries, for the UI's Test button."""
        try:
            settings = self.settings
            with self.get_conn() as client:
                elapsed = client.check()
        except Exception as exc:  # the UI shows the message; never the key
            settings_read = self.__dict__.get("settings")
            key = settings_read.api_key if isinstance(settings_read, ConpeekSettings) else ""
            return False, redact(str(exc), key)
        return True, f"Connected to {settings.base_url}; API key accepted ({elapsed:.2f} s)."

    # -- connection form (Airflow 2.11-3.1; 3.2+ reads the provider metadata) ---------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel host and password, hide unused fields, show placeholders."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection extras as form fields."""
        return connection_form_widgets()
