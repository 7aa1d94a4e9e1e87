"""What the endpoint's ``filter`` parameter means: which values it refuses, which records pass.

:func:`parse_filters` validates a decoded ``filter`` value as the sandbox's endpoint does
(raising :class:`FilterError` where it answers 400) and returns :class:`Filters`, which
both the endpoint and :meth:`~.records.RecordStore.expected` apply.

Example::

    filters = parse_filters([
        {"property": "created_date", "operator": "gte", "value": "2026-01-02 00:00:00"},
        {"property": "project_id_list", "value": [11, 14]},
    ])
    filters.created_lo, filters.matches({"project_id": 11})  # (1767312000, True)

.. seealso:: :doc:`/sandbox`, section *What it serves*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_conpeek.testing.dates import parse_date

OPERATORS = ("gt", "gte", "lt", "lte")
"""Operators of the date properties."""

DATE_PROPERTIES = ("created_date", "closed_date")
"""Properties that take an operator and a ``YYYY-MM-DD HH:mm:ss`` value."""

LIST_PROPERTIES: dict[str, tuple[str, type]] = {
    "contact_number_list": ("contact_number", str),
    "voice_campaign_id_list": ("voice_campaign_id", str),
    "call_request_id_list": ("call_request_id", str),
    "project_id_list": ("project_id", int),
}
"""List filter property -> (record field, element type)."""


class FilterError(ValueError):
    """A ``filter`` value the endpoint rejects with 400 ``invalid_filter``.

    Example::

        with pytest.raises(FilterError):
            parse_filters([{"property": "nope", "value": 1}])
    """


@dataclass
class Filters:
    """Parsed filters, all ANDed: half-open epoch windows plus membership tests.

    ``created_lo <= created < created_hi`` (each bound when set) selects a range of the
    store's order; :meth:`matches` tests everything else.

    Example::

        filters = parse_filters([{"property": "project_id_list", "value": [11]}])
        filters.matches(record)  # True when record["project_id"] == 11
    """

    created_lo: int | None = None
    created_hi: int | None = None
    closed_lo: int | None = None
    closed_hi: int | None = None
    has_closed: bool = False
    members: list[tuple[str, frozenset[Any]]] = field(default_factory=list)

    @property
    def created_only(self) -> bool:
        """True if only created_date conditions are present (index-range fast path)."""
        return not self.has_closed and not self.members

    def matches(self, record: dict[str, Any]) -> bool:
        """True if ``record`` passes every condition but the created_date window.

        :param record: a record as the endpoint serves it.
        """
        for name, allowed in self.members:
            value = record.get(name)
            if isinstance(value, (bool, list, dict)) or value not in allowed:
                return False  # an added record's list or dict field matches nothing
        if not self.has_closed:
            return True
        try:
            ts = parse_date(record.get("closed_date"))
        except ValueError:
            return False  # open (closed_date null) or unparseable: outside every window
        return (self.closed_lo is None or ts >= self.closed_lo) and (
            self.closed_hi is None or ts < self.closed_hi
        )


def _narrow(lo: int | None, hi: int | None, op: str, ts: int) -> tuple[int | None, int | None]:
    """Intersect the half-open window ``[lo, hi)`` with ``<op> ts``."""
    if op in ("gt", "gte"):
        bound = ts + 1 if op == "gt" else ts
        return (bound if lo is None else max(lo, bound)), hi
    bound = ts + 1 if op == "lte" else ts
    return lo, (bound if hi is None else min(hi, bound))


def parse_filters(raw: Any) -> Filters:
    """Validate a decoded ``filter`` JSON value.

    :param raw: the JSON-decoded ``filter`` parameter: a list of condition objects.
    :raises FilterError: where the endpoint answers 400 ``invalid_filter``.

    >>> parse_filters([{"property": "created_date", "operator": "gte",
    ...                 "value": "2026-01-01 00:00:00"}]).created_lo
    1767225600
    """
    if not isinstance(raw, list):
        raise FilterError("filter must be a JSON list of objects")
    out = Filters()
    for n, item in enumerate(raw):
        where = f"filter[{n}]"
        if not isinstance(item, dict):
            raise FilterError(f"{where} must be an object")
        if "property" not in item or "value" not in item:
            raise FilterError(f"{where} must have the keys 'property' and 'value'")
        extra = set(item) - {"property", "value", "operator"}
        if extra:
            raise FilterError(f"{where} has unknown keys {sorted(extra)}")
        prop, value = item["property"], item["value"]
        if prop in DATE_PROPERTIES:
            op = item.get("operator")
            if op not in OPERATORS:
                raise FilterError(f"{where} ({prop}) needs operator in {list(OPERATORS)}")
            try:
                ts = parse_date(value)
            except ValueError as exc:
                raise FilterError(f"{where} ({prop}): {exc}") from None
            if prop == "created_date":
                out.created_lo, out.created_hi = _narrow(out.created_lo, out.created_hi, op, ts)
            else:
                out.has_closed = True
                out.closed_lo, out.closed_hi = _narrow(out.closed_lo, out.closed_hi, op, ts)
            continue
        if "operator" in item:
            raise FilterError(f"{where} ({prop!r}) does not take an operator")
        if prop == "contact_number":
            if not isinstance(value, str):
                raise FilterError(f"{where} (contact_number) value must be a string")
            out.members.append(("contact_number", frozenset([value])))
        elif prop in LIST_PROPERTIES:
            name, typ = LIST_PROPERTIES[prop]
            if not isinstance(value, list) or not all(
                isinstance(v, typ) and not isinstance(v, bool) for v in value
            ):
                raise FilterError(f"{where} ({prop}) value must be a list of {typ.__name__}")
            out.members.append((name, frozenset(value)))
        else:
            raise FilterError(f"{where}: unknown property {prop!r}")
    return out


__all__ = [
    "DATE_PROPERTIES",
    "LIST_PROPERTIES",
    "OPERATORS",
    "FilterError",
    "Filters",
    "parse_filters",
]
