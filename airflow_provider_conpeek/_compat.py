"""Airflow names whose import path differs between the supported versions, in one place.

Airflow 3.x exports the authoring names from ``airflow.sdk``, but 3.0 lacks ``BaseHook``,
``conf`` and the task exceptions there and 3.1 lacks ``conf`` and ``AirflowFailException``;
Airflow 2.11 has no ``airflow.sdk`` at all. Without Airflow at all, the exceptions are plain
ones, so :mod:`airflow_provider_conpeek.client` works on its own.
"""

from __future__ import annotations

import contextlib
from typing import Any

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
except ImportError:  # pragma: no cover - Airflow 2.11-3.1, or no Airflow
    try:
        from airflow.exceptions import (  # type: ignore[assignment,no-redef,attr-defined]
            AirflowException,
            AirflowFailException,
            AirflowSensorTimeout,
            AirflowSkipException,
        )
    except ImportError:  # no Airflow: the plain client

        class AirflowException(Exception):  # type: ignore[no-redef]
            """Stands in for Airflow's base exception when Airflow is not installed."""

        class AirflowFailException(AirflowException):  # type: ignore[no-redef]
            """An error no retry can cure."""

        class AirflowSkipException(AirflowException):  # type: ignore[no-redef]
            """A skip."""

        class AirflowSensorTimeout(AirflowException):  # type: ignore[no-redef]
            """A sensor that waited too long."""


try:
    from airflow.sdk import BaseHook, conf
except ImportError:  # pragma: no cover - Airflow 2.11-3.1, or no Airflow
    try:
        from airflow.configuration import conf  # type: ignore[assignment,no-redef]
        from airflow.hooks.base import BaseHook  # type: ignore[assignment,no-redef,attr-defined]
    except ImportError:  # no Airflow: only the plain client is usable
        pass

try:
    from airflow.sdk import Asset
except ImportError:  # pragma: no cover - Airflow 2.11 (Datasets), or no Airflow
    with contextlib.suppress(ImportError):  # no Airflow: only the plain client is usable
        from airflow.datasets import Dataset as Asset  # type: ignore[assignment,no-redef]

try:
    from airflow.sdk import BaseOperator, BaseSensorOperator
except ImportError:  # pragma: no cover - Airflow 2.11, or no Airflow
    try:
        from airflow.models import BaseOperator  # type: ignore[assignment,no-redef]
        from airflow.sensors.base import BaseSensorOperator  # type: ignore[assignment,no-redef]
    except ImportError:  # no Airflow: only the plain client is usable
        pass


def mask_secret(secret: str) -> None:
    """Register ``secret`` with Airflow's secrets masker, so logs print *** instead."""
    try:
        from airflow.sdk.log import mask_secret as mask
    except ImportError:  # pragma: no cover - Airflow 2.11, or no Airflow
        try:
            from airflow.utils.log.secrets_masker import (  # type: ignore[no-redef]
                mask_secret as mask,
            )
        except ImportError:
            return
    mask(secret)


async def aget_connection(hook: type[Any], conn_id: str) -> Any:
    """Read an Airflow connection from a coroutine, safely in every supported triggerer.

    Airflow 3.3.2+ (``Connection.aextra_dejson`` exists) reads and masks asynchronously:
    ``hook.aget_connection``. Before that, ``aget_connection`` (3.1+) masks the secrets with
    a synchronous call to the supervisor, and before 3.2 the triggerer's channel to its
    supervisor breaks when a plain worker thread (``asyncio.to_thread``) uses it ("Response
    read out of order!", then the triggerer dies). So there the synchronous
    ``get_connection`` runs under asgiref's ``sync_to_async``, whose thread hands each
    supervisor call back to this event loop. Airflow 2.11 reads the database: any thread is
    safe, and ``sync_to_async`` keeps it off the loop.
    """
    if _masks_asynchronously():
        return await hook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(hook.get_connection)(conn_id)


def _masks_asynchronously() -> bool:
    try:
        from airflow.sdk import Connection
    except ImportError:  # pragma: no cover - Airflow 2.11
        return False
    return hasattr(Connection, "aextra_dejson")


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "aget_connection",
    "conf",
    "mask_secret",
]
