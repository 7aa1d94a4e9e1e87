"""Exceptions raised by the Conpeek provider.

Every message names what went wrong and how to fix it, and never contains the API key.

* :class:`ConpeekConfigError` -- bad input (arguments, filters, connection), raised before
  any request is sent.
* :class:`ConpeekAPIError` and its subclasses -- the server answered with an error.
* :class:`ConpeekPagingError` -- the server's pages cannot be trusted (a repeated page, too
  many pages, a malformed body); raised instead of looping forever or writing bad data.

Errors that no retry can cure -- bad input, HTTP 400, a rejected key, a wrong base URL --
are also :class:`~airflow.exceptions.AirflowFailException`, so Airflow fails the task at once
instead of spending its retries; transient and paging errors leave retries to the task.
"""

from __future__ import annotations

from airflow_provider_conpeek._compat import AirflowException, AirflowFailException


class ConpeekError(AirflowException):
    """Base class of every error raised by this provider.

    Example::

        try:
            client.has_at_least(filters, 1)
        except ConpeekAuthError:
            ...  # fix the key
        except ConpeekError as exc:
            log.warning("Conpeek failed: %s", exc)
    """


class ConpeekConfigError(ConpeekError, AirflowFailException, ValueError):
    """Invalid input, detected before any request is sent."""


class ConpeekFilterError(ConpeekConfigError):
    """A filter is invalid: unknown property, wrong value type, bad operator or date."""


class ConpeekAPIError(ConpeekError):
    """The Conpeek API answered with an error status.

    :param message: human-readable explanation (never contains the API key).
    :param status: the HTTP status code, or ``None`` when no response was received.
    :param body: the server's response body text (truncated), if any.
    :param url: the URL tried, without credentials.

    Example::

        except ConpeekAPIError as exc:
            print(exc.status, exc.url, exc.body[:200])
    """

    def __init__(
        self, message: str, *, status: int | None = None, body: str = "", url: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.url = url


class ConpeekBadRequestError(ConpeekAPIError, AirflowFailException):
    """HTTP 400: the server rejected the request's parameters or filter."""


class ConpeekAuthError(ConpeekAPIError, AirflowFailException):
    """HTTP 401/403: the API key was rejected."""


class ConpeekNotFoundError(ConpeekAPIError, AirflowFailException):
    """HTTP 404: the endpoint does not exist at this base URL."""


class ConpeekTransientError(ConpeekAPIError):
    """A retryable failure (429, 5xx, connection error, timeout) outlasted every retry."""


class ConpeekPagingError(ConpeekError):
    """The server's pages are inconsistent or malformed; stopping instead of guessing."""


def is_fatal(exc: BaseException) -> bool:
    """Whether no retry can cure ``exc``: bad input, HTTP 400, a rejected key, a wrong URL.

    Exactly the errors that are :class:`AirflowFailException`; transient errors, malformed
    responses and other statuses are not (a later try may succeed).
    """
    return isinstance(exc, AirflowFailException)
