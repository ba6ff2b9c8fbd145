"""Files of a run: ``trace.parquet`` (one row per iterate) and ``summary.json`` (its outcome).

Every file is written atomically: to a temporary name in the same folder, then
renamed. ``summary.json`` is written last, so a folder whose summary is
missing never holds a run that looks complete.
"""

from __future__ import annotations

import json
import math
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from runner.trace import RunResult

TRACE_FILE = "trace.parquet"
SUMMARY_FILE = "summary.json"
VERSIONED_PACKAGES = ("runner", "numpy", "scipy", "pandas", "pyarrow", "hydra-core", "omegaconf", "matplotlib")


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# One schema, everywhere: the type of every column the runner writes that is not a config key
# (config keys: runner.run.config_types). A column is never of Arrow type null.
FLOAT_LIST = pa.list_(pa.float64())
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
COLUMN_TYPES = {
    # trace rows
    "iteration": pa.int64(), "f": pa.float64(), "grad_norm": pa.float64(), "time_s": pa.float64(),
    "nfev": pa.int64(), "ngev": pa.int64(),
    # the run
    "run_id": pa.string(), "config_hash": pa.string(), "config_id": pa.string(), "job": pa.string(),
    "status": pa.string(), "stop_reason": pa.string(), "message": pa.string(), "error": pa.string(),
    "traceback": pa.string(), "f_star": pa.float64(), "f_gap": pa.float64(), "iterations": pa.int64(),
    "wall_time_s": pa.float64(), "started_at": UTC_TIMESTAMP, "config": pa.string(),
}  # fmt: skip


def declared_type(annotation) -> pa.DataType | None:
    """The Arrow type of a value annotated ``annotation``; None when it names none.

    ``float`` is float64, ``int`` int64, ``bool`` bool, ``str`` string, a sequence of numbers
    (``Sequence[float]``, ``tuple[float, float]``) list<double>, a mapping JSON text (string);
    ``X | None`` is the type of X.
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        found = {declared_type(a) for a in args if a is not type(None)} - {None}
        if FLOAT_LIST in found and found <= {FLOAT_LIST, pa.float64(), pa.int64()}:
            return FLOAT_LIST  # a point given as one number or a list of them (x0): a list column
        return found.pop() if len(found) == 1 else None
    if annotation in _SCALAR_TYPES:
        return _SCALAR_TYPES[annotation]
    container = origin or annotation
    if isinstance(container, type) and issubclass(container, Mapping):
        return pa.string()
    if isinstance(container, type) and issubclass(container, Sequence) and not issubclass(container, str):
        return FLOAT_LIST if args and all(a in (float, int, Ellipsis) for a in args) else None
    return None


_SCALAR_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def value_type(value) -> pa.DataType:
    """The type of a column nothing declares, from one value: numbers float64 (so ``1`` and ``0.5``
    agree), lists of numbers list<double>, everything else text."""
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, (int, float)):
        return pa.float64()
    if isinstance(value, (list, tuple)) and all(_is_number(v) for v in value):
        return FLOAT_LIST
    return pa.string()


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def coerce(value, type_: pa.DataType):
    """``value`` as a value of a column of type ``type_``: ``1`` is 1.0 in a float64 column,
    a dict or a list JSON text in a string one; None when it is not of the type (``lr=abc``)."""
    if value is None:
        return None
    if pa.types.is_floating(type_):
        return float(value) if _is_number(value) else None
    if pa.types.is_integer(type_):
        fits = _is_number(value) and float(value).is_integer() and -(2**63) <= int(value) < 2**63
        return int(value) if fits else None  # past int64 (a refused max_iter=1e20): the run's config keeps it
    if pa.types.is_boolean(type_):
        return bool(value) if isinstance(value, (bool, np.bool_)) else None
    if pa.types.is_list(type_):
        if _is_number(value):
            return [float(value)]
        ok = isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)
        return [float(v) for v in value] if ok else None
    if pa.types.is_timestamp(type_):
        return utc_datetime(value)
    return value if isinstance(value, str) else json.dumps(_jsonable(value), sort_keys=True)


def utc_iso(seconds: float) -> str:
    """A time (seconds since the epoch) as ISO-8601 in UTC, as summary.json writes ``started_at``."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="microseconds")


def utc_datetime(value) -> datetime | None:
    """An ISO-8601 time (of any offset; a time without one is taken as UTC), a datetime or epoch seconds, in UTC."""
    try:
        if isinstance(value, datetime):
            when = value
        else:
            when = datetime.fromtimestamp(value, timezone.utc) if _is_number(value) else datetime.fromisoformat(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def typed_array(values: list, type_: pa.DataType | None = None, *, coerced: bool = False) -> pa.Array:
    """``values`` as an array of ``type_``, each value coerced (:func:`coerce`) unless ``coerced``
    says they already are; without a type, of the type of its first non-null value
    (:func:`value_type`), text when all are null: never Arrow's null type."""
    if type_ is None:
        type_ = next((value_type(v) for v in values if v is not None), pa.string())
    return pa.array(values if coerced else [coerce(v, type_) for v in values], type_)


def trace_table(result: RunResult, run_columns: dict, types: dict | None = None) -> pa.Table:
    """The trace as a table: per-iterate columns, then the run's constant columns.

    A constant column's type is ``types[name]``, else :data:`COLUMN_TYPES`, else its value's.
    """
    trace = result.trace
    n = len(trace.f)
    columns = {
        "iteration": pa.array(np.arange(n, dtype=np.int64)),
        "f": pa.array(trace.f),
        "grad_norm": pa.array(trace.grad_norm),
    }
    for j, i in enumerate(trace.coords):
        columns[f"x_{i}"] = pa.array(trace.x[:, j])
    columns["time_s"] = pa.array(trace.time_s)
    columns["nfev"] = pa.array(trace.nfev)
    columns["ngev"] = pa.array(trace.ngev)
    types = {**COLUMN_TYPES, **(types or {})}
    for name, value in run_columns.items():
        columns[name] = typed_array([value], types.get(name)).take(np.zeros(n, dtype=np.int64))
    return pa.table(columns)


def write_trace(path: Path, result: RunResult, run_columns: dict, types: dict | None = None) -> None:
    table = trace_table(result, run_columns, types)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_summary(path: Path, summary: dict) -> None:
    text = json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_summary(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def package_versions() -> dict:
    versions = {"python": sys.version.split()[0]}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _jsonable(value):
    """Plain JSON: arrays become lists, and non-finite floats become strings ("inf", "nan").

    JSON has no inf or NaN; writing them as strings keeps the file valid for
    every reader while saying exactly what the value was.
    """
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
