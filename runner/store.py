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


def trace_table(result: RunResult, run_columns: dict) -> pa.Table:
    """The trace as a table: per-iterate columns, then the run's constant columns."""
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
    for name, value in run_columns.items():
        columns[name] = pa.array([value] * n) if value is not None else pa.nulls(n, pa.null())
    return pa.table(columns)


def write_trace(path: Path, result: RunResult, run_columns: dict) -> None:
    table = trace_table(result, run_columns)
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
