"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.connection import connection_type_metadata

INTEGRATION = "Conpeek"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow (validated against ``provider_info.schema.json``)."""
    return {
        "package-name": "airflow-provider-conpeek",
        "name": "Conpeek",
        "description": "Extract Conpeek contact-centre data into object storage.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://www.conpeek.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_provider_conpeek.hooks.conpeek"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_provider_conpeek.operators.voice_campaign_summary",
                    "airflow_provider_conpeek.operators.manifest",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_provider_conpeek.sensors.voice_campaign_summary"],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_provider_conpeek.triggers.voice_campaign_summary"],
            }
        ],
        "connection-types": [connection_type_metadata()],
    }
