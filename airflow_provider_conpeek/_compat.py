"""Airflow names whose import path moved between 3.0 and 3.3, imported from one place.

Airflow 3.0's Task SDK did not yet export ``BaseHook``, ``conf`` or the task exceptions;
later versions do (and the old paths may go away).
"""

from __future__ import annotations

try:
    from airflow.sdk import BaseHook, conf
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.configuration import conf  # type: ignore[assignment,no-redef]
    from airflow.hooks.base import BaseHook  # type: ignore[assignment,no-redef,attr-defined]

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.exceptions import (  # type: ignore[assignment,no-redef,attr-defined]
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "BaseHook",
    "conf",
]
