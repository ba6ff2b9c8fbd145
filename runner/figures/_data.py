"""What the figures read: the tables' columns, each run's rows, its objective, and the theory beside them.

The tables and storage layers below the figures, the objectives registry and :mod:`runner.theory`
are imported here and nowhere else in the package, so that moving them is a change of this file.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import pandas as pd

from objectives import REGISTRY as OBJECTIVES
from runner import profiles
from runner.optimizers import OPTIMIZERS
from runner.store import FIGURES_DIR, PARTS_DIR, RUNS_FILE, SUMMARY_FILE, atomic_write, built_after_its_runs, cores
from runner.tables import load, load_runs
from runner.theory import iterations_for, optimal, rate
from runner.validate import factory_of

__all__ = ["FIGURES_DIR", "atomic_write", "cores", "load", "load_runs", "profiles"]

RATE_THEORY, RATE_MEASURED = "rate_theory", "rate_measured"  # runs.parquet's rate columns (runner.theory)
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
    column = runs[key]
    numeric = isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiub"
    if numeric or isinstance(column.dtype, pd.StringDtype):
        # Numbers, booleans and text at once: numpy's cast to object gives Python scalars, as _canon does.
        values = column.to_numpy().astype(object)
    else:  # lists, mixed objects, nullable extension types: cell by cell
        values = np.array(column.map(_canon), dtype=object)  # a copy of our own, written below
    # A null (NaN, None, pd.NA), which equals nothing, itself included, is None.
    values[pd.isna(values)] = None
    return pd.Series(values, index=runs.index, dtype=object)


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


class UntrustedConfig(ValueError):
    """A folder names a factory outside the registries: nothing it names is imported or called."""


# Objectives a user's own config folder (--config-dir) adds to the project's registry: ``_target_`` -> name.
_USER_TARGETS: dict[str, str] = {}
# The folder being drawn, to name the file a refused value was read from.
_FOLDER: ContextVar[Path | None] = ContextVar("runner_figures_folder", default=None)


def trust_config_dir(config_dir: str | Path) -> list[str]:
    """Add the objectives of a user's config folder (``<config_dir>/objective/*.yaml``, as Hydra's
    ``--config-dir`` adds them) to those the figures build; returns their ``_target_``.

    Only a folder the user chose: its factories are imported and called when a figure needs them.
    """
    import yaml  # Hydra's own YAML reader (PyYAML), needed only here

    added = []
    for option in sorted((Path(config_dir) / "objective").glob("*.yaml")):
        node = yaml.safe_load(option.read_text()) or {}
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("objective"), dict):  # an option file written with @package _global_
            node = node["objective"]
        target = node.get("_target_")
        if isinstance(target, str) and "." in target:
            _USER_TARGETS[target] = option.stem
            added.append(target)
    return added


@contextmanager
def reading(folder: str | Path):
    """Name ``folder`` as the one whose runs are drawn (in the message of a refused objective)."""
    token = _FOLDER.set(Path(folder))
    try:
        yield
    finally:
        _FOLDER.reset(token)


def _source(run) -> str:
    """The file a run's row was read from: the sweep's runs table while it is current, else its summary."""
    folder = _FOLDER.get()
    if folder is None:
        return "the runs table"
    if built_after_its_runs(folder / RUNS_FILE, folder):
        return str(folder / RUNS_FILE)
    summary = folder / str(run.get("job") or "") / SUMMARY_FILE
    return str(summary if summary.is_file() else folder / PARTS_DIR)


def _factory(run, node: dict):
    """The objective factory a run names, from the registries only: the project's (``objectives.REGISTRY``,
    by its conf/objective ``_target_`` or the factory's own path) and a trusted config folder's."""
    name, target = run["objective"], node.get("_target_")
    project = OBJECTIVES.get(name)
    if project is not None and target in (None, f"objectives.{name}", f"{project.__module__}.{project.__name__}"):
        return project
    if isinstance(target, str) and target in _USER_TARGETS and target.rpartition(".")[2] == name:
        return factory_of({"_target_": target}, "objective")
    key, value = ("objective._target_", target) if target is not None else ("objective", name)
    known = sorted({f"objectives.{n}" for n in OBJECTIVES} | set(_USER_TARGETS))
    raise UntrustedConfig(
        f"{_source(run)}: {key}={value}: expected an objective of the registry ({', '.join(known)}; "
        "python -m runner.plot --config-dir adds a config folder's); not built"
    )


def _objective(run) -> object:
    """The run's objective (a runs-table row, a Series or a dict), built by the registry's factory it names
    (:func:`_factory`: never a ``_target_`` read from a file that no registry holds), with the keys of its
    resolved config's ``objective`` node."""
    node = json.loads(run["config"])["objective"]
    factory = _factory(run, node)
    return factory(**{k: v for k, v in node.items() if k != "_target_"})


# ----------------------------------------------------------------------------- theory beside the runs


def theory_rate(run) -> float | None:
    """The run's ``rate_theory`` (a runs-table row, a Series or a dict): ρ of ‖x_k − x*‖ from
    :func:`runner.theory.rate`; None where it is null, or the table predates the column."""
    return _finite(run.get(RATE_THEORY))


def theory_iterations(run, start_gap: float | None) -> float | None:
    """The iterations theory gives the run for f − f* ≤ its ``tol`` from ``start_gap`` = f_0 − f*:
    :func:`runner.theory.iterations_for` (ρ^(2k) (f_0 − f*) ≤ tol), inf where ρ ≥ 1; None without a
    rate, a start gap or a positive tol."""
    rho, tol = theory_rate(run), _finite(run.get("tol"))
    if rho is None or start_gap is None or not math.isfinite(start_gap) or not tol or tol <= 0:
        return None
    return float(iterations_for(rho, start_gap, tol))


def _theory_of(run):
    """``(objective, optimizer name, other hyperparameters)`` of a run for :mod:`runner.theory`: its
    objective built from the registry (:func:`_objective`), its optimizer's hyperparameters but lr and
    momentum; None for an optimizer outside the registry (scipy, one of the user's own)."""
    name = run.get("optimizer")
    if name not in OPTIMIZERS:
        return None
    node = json.loads(run["config"])["optimizer"]
    return _objective(run), name, {k: v for k, v in node.items() if k not in ("_target_", "lr", "momentum")}


def theory_optimum(run) -> dict | None:
    """:func:`runner.theory.optimal` for the run's objective and optimizer, its other hyperparameters
    (dampening, weight decay) held, with its ``rate`` ρ*: ``{"lr", "momentum", "rate"}`` (gd: no
    momentum), or None where the objective or the optimizer has no theory."""
    if (found := _theory_of(run)) is None:
        return None
    objective, name, hyper = found
    best = optimal(objective, name, **hyper)
    return None if best is None else {**best, "rate": rate(objective, name, **hyper, **best)}


def theory_rates(run, lr, momentum) -> np.ndarray | None:
    """:func:`runner.theory.rate` of the run's objective and optimizer over arrays of ``lr`` and
    ``momentum`` (broadcast), its other hyperparameters held; None without a theory."""
    if (found := _theory_of(run)) is None:
        return None
    objective, name, hyper = found
    return rate(objective, name, **hyper, lr=lr, momentum=momentum)
