"""OpenLineage for the operator: what it read (the Conpeek endpoint and its filters) and what
it wrote (the object, its record count and size).

Imported only from the operator's ``get_openlineage_facets_on_*`` methods, which only the
OpenLineage provider calls: without it, nothing here is ever imported (and the facet base
classes, from ``apache-airflow-providers-common-compat``, would be placeholders).

The methods do no I/O (the provider may call them in a forked process): everything comes
from what ``execute()`` kept on the task (:data:`LINEAGE_ATTRIBUTE`), or, at the start,
from the rendered bucket and key (``s3_bucket``/``s3_key`` and their GCS and Azure peers).
The API key is never part of it: the input's namespace is the base URL's scheme and
host, its name the endpoint's path.

Example of the datasets an extract reports::

    inputs:  namespace "https://tenant.cloud.conpeek.com",
             name "/api/v1_3/voice_campaign_request_summary",
             facets {"conpeek_filters": {"filters": [window..., filters...]}}
    outputs: namespace "s3://contact-centre", name "conpeek/.../20260101T000000.jsonl.gz",
             outputFacets {"outputStatistics": {"rowCount": 20000, "size": 457974}}
"""

from __future__ import annotations

from typing import Any

import attrs
from airflow.providers.common.compat.openlineage.facet import (
    DatasetFacet,
    InputDataset,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
)
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_conpeek.lineage import LINEAGE_ATTRIBUTE

FILTERS_FACET = "conpeek_filters"
"""The input dataset's facet that holds the request's filters."""


@attrs.define
class ConpeekFiltersDatasetFacet(DatasetFacet):  # type: ignore[misc]
    """The request's filters (the window first), as the API's filter objects.

    Example::

        ConpeekFiltersDatasetFacet(filters=[{"property": "created_date", "operator": "gte",
                                             "value": "2026-01-01 00:00:00"}])
    """

    filters: list[dict[str, Any]] = attrs.field(factory=list)


Lineage = OperatorLineage[Any, Any]


def _output(namespace: str, name: str, records: int | None, size: int | None) -> OutputDataset:
    facets: dict[str, Any] = {}
    if records is not None and size is not None:
        facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=records, size=size)
    return OutputDataset(namespace=namespace, name=name, outputFacets=facets)


def _input(kept: dict[str, Any]) -> InputDataset:
    facets: dict[str, DatasetFacet] = {
        FILTERS_FACET: ConpeekFiltersDatasetFacet(filters=kept["filters"])
    }
    return InputDataset(namespace=kept["namespace"], name=kept["name"], facets=facets)


def on_start(operator: Any) -> Lineage:
    """The datasets known when the task starts: the object (its name as rendered)."""
    kept = getattr(operator, LINEAGE_ATTRIBUTE, None) or {}
    output = kept.get("output")
    if output is None:
        bucket, key = operator._rendered_target()
        if not isinstance(bucket, str) or not isinstance(key, str) or "{{" in bucket + key:
            return OperatorLineage()
        output = operator._output_dataset(bucket.strip(), key.lstrip("/"))
    inputs = [_input(kept)] if "namespace" in kept else []
    outputs = [_output(output[0], output[1], None, None)] if output is not None else []
    return OperatorLineage(inputs=inputs, outputs=outputs)


def on_complete(operator: Any) -> Lineage:
    """What the run read and wrote, with the output's statistics once it was written."""
    kept = getattr(operator, LINEAGE_ATTRIBUTE, None)
    if not kept or "output" not in kept:  # failed before its first check
        return on_start(operator)
    inputs = [_input(kept)] if "namespace" in kept else []
    namespace, name = kept["output"]
    outputs = [_output(namespace, name, kept.get("records"), kept.get("bytes"))]
    return OperatorLineage(inputs=inputs, outputs=outputs)
