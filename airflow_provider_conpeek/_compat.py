"""Airflow names whose import path differs between the supported versions, in one place.

Airflow 3.0's Task SDK did not yet export ``BaseHook``, ``conf`` or the task exceptions;
later versions do (and the old paths may go away). Without Airflow at all, the exceptions
are plain ones, so :mod:`airflow_provider_conpeek.client` works on its own.
"""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )
except ImportError:  # pragma: no cover - Airflow 3.0, or no Airflow
    try:
        from airflow.exceptions import (  # type: ignore[assignment,no-redef,attr-defined]
            AirflowException,
            AirflowFailException,
            AirflowSkipException,
        )
    except ImportError:  # no Airflow: the plain client

        class AirflowException(Exception):  # type: ignore[no-redef]
            """Stands in for Airflow's base exception when Airflow is not installed."""

        class AirflowFailException(AirflowException):  # type: ignore[no-redef]
            """An error no retry can cure."""

        class AirflowSkipException(AirflowException):  # type: ignore[no-redef]
            """A skip."""


try:
    from airflow.sdk import BaseHook, conf
except ImportError:  # pragma: no cover - Airflow 3.0, or no Airflow
    try:
        from airflow.configuration import conf  # type: ignore[assignment,no-redef]
        from airflow.hooks.base import BaseHook  # type: ignore[assignment,no-redef,attr-defined]
    except ImportError:  # no Airflow: only the plain client is usable
        pass

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "BaseHook",
    "conf",
]
