"""Authentication and the session every request of a client is sent on."""

from __future__ import annotations

import requests

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.client.settings import ConpeekSettings

USER_AGENT = f"airflow-provider-conpeek/{__version__} python-requests/{requests.__version__}"


class ConpeekKeyAuth(requests.auth.AuthBase):
    """Sends the raw API key as the ``Authorization`` header (no ``Bearer`` prefix).

    Example::

        requests.get(url, auth=ConpeekKeyAuth("my-key"), timeout=(10, 60))
    """

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._api_key
        return request

    def __repr__(self) -> str:
        return "ConpeekKeyAuth(api_key='***')"


def new_session(settings: ConpeekSettings) -> requests.Session:
    """An authenticated session with the provider's headers, TLS and proxy settings.

    The environment (proxies, CA bundle) is read once here, not by requests on every
    request (``trust_env=False``): that lookup was ~30% of the client's CPU.
    """
    session = requests.Session()
    session.auth = ConpeekKeyAuth(settings.api_key)
    session.headers.update(
        {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            # Every vendor example sends it, even on a GET with no body.
            "Content-Type": "application/json",
        }
    )
    session.trust_env = False
    session.verify = settings.session_verify()
    session.proxies = settings.session_proxies()
    return session
