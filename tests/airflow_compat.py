"""The tests' view of Airflow names that moved between the supported versions (2.11-3.3).

The package's own differences live in ``airflow_provider_conpeek._compat``; this module holds
only what the tests need besides: where ``DagBag``, DAG serialization, the sensor exceptions,
``import_string`` and serde live, how ``dag.test()`` names the run's date, and how a test
writes a DAG file into a fresh DAGs folder to import and run it.

Example::

    from airflow_compat import AIRFLOW_VERSION, load_dag, run_dag_file, run_dag_test

    run = run_dag_test(load_dag(EXAMPLE_DAGS, DAG_ID), logical_date)
    run = run_dag_file(tmp_path, monkeypatch, "my_dag", DAG_BODY, logical_date)
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import airflow
import pytest
from packaging.version import Version

from airflow_provider_conpeek._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

AIRFLOW_VERSION = Version(Version(airflow.__version__).base_version)
AIRFLOW_3 = Version("3.0") <= AIRFLOW_VERSION
"""Airflow 3: the Task SDK, ``logical_date``, the React UI and the REST API v2."""

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import (
        AirflowNotFoundException,
        AirflowRescheduleException,
        TaskDeferred,
    )
except ImportError:  # Airflow 2.11-3.1
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowNotFoundException,
        AirflowRescheduleException,
        TaskDeferred,
    )

try:  # Airflow 3.2+
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize
except ImportError:  # Airflow 2.11-3.1
    from airflow.serialization.serde import (  # type: ignore[no-redef,attr-defined]
        deserialize,
        serialize,
    )
    from airflow.utils.module_loading import (  # type: ignore[no-redef,attr-defined]
        import_string,
    )

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG  # type: ignore[attr-defined,no-redef]

DAG_IMPORT = (
    "try:\n"
    "    from airflow.sdk import DAG\n"
    "except ImportError:  # Airflow 2.11\n"
    "    from airflow import DAG\n"
)
"""The lines a generated DAG file imports ``DAG`` with, as the example DAG does."""


def load_dag(folder: Path, dag_id: str) -> Any:
    """Parse ``folder`` with a ``DagBag`` (no import errors allowed) and return ``dag_id``."""
    dagbag = dag_bag(folder)
    assert dagbag.import_errors == {}, dagbag.import_errors
    return dagbag.get_dag(dag_id)


def dag_bag(folder: Path) -> Any:
    """A ``DagBag`` of ``folder`` (``airflow.dag_processing.dagbag`` on 3.2+)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.11-3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=str(folder))


def register_assets(dag: Any) -> None:
    """Write ``dag`` (and so its outlet assets) to the metadata DB, as the DAG processor would.

    ``dag.test()`` does it on Airflow 3.3 only. 3.1's and 3.2's write a DAG only when the
    database has no version of it yet: an outlet that changed since (the example's bucket
    comes from the environment, which differs per test) stays unregistered, and its events
    are silently dropped. 3.0's never write it (a task whose outlet is not registered fails:
    AirflowInactiveAssetInInletOrOutletException), nor do 2.11's (no dataset event).
    """
    if Version("3.3") <= AIRFLOW_VERSION or not any(task.outlets for task in dag.tasks):
        return
    bag = dag_bag(Path(dag.fileloc))
    if not AIRFLOW_3:
        bag.sync_to_db()
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    try:  # Airflow 3.2
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:
        try:  # Airflow 3.1
            from airflow.models.dagbag import sync_bag_to_db  # type: ignore[no-redef]
        except ImportError:  # Airflow 3.0
            bag.sync_to_db("dags-folder", None)
            return
    sync_bag_to_db(bag, "dags-folder", None)


def asset_event_extras(uri: str) -> list[dict[str, Any]]:
    """The extras of every asset (Airflow 2.11: dataset) event of ``uri``, oldest first."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if AIRFLOW_3:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        link = Event.asset_id == Model.id
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        link = Event.dataset_id == Model.id
    with create_session() as session:
        query = select(Event).join(Model, link).where(Model.uri == uri).order_by(Event.timestamp)
        return [dict(event.extra or {}) for event in session.scalars(query)]


def run_dag_test(dag: Any, logical_date: datetime) -> Any:
    """``dag.test()`` for the run at ``logical_date`` (``execution_date`` on Airflow 2), its
    assets registered first where ``dag.test()`` does not (:func:`register_assets`)."""
    register_assets(dag)
    if AIRFLOW_3:
        return dag.test(logical_date=logical_date)
    # Airflow 2.11 deletes an earlier run of the same date through the ORM, and dag_run_note
    # has a foreign key to FAB's ab_user: the FAB models must be known (the CLI loads them).
    import airflow.providers.fab.auth_manager.models  # noqa: F401

    return dag.test(execution_date=logical_date)


def write_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dag_id: str, source: str) -> DAG:
    """Write ``source`` as ``<tmp_path>/dags/<dag_id>.py`` and import it: its ``dag``.

    ``dag.test()`` syncs the DAG from the configured DAGs folder into the metadata DB, so the
    folder must hold the file. Airflow read ``DAGS_FOLDER`` at import; both are patched.
    """
    from airflow import settings

    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    path = dags / f"{dag_id}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(dag_id, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag  # type: ignore[no-any-return]


def run_dag_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dag_id: str,
    body: str,
    logical_date: datetime,
) -> Any:
    """Run ``DAG_IMPORT`` + ``body`` (dedented) as a DAG file with ``dag.test()``: the run
    (see ``write_dag`` and ``run_dag_test``)."""
    source = DAG_IMPORT + textwrap.dedent(body)
    return run_dag_test(write_dag(tmp_path, monkeypatch, dag_id, source), logical_date)


def serialization_round_trip(dag: Any) -> Any:
    """The DAG as the scheduler sees it: serialized to a dict and back."""
    try:
        from airflow.serialization.serialized_objects import DagSerialization
    except ImportError:  # Airflow 2.11-3.1
        from airflow.serialization.serialized_objects import (  # type: ignore[attr-defined]
            SerializedDAG as DagSerialization,
        )
    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def without_airflow_30_mask_secret_lines(text: str, key: str) -> str:
    """``text`` without Airflow 3.0's known debug line that prints the key
    (``Sending request msg=MaskSecret(value='<key>'``, docs/compatibility.rst); other
    versions' text unchanged. Every other occurrence of the key stays for the test to find."""
    if AIRFLOW_3 and Version("3.1") > AIRFLOW_VERSION:
        # The line names whatever was masked: the key, or the password as pasted around it.
        pattern = rf"msg=MaskSecret\(value='[^']*{re.escape(key)}[^']*'"
        return re.sub(pattern, "msg=MaskSecret(value=<3.0 bug>", text)
    return text


def xcom_model() -> Any:
    """The ORM class of the XCom table (``XComModel`` on 3.x, ``XCom`` on 2.11)."""
    from airflow.models import xcom

    return getattr(xcom, "XComModel", None) or xcom.XCom


__all__ = [
    "AIRFLOW_3",
    "AIRFLOW_VERSION",
    "DAG",
    "DAG_IMPORT",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "TaskDeferred",
    "dag_bag",
    "deserialize",
    "import_string",
    "load_dag",
    "run_dag_file",
    "run_dag_test",
    "serialization_round_trip",
    "serialize",
    "without_airflow_30_mask_secret_lines",
    "write_dag",
    "xcom_model",
]
