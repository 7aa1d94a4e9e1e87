"""The extras as wtforms fields, for the connection form of Airflow before 3.2.

Airflow 3.2+ builds its form from the provider metadata (``conn-fields``) instead. Only the
field classes Airflow accepts are used (``StringField``, ``IntegerField``,
``BooleanField``), so a ``number`` extra is a ``StringField`` checked by
:class:`ExtraValidator`. Fields get only a label, validators, a description, a default and
(text fields, where Flask-AppBuilder is installed) FAB's ``BS3TextFieldWidget``: Airflow
3.0-3.1's API server builds them with stand-ins for wtforms and FAB that accept no more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_conpeek.connection.field import ExtraField, format_value


class ExtraValidator:
    """A wtforms validator refusing what :meth:`ExtraField.parse` refuses.

    :param extra: the extra whose type and range a form value must have.

    Example::

        StringField("Read timeout (s)", validators=[Optional(), ExtraValidator(extra)])
    """

    def __init__(self, extra: ExtraField) -> None:
        self.extra = extra

    def __call__(self, form: Any, field: Any) -> None:
        """Raise wtforms' ``ValidationError`` naming the problem with ``field.data``."""
        from wtforms.validators import ValidationError

        try:
            self.extra.parse(field.data)
        except ValueError as error:
            raise ValidationError(f"{self.extra.label} {error}.") from None


def form_widgets(extras: Mapping[str, ExtraField]) -> dict[str, Any]:
    """Each of ``extras`` as an unbound wtforms field, by name; ``{}`` without wtforms.

    Example::

        form_widgets(EXTRA_FIELDS)["read_timeout"]  # <UnboundField(StringField, ...)>
    """
    try:
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import NumberRange, Optional
    except ImportError:  # Airflow 3.2+: the form comes from the provider metadata
        return {}
    text: dict[str, Any] = {}
    try:  # Airflow 2.11's FAB form styles its inputs with these; 3.0-3.1 stand in for them
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget

        text = {"widget": BS3TextFieldWidget()}
    except ImportError:
        pass
    widgets: dict[str, Any] = {}
    for name, extra in extras.items():
        default: Any = extra.default
        kwargs = text
        if extra.kind == "boolean":
            field_class, validators, kwargs = BooleanField, [], {}
        elif extra.kind == "integer" and extra.exclusive_minimum is None:
            field_class = IntegerField
            validators = [Optional(), NumberRange(min=extra.minimum, max=extra.maximum)]
        else:  # a number is typed as text: Airflow accepts no FloatField
            field_class = StringField
            validators = [Optional(), ExtraValidator(extra)]
            default = None if default is None else format_value(default)
        widgets[name] = field_class(
            extra.label,
            validators=validators,
            description=extra.help_text,
            default=default,
            **kwargs,
        )
    return widgets
