"""An extra of a connection, described once: :class:`ExtraField`.

Its JSON schema goes into the provider metadata (Airflow 3.2+'s form), :mod:`.widgets` makes
it a wtforms field (older forms), :mod:`.reference` a row of the docs' table, and
:meth:`ExtraField.parse` checks a value as
:func:`airflow_provider_conpeek.settings.read_settings` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["number", "integer", "boolean", "string"]
"""The JSON-schema type of an extra."""

_EXPECTED = {
    "number": "a finite number",
    "integer": "a whole number",
    "boolean": "true or false",
    "string": "a string",
}
_TRUE, _FALSE = ("true", "1", "yes", "y", "on"), ("false", "0", "no", "n", "off")


@dataclass(frozen=True)
class ExtraField:
    """One extra of the Conpeek connection: its type, default, range, label and help.

    Values from the form arrive as strings and are converted (``"30"`` -> ``30.0``,
    ``"true"`` -> ``True``). The bounds follow JSON Schema (draft 6+): ``minimum`` and
    ``maximum`` are inclusive, ``exclusive_minimum`` is a value the extra must exceed.

    :param name: the key in the connection's extra, without the ``extra__conpeek__`` prefix.
    :param kind: ``number``, ``integer``, ``boolean`` or ``string``.
    :param label: the field's label in the connection form.
    :param description: plain-text help, shown under the field and in the docs.
    :param default: the value used when the extra is absent or empty; ``None`` for unset.
    :param minimum: the smallest value allowed.
    :param exclusive_minimum: the value must be greater than this.
    :param maximum: the largest value allowed.
    :param details: more about the extra, for the docs only (reStructuredText).

    Example::

        field = ExtraField("read_timeout", "number", "Read timeout (s)", "Seconds to wait.",
                           default=60.0, exclusive_minimum=0, maximum=3600)
        field.parse("30")  # 30.0
        field.parse(0)  # ValueError: must be > 0 and <= 3600, got 0
        field.rule  # '> 0 and <= 3600'
    """

    name: str
    kind: Kind
    label: str
    description: str
    default: float | bool | str | None = None
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    details: str = ""

    @property
    def rule(self) -> str:
        """The range as text, e.g. ``> 0 and <= 3600``; empty when unbounded."""
        bounds = [
            f"{sign} {format_value(bound)}"
            for sign, bound in (
                (">", self.exclusive_minimum),
                (">=", self.minimum),
                ("<=", self.maximum),
            )
            if bound is not None
        ]
        return " and ".join(bounds)

    @property
    def help_text(self) -> str:
        """The description, followed by the range when there is one."""
        return f"{self.description} Must be {self.rule}." if self.rule else self.description

    def parse(self, value: object) -> Any:
        """``value`` converted to this extra's type and checked against its range.

        :raises ValueError: with the problem, e.g. ``must be a whole number, got str 'x'``.
        """
        converted = self._convert(value)
        if converted is None:
            expected = _EXPECTED[self.kind]
            raise ValueError(f"must be {expected}, got {type(value).__name__} {value!r}")
        if self.kind in ("number", "integer") and not self._in_range(converted):
            raise ValueError(f"must be {self.rule}, got {value!r}")
        return converted

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the value; ``null`` (an empty form field) means the default."""
        schema: dict[str, Any] = {"type": [self.kind, "null"]}
        if self.default is not None:
            schema["default"] = self.default
        if self.exclusive_minimum is not None:
            schema["exclusiveMinimum"] = self.exclusive_minimum
        # Airflow's form reads only minimum and maximum (as the number input's limits).
        minimum = self.minimum if self.minimum is not None else self.exclusive_minimum
        if minimum is not None:
            schema["minimum"] = minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema

    def conn_field(self) -> dict[str, Any]:
        """The entry of this extra in the provider metadata's ``conn-fields``."""
        return {"label": self.label, "description": self.help_text, "schema": self.json_schema()}

    def _convert(self, value: object) -> Any:
        """``value`` as this extra's type, or ``None`` if it is not one."""
        if self.kind == "string":
            return value.strip() if isinstance(value, str) else None
        if self.kind == "boolean":
            if isinstance(value, bool):
                return value
            text = value.strip().lower() if isinstance(value, str) else None
            return True if text in _TRUE else False if text in _FALSE else None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None
        try:
            number = float(value)
        except (ValueError, OverflowError):  # OverflowError: an int beyond any float
            return None
        if not math.isfinite(number):
            return None
        if self.kind == "number":
            return number
        if isinstance(value, int):
            return value
        return int(number) if number.is_integer() else None

    def _in_range(self, value: float) -> bool:
        return not (
            (self.exclusive_minimum is not None and value <= self.exclusive_minimum)
            or (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
        )


def format_value(value: object) -> str:
    """A value as the docs and messages show it: ``10`` not ``10.0``, ``true`` not ``True``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
