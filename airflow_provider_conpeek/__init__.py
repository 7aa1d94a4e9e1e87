"""Apache Airflow provider for Conpeek.

Extracts Conpeek contact-centre data (voice campaign request summaries) into object
storage, one scheduled data interval at a time.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
