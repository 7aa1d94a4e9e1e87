"""Records to a JSON Lines file on local disk, optionally gzip-compressed.

One record per line, verbatim (compact JSON, UTF-8, non-ASCII kept readable). The gzip
header carries no file name and no timestamp, so the same records always give the same
bytes: a rerun of an interval rewrites an identical object.

Example::

    with JsonLinesFile(directory, compression="gzip") as out:
        out.write_page([{"id": 1}, {"id": 2}])
    out.path, out.records, out.bytes_written
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from airflow_provider_conpeek.exceptions import ConpeekConfigError

COMPRESSIONS = ("gzip", "none")
GZIP_LEVEL = 6
"""zlib's default: within a few percent of level 9's size at several times its speed."""

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


FILE_FORMATS = ("jsonl", "parquet")


def check_format(
    file_format: str, compression: str | None, s3_key: str, *, key_name: str = "s3_key"
) -> tuple[str, str]:
    """``(file_format, compression)`` to write, checked against each other and the key.

    JSON Lines: as :func:`check_compression` (``None`` means ``gzip``). Parquet compresses
    inside the file (zstd), so ``compression`` must be left ``None``, and the key must end
    in ``.parquet``.
    """
    if file_format not in FILE_FORMATS:
        raise ConpeekConfigError(f"file_format must be 'jsonl' or 'parquet', got {file_format!r}.")
    if file_format == "jsonl":
        return file_format, check_compression(
            "gzip" if compression is None else compression, s3_key, key_name=key_name
        )
    if compression is not None:
        raise ConpeekConfigError(
            f"compression={compression!r} with file_format='parquet': a Parquet file compresses "
            "its columns itself (zstd). Leave compression unset."
        )
    if not s3_key.endswith(".parquet"):
        raise ConpeekConfigError(
            f"{key_name} {s3_key!r} does not end with '.parquet' but file_format='parquet'. Name "
            "the key '....parquet'."
        )
    return file_format, "none"


def check_compression(compression: str | None, s3_key: str, *, key_name: str = "s3_key") -> str:
    """The compression to use, checked against the key's suffix.

    ``gzip`` needs a key ending in ``.gz``; ``none`` a key that does not, so the object's name
    never lies about its content.
    """
    value = "none" if compression is None else compression
    if value not in COMPRESSIONS:
        raise ConpeekConfigError(f"compression must be 'gzip' or 'none', got {compression!r}.")
    if value == "gzip" and not s3_key.endswith(".gz"):
        raise ConpeekConfigError(
            f"{key_name} {s3_key!r} does not end with '.gz' but compression='gzip'. Name the key "
            "'....jsonl.gz', or pass compression='none' for plain JSON Lines."
        )
    if value == "none" and s3_key.endswith(".gz"):
        raise ConpeekConfigError(
            f"{key_name} {s3_key!r} ends with '.gz' but compression='none'. Drop the '.gz' suffix, "
            "or pass compression='gzip'."
        )
    return value


class JsonLinesFile:
    """A JSON Lines file being written in ``directory``; closed (and flushed) on exit.

    :param directory: where the file is created (a temporary directory, normally).
    :param compression: ``"gzip"`` or ``"none"``.

    Example::

        with tempfile.TemporaryDirectory() as tmp, JsonLinesFile(tmp) as out:
            out.write_page([{"call_request_id": "cr-1"}])
        # out.path is records.jsonl.gz, out.records == 1
    """

    def __init__(self, directory: str | os.PathLike[str], *, compression: str = "gzip") -> None:
        suffix = ".jsonl.gz" if compression == "gzip" else ".jsonl"
        self.path = Path(directory) / f"records{suffix}"
        self.records = 0
        self._raw: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._out: gzip.GzipFile | IO[bytes] = (
            gzip.GzipFile(
                filename="", fileobj=self._raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
            )
            if compression == "gzip"
            else self._raw
        )

    def write_page(self, records: Iterable[Any]) -> int:
        """Append records, one per line; returns how many were written."""
        lines = [_dumps(record) for record in records]
        if lines:
            lines.append("")
            # A lone surrogate (valid in JSON, e.g. half of a cut emoji) cannot be UTF-8:
            # write it back as the JSON escape it came from, \udXXX, instead of failing.
            self._out.write("\n".join(lines).encode("utf-8", "backslashreplace"))
        written = max(len(lines) - 1, 0)
        self.records += written
        return written

    def close(self) -> None:
        """Finish the compressed stream and close the file."""
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()

    @property
    def bytes_written(self) -> int:
        """Size of the file on disk (call after :meth:`close`)."""
        return self.path.stat().st_size

    def __enter__(self) -> JsonLinesFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
