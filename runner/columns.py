"""The one schema: the Arrow type of every column the runner writes, and a value as a value of its column.

The types of the config's columns come from the factories (:func:`runner.validate.keys_of`,
:func:`runner.config.config_types`); every other column's type is here, :data:`COLUMN_TYPES`.
Plain Python over pyarrow: every layer above uses it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

# One schema, everywhere: the type of every column the runner writes that is not a config key
# (config keys: runner.config.config_types). A column is never of Arrow type null.
FLOAT_LIST = pa.list_(pa.float64())
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
COLUMN_TYPES = {
    # trace rows
    "iteration": pa.int64(),
    "f": pa.float64(),
    "grad_norm": pa.float64(),
    "time_s": pa.float64(),
    "nfev": pa.int64(),
    "ngev": pa.int64(),
    # the run
    "run_id": pa.string(),
    "config_hash": pa.string(),
    "config_id": pa.string(),
    "job": pa.string(),
    "status": pa.string(),
    "stop_reason": pa.string(),
    "message": pa.string(),
    "error": pa.string(),
    "traceback": pa.string(),
    "f_star": pa.float64(),
    "f_gap": pa.float64(),
    "iterations": pa.int64(),
    "trace_rows": pa.int64(),  # the rows of the run's trace: iterations + 1, fewer when sampled
    "wall_time_s": pa.float64(),
    # the asymptotic rate of |x_k - x*| from theory (runner.theory.rate) and fitted on the trace
    # (runner.theory.measured_rate): null where there is no theory, or no fit
    "rate_theory": pa.float64(),
    "rate_measured": pa.float64(),
    "started_at": UTC_TIMESTAMP,
    "config": pa.string(),
}


def value_type(value) -> pa.DataType:
    """The type of a column nothing declares, from one value: numbers float64 (so ``1`` and ``0.5``
    agree), lists of numbers list<double>, everything else text."""
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, (int, float)):
        return pa.float64()
    if isinstance(value, (list, tuple)) and all(is_number(v) for v in value):
        return FLOAT_LIST
    return pa.string()


def is_number(value) -> bool:
    """A real number, Python's or numpy's, and never a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def coerce(value, type_: pa.DataType):
    """``value`` as a value of a column of type ``type_``: ``1`` is 1.0 in a float64 column,
    a dict or a list JSON text in a string one; None when it is not of the type (``lr=abc``)."""
    if value is None:
        return None
    if pa.types.is_floating(type_):
        return float(value) if is_number(value) else None
    if pa.types.is_integer(type_):
        fits = is_number(value) and float(value).is_integer() and -(2**63) <= int(value) < 2**63
        return int(value) if fits else None  # past int64 (a refused max_iter=1e20): the run's config keeps it
    if pa.types.is_boolean(type_):
        return bool(value) if isinstance(value, (bool, np.bool_)) else None
    if pa.types.is_list(type_):
        if is_number(value):
            return [float(value)]
        ok = isinstance(value, (list, tuple)) and all(is_number(v) for v in value)
        return [float(v) for v in value] if ok else None
    if pa.types.is_timestamp(type_):
        return utc_datetime(value)
    return value if isinstance(value, str) else json.dumps(jsonable(value), sort_keys=True)


def utc_iso(seconds: float) -> str:
    """A time (seconds since the epoch) as ISO-8601 in UTC, as summary.json writes ``started_at``."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="microseconds")


def utc_datetime(value) -> datetime | None:
    """An ISO-8601 time (of any offset; a time without one is taken as UTC), a datetime or epoch seconds, in UTC."""
    try:
        if isinstance(value, datetime):
            when = value
        else:
            when = datetime.fromtimestamp(value, timezone.utc) if is_number(value) else datetime.fromisoformat(value)
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


def jsonable(value):
    """Plain JSON: arrays become lists, and non-finite floats become strings ("inf", "nan").

    JSON has no inf or NaN; writing them as strings keeps the file valid for
    every reader while saying exactly what the value was.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
