"""What a :class:`~airflow_provider_conpeek.client.ConpeekClient` needs: plain, validated values.

Built from an Airflow connection by :func:`airflow_provider_conpeek.settings.read_settings`,
or directly, without Airflow::

    settings = ConpeekSettings(
        conn_id="local", base_url="http://127.0.0.1:8080/api/v1_3", api_key="my-key"
    )
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from airflow_provider_conpeek.client.retry import RetryPolicy

ENDPOINT = "voice_campaign_request_summary"

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the TCP/TLS connection."""
DEFAULT_READ_TIMEOUT = 60.0
"""Seconds to wait for the server between bytes of a response."""
DEFAULT_MAX_RETRIES = 5
"""Retries after the first try for 429, 5xx, connection errors and read timeouts."""
DEFAULT_MAX_RETRY_WAIT = 60.0
"""Cap, in seconds, on any single wait between tries (``Retry-After`` included)."""
DEFAULT_MAX_PAGES = 100_000
"""Ceiling on pages fetched by one extract; exceeding it raises instead of looping."""
DEFAULT_MAX_CONCURRENCY = 16
"""Ceiling on requests one extract keeps in flight (the adaptive limit stays at or below
it). Measured in ``make bench``: at 25 ms per request, 16 in flight are mostly bound by the
client's own CPU, and 32 gain about 10% for twice the load on the server."""


@dataclass(frozen=True)
class ConpeekSettings:
    """Everything a request needs; the API key is left out of the repr.

    :param conn_id: a name for the source of these settings, used in error messages.
    :param base_url: the API's base URL, path prefix included, without a trailing slash.
    :param api_key: the raw key, sent as the ``Authorization`` header.
    :param connect_timeout: seconds to wait for a connection.
    :param read_timeout: seconds to wait between bytes of a response.
    :param max_pages: ceiling on non-empty pages per extract.
    :param max_concurrency: ceiling on requests in flight per extract.
    :param retry: how often and how long to retry.
    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path.
    :param proxy: a proxy URL for http and https, or ``None`` for the environment's.

    Example::

        ConpeekSettings("local", "http://127.0.0.1:8080/api/v1_3", "key").endpoint_url
        # 'http://127.0.0.1:8080/api/v1_3/voice_campaign_request_summary'
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_pages: int = DEFAULT_MAX_PAGES
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool | str = True
    proxy: str | None = None

    @property
    def endpoint_url(self) -> str:
        """The endpoint's URL: the base URL (with any path prefix) joined with the path."""
        return f"{self.base_url}/{ENDPOINT}"

    def session_proxies(self) -> dict[str, str]:
        """Proxies for a session: the ``proxy`` setting, else the environment's
        (``HTTPS_PROXY``, ``NO_PROXY``...), read once instead of on every request."""
        if self.proxy:
            return {"http": self.proxy, "https": self.proxy}
        from requests.utils import get_environ_proxies  # only when a session is made

        return dict(get_environ_proxies(self.base_url))

    def session_verify(self) -> bool | str:
        """TLS verification: ``verify``, else the environment's ``REQUESTS_CA_BUNDLE`` or
        ``CURL_CA_BUNDLE``, as requests itself would pick."""
        if self.verify is True:
            return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        return self.verify
