"""What the figures read: the tables' columns, each run's rows, and its objective.

The tables and storage layers below the figures, and the objectives registry, are imported
here and nowhere else in the package, so that moving them is a change of this file.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from objectives import REGISTRY as OBJECTIVES
from runner.store import FIGURES_DIR, atomic_write
from runner.tables import load, load_runs

__all__ = ["FIGURES_DIR", "atomic_write", "load", "load_runs"]

SETTING_KEYS = ("objective", "optimizer", "lr", "max_iter", "tol", "grad_tol", "trace.x")
MOMENTUM = "optimizer.momentum"
# The trace columns the figures read; x_2 only tells 2-D runs from bigger ones (see _dims).
TRACE_COLUMNS = ["run_id", "iteration", "f", "nfev", "ngev", "x_0", "x_1", "x_2"]


def config_keys(runs: pd.DataFrame) -> list[str]:
    """The runs table's config columns: the run settings and every ``objective.*`` / ``optimizer.*``."""
    return [c for c in runs.columns if c in SETTING_KEYS or c.startswith(("objective.", "optimizer."))]


def _canon(value):
    """A cell as a plain hashable value; null (None, NaN, pd.NA) as None."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    if value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):  # a list<double> cell: hashable, comparable
        return tuple(_canon(v) for v in value)
    return value


def _column(runs: pd.DataFrame, key: str) -> pd.Series:
    if key not in runs.columns:
        return pd.Series([None] * len(runs), index=runs.index, dtype=object)
    values = runs[key].map(_canon).astype(object)
    # map() turns a None among numbers back into NaN, which equals nothing, itself included: null is None.
    return values.where(values.notna(), None)


def reached_tol(runs: pd.DataFrame) -> pd.Series:
    """Which runs stopped because |f_k - f_(k-1)| < tol: ``stop_reason == "tol"`` where the runs
    table has that column, else (tables written before it) status ``converged``."""
    if "stop_reason" in runs.columns:
        return (runs["stop_reason"] == "tol").fillna(False).astype(bool)
    return (runs["status"] == "converged").astype(bool)


def _f_star(run) -> float | None:
    """The run's f* (a runs-table row, as a Series or a dict), None where it is unknown."""
    return _finite(run.get("f_star"))


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):  # None, pd.NA, text
        return None
    return value if math.isfinite(value) else None


def _by_run(traces: pd.DataFrame, run_ids=None) -> dict[str, pd.DataFrame]:
    """Each run's rows in iteration order; only those of ``run_ids`` when given (the runs drawn)."""
    if traces.empty or "run_id" not in traces.columns:
        return {}
    if run_ids is not None:
        traces = traces[traces["run_id"].isin(run_ids)]
    return {rid: rows.sort_values("iteration", kind="stable") for rid, rows in traces.groupby("run_id", sort=False)}


def _first_and_last_f(traces: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Each run's f at its first and at its last recorded iteration."""
    if traces.empty or "run_id" not in traces.columns:
        return {}
    by_run = traces.groupby("run_id", sort=False)["iteration"]
    first = traces.loc[by_run.idxmin(), ["run_id", "f"]].set_index("run_id")["f"]
    last = traces.loc[by_run.idxmax(), ["run_id", "f"]].set_index("run_id")["f"]
    return {rid: (float(first[rid]), float(last[rid])) for rid in first.index}


def _x_columns(traces: pd.DataFrame) -> list[str]:
    cols = [c for c in traces.columns if c.startswith("x_") and c[2:].isdigit()]
    return sorted(cols, key=lambda c: int(c[2:]))


def _dims(traces: pd.DataFrame) -> dict[str, int]:
    """Each run's recorded coordinates: how many ``x_i`` columns are non-null in its first row
    (up to the columns ``traces`` has: 3 for "3 or more" when read with :data:`TRACE_COLUMNS`)."""
    cols = _x_columns(traces)
    if not cols:
        return {}
    # Every trace starts at iteration 0: comparing integers spares hashing every row's run_id.
    first = traces[traces["iteration"] == 0].drop_duplicates("run_id").set_index("run_id")[cols]
    return first.notna().sum(axis=1).to_dict()


def _objective(run) -> object:
    """The run's objective (a runs-table row, a Series or a dict), built by the objectives registry's
    factory named in its ``objective`` column, with the keys of its resolved config's ``objective`` node."""
    node = json.loads(run["config"])["objective"]
    factory = OBJECTIVES.get(run["objective"])
    if factory is None:
        raise ValueError(f"objective={run['objective']}: expected one of {', '.join(sorted(OBJECTIVES))}")
    return factory(**{k: v for k, v in node.items() if k != "_target_"})
