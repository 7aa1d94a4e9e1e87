"""Extras as a reStructuredText table, for the docs' ``conpeek-extras`` directive.

``docs/conf.py`` defines the directive; ``docs/connection.rst`` uses it, so the docs show
exactly what :data:`airflow_provider_conpeek.connection.EXTRA_FIELDS` describes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from airflow_provider_conpeek.connection.field import ExtraField, format_value

_URL = re.compile(r"\b[a-z]+://[^\s,;]*[^\s,;.]")


def extras_table(extras: Mapping[str, ExtraField], names: Sequence[str] | None = None) -> list[str]:
    """The lines of a ``list-table`` of ``extras`` (only ``names``, if given, in that order).

    :raises ValueError: for a name that is not in ``extras``.

    Example::

        "\\n".join(extras_table(EXTRA_FIELDS, ["connect_timeout", "read_timeout"]))
    """
    unknown = [name for name in names or () if name not in extras]
    if unknown:
        raise ValueError(f"not extras: {', '.join(unknown)}; known: {', '.join(extras)}")
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 17 19 9 9 46",
        "",
        "   * - Extra",
        "     - Label in the UI",
        "     - Type",
        "     - Default",
        "     - Meaning",
    ]
    for name in names or list(extras):
        lines += _row(extras[name])
    return lines


def _row(extra: ExtraField) -> list[str]:
    default = "none" if extra.default is None else f"``{format_value(extra.default)}``"
    meaning = _URL.sub(lambda url: f"``{url.group()}``", extra.help_text)
    return [
        f"   * - ``{extra.name}``",
        f"     - {extra.label}",
        f"     - {extra.kind}",
        f"     - {default}",
        f"     - {f'{meaning} {extra.details}'.strip()}",
    ]
