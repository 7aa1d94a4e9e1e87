"""Records to Parquet: the schema read in a first pass, the file written in a second.

The API documents no record fields, and a field may first appear late in a window or change
type from one record to the next (a number, then a string; null for a month, then a
value). A Parquet file's schema is fixed when it is opened, so instead of guessing it from
the first page, the extract writes the records as JSON Lines into its temporary file as
usual, and :class:`SchemaObserver` notes, record by record, every field and the kinds of
value it held. :func:`jsonl_to_parquet` then reads that file again, row group by row group
(memory stays flat), and writes Parquet with one column per field, in order of first
appearance, typed by :func:`column_type`:

* only booleans: ``bool``; only integers: ``int64``; integers and floats: ``double`` (or
  ``string`` if an integer is too large for a double to hold exactly);
* only strings: ``string``, exactly as sent: date-times stay ``YYYY-MM-DD HH:mm:ss``
  strings unless ``typed_timestamps=True``, which turns a column whose every value has that
  form into ``timestamp[s, tz=UTC]``;
* anything else -- objects, arrays, a mix of kinds -- ``string`` holding each value's
  compact JSON (a string too, quoted), so nothing is lost: ``json.loads`` gives back the
  very value sent, its type included;
* a field absent from a record, or null: a null in its column.

The same records always give the same bytes (no timestamps in the file; fixed row groups,
zstd at a fixed level) with the same pyarrow version.

Example::

    observer = SchemaObserver()
    for record in records:
        observer.observe(record)
    jsonl_to_parquet(jsonl_path, parquet_path, observer.columns())
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROW_GROUP_RECORDS = 50_000
"""Records per row group: large enough for fast scans, small enough for flat memory."""
SLICE_RECORDS = 5_000
"""Records parsed at once while a row group is built (bounds the Python objects alive)."""
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
EXACT_DOUBLE = 2**53
"""Integers beyond +/- this do not survive a trip through a double."""
API_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

_KIND_BY_TYPE = {bool: "bool", int: "int", float: "float", str: "str"}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass
class FieldKinds:
    """What one field held across the records: the kinds of its non-null values, whether
    an integer was too large for a double, and whether every string was an API date-time."""

    kinds: set[str]
    big_int: bool = False
    all_datetimes: bool = True


@dataclass(frozen=True)
class Column:
    """One Parquet column: the field's name and how its values are written."""

    name: str
    type: str
    """``bool``, ``int64``, ``double``, ``string``, ``json`` (a string column holding each
    value's JSON) or ``timestamp``."""


class SchemaObserver:
    """Every field of the records seen so far, in order of first appearance, and its kinds.

    Example::

        observer = SchemaObserver()
        observer.observe({"id": 1, "note": None})
        observer.columns()  # [Column("id", "int64"), Column("note", "string")]
    """

    def __init__(self) -> None:
        self.fields: dict[str, FieldKinds] = {}

    def observe(self, record: Any) -> None:
        """Note one record's fields (a record that is not an object is refused)."""
        if not isinstance(record, Mapping):
            raise ValueError(f"a record is not a JSON object: {str(record)[:200]!r}")
        for name, value in record.items():
            seen = self.fields.get(name)
            if seen is None:
                seen = self.fields[name] = FieldKinds(set())
            if value is None:
                continue
            kind = _KIND_BY_TYPE.get(type(value), "json")
            seen.kinds.add(kind)
            if kind == "int" and not -EXACT_DOUBLE <= value <= EXACT_DOUBLE:
                seen.big_int = True
            elif kind == "str" and seen.all_datetimes and not API_DATETIME.fullmatch(value):
                seen.all_datetimes = False

    def columns(self, *, typed_timestamps: bool = False) -> list[Column]:
        """The columns, typed by :func:`column_type`."""
        return [
            Column(name, column_type(kinds, typed_timestamps=typed_timestamps))
            for name, kinds in self.fields.items()
        ]


def column_type(field: FieldKinds, *, typed_timestamps: bool = False) -> str:
    """How a field with these kinds of values is written (see the module's rules)."""
    kinds = field.kinds
    if kinds == {"bool"}:
        return "bool"
    if kinds == {"int"}:
        return "int64"
    if kinds <= {"int", "float"} and kinds:
        return "json" if field.big_int else "double"
    if kinds == {"str"}:
        return "timestamp" if typed_timestamps and field.all_datetimes else "string"
    if not kinds:
        return "string"  # only nulls: a column a reader can still type
    return "json"


def arrow_schema(columns: list[Column]) -> Any:
    """The pyarrow schema of ``columns``."""
    import pyarrow as pa

    types = {
        "bool": pa.bool_(),
        "int64": pa.int64(),
        "double": pa.float64(),
        "string": pa.string(),
        "json": pa.string(),
        "timestamp": pa.timestamp("s", tz="UTC"),
    }
    return pa.schema([pa.field(c.name, types[c.type]) for c in columns])


def jsonl_to_parquet(
    source: Path,
    target: Path,
    columns: list[Column],
    *,
    row_group_records: int = ROW_GROUP_RECORDS,
    cancel: threading.Event | None = None,
) -> int:
    """Write the records of the JSON Lines file ``source`` (``.gz`` read as gzip) as Parquet
    into ``target``, in row groups of ``row_group_records``; returns the records written.

    :param columns: from :meth:`SchemaObserver.columns` over the same records.
    :param cancel: when set, stops between row groups (the file is then incomplete).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    convert = [_converter(c.type) for c in columns]
    names = [c.name for c in columns]
    written = 0
    with pq.ParquetWriter(
        str(target),
        schema,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        write_statistics=True,
    ) as writer:
        batches: list[Any] = []
        for records, ends_group in _slices(source, row_group_records):
            if cancel is not None and cancel.is_set():
                return written
            # A row group is built a slice at a time, in Arrow's compact columns: only one
            # slice of parsed records (Python dicts) is alive at once, not the whole group.
            arrays = [
                pa.array([conv(r.get(name)) for r in records], type=field.type)
                for name, conv, field in zip(names, convert, schema, strict=True)
            ]
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            if ends_group:
                table = pa.Table.from_batches(batches, schema=schema)
                writer.write_table(table, row_group_size=table.num_rows)  # one row group
                written += table.num_rows
                batches = []
        if written == 0:  # an empty window: a valid file with the schema and no rows
            writer.write_table(schema.empty_table())
    return written


def _converter(column_type: str) -> Any:
    if column_type == "json":
        return lambda v: None if v is None else _dumps(v)
    if column_type == "double":
        return lambda v: None if v is None else float(v)
    if column_type == "timestamp":
        from datetime import datetime, timezone

        def to_timestamp(value: Any) -> Any:
            if value is None:
                return None
            return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)

        return to_timestamp
    return lambda v: v


def _slices(source: Path, group_size: int) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """The records of ``source`` in slices of at most :data:`SLICE_RECORDS`, each with
    whether it ends a row group of ``group_size`` records (or the file)."""
    raw: IO[bytes] = (
        gzip.GzipFile(source, "rb")  # type: ignore[assignment]
        if source.name.endswith(".gz")
        else open(source, "rb")  # noqa: SIM115 - closed by the with below
    )
    with raw:
        records: list[dict[str, Any]] = []
        in_group = 0
        for line in raw:
            if not line.strip():
                continue
            records.append(json.loads(line))
            in_group += 1
            if in_group == group_size:
                yield records, True
                records, in_group = [], 0
            elif len(records) == SLICE_RECORDS:
                yield records, False
                records = []
        if records or in_group:
            yield records, True
