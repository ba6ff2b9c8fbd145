"""Which configs won: the runs table ranked per objective and optimizer (and sweep, when several).

The rule, used by the report and by the table printed at the end of a sweep:

* a run's **final** is f - f* where its f* is known, else f; its **iterations** are the updates it
  did before its stop rule fired;
* a run that did not end with a result (``failed``, ``diverged``, ``interrupted``) counts as +inf
  in both, so a config most of whose seeds fail ranks after every config that has a result;
* a config (one ``config_id``: its repetitions over seeds) has the median of its runs' final and
  iterations; configs are ranked by median final, ties (several configs reaching f* exactly)
  broken by median iterations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from runner.tables import _RESULT_FIELDS, _RUN_FIELDS

# Statuses that are not results: their runs rank last (as +inf).
NO_RESULT = ("failed", "diverged", "interrupted")
# Columns of the runs table that are not config keys, or not ones that tell configs apart.
_NOT_SETTINGS = {*_RUN_FIELDS, *_RESULT_FIELDS, "config", "sweep", "seed", "objective", "optimizer"}


def run_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's ``final`` (f - f*, or f where f* is unknown) and ``iterations``, +inf for runs
    without a result (:data:`NO_RESULT`, or a final that is not finite); ``gap``: whether final is f - f*."""
    f = pd.to_numeric(runs["f"], errors="coerce").astype(float)
    f_star = pd.to_numeric(runs.get("f_star", pd.Series(np.nan, index=runs.index)), errors="coerce").astype(float)
    gap = f_star.notna() & np.isfinite(f_star)
    final = f.where(~gap, f - f_star)
    iterations = pd.to_numeric(runs["iterations"], errors="coerce").astype(float)
    bad = runs["status"].isin(NO_RESULT) | ~np.isfinite(final)
    return pd.DataFrame(
        {"final": final.mask(bad, np.inf), "iterations": iterations.mask(bad, np.inf), "gap": gap},
        index=runs.index,
    )


def setting_keys(runs: pd.DataFrame) -> list[str]:
    """The config columns whose value varies among ``runs`` and not among the repetitions of one config
    (``objective.seed: ${seed}`` follows the seed): what tells one config from another."""
    keys = []
    for key in runs.columns:
        if key in _NOT_SETTINGS:
            continue
        values = runs[key].map(_hashable)
        if values.nunique(dropna=False) < 2:
            continue
        if (values.groupby(runs["config_id"]).nunique(dropna=False) > 1).any():
            continue
        keys.append(key)
    return keys


def fixed_settings(runs: pd.DataFrame) -> str:
    """The config keys with one value among the runs that have them, not :func:`setting_keys` nor the
    seed: ``objective=shifted_quadratic, optimizer=momentum, max_iter=2000, tol=1e-12``."""
    varying = set(setting_keys(runs))
    parts = []
    for key in runs.columns:
        if key in varying or (key in _NOT_SETTINGS and key not in ("objective", "optimizer")) or key == "trace.x":
            continue
        values = runs[key].map(_hashable).dropna().unique()
        if len(values) == 1:
            parts.append(f"{key}={_text(values[0])}")
    return ", ".join(parts)


def _hashable(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_hashable(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _text(value) -> str:
    value = _hashable(value)
    if value is None:
        return "default"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)


def best_configs(runs: pd.DataFrame, top: int | None = None) -> pd.DataFrame:
    """The configs of ``runs`` (a runs table, :func:`runner.load_runs`) ranked per group: ``sweep`` (when
    the table has it), ``objective`` and ``optimizer``. One row per config, best first in each group.

    Columns: the group's keys; ``rank`` (1 is best); ``config_id``; ``setting`` (the values of the keys
    that vary in the group, ``lr=0.5, optimizer.momentum=0.6``, or ``-`` when one config); ``measure``
    (``f − f*`` or ``f``); ``final`` and ``iterations`` (medians over seeds, +inf for runs without a
    result, see the module docstring); ``runs``; ``no_result`` (how many of them failed, diverged or
    were interrupted); ``run_id`` of its best run. ``top``: at most that many rows per group.
    """
    groups = [key for key in ("sweep", "objective", "optimizer") if key in runs.columns]
    columns = [*groups, "rank", "config_id", "setting", "measure", "final", "iterations", "runs", "no_result", "run_id"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    runs = runs.reset_index(drop=True)
    scores = run_scores(runs)
    keyed = runs[groups].astype(object).where(runs[groups].notna(), "")  # a null objective is a group too
    keyed["config_id"] = runs["config_id"]
    scored = keyed.assign(
        final=scores["final"],
        iterations=scores["iterations"],
        bad=np.isinf(scores["final"]),
        gap=scores["gap"],
        run_id=runs["run_id"],
    )
    by_config = scored.groupby([*groups, "config_id"], sort=False, dropna=False)
    table = by_config.agg(
        final=("final", "median"),
        iterations=("iterations", "median"),
        runs=("run_id", "size"),
        no_result=("bad", "sum"),
        gap=("gap", "all"),
    ).reset_index()
    # Its best run: the first by (final, iterations) among its repetitions.
    best_runs = scored.sort_values(["final", "iterations"], kind="stable").drop_duplicates([*groups, "config_id"])
    table = table.merge(best_runs[[*groups, "config_id", "run_id"]], on=[*groups, "config_id"], how="left")
    # What tells the configs of a group apart: the keys that vary there, as text.
    label = keyed[groups].apply(tuple, axis=1) if groups else pd.Series([()] * len(runs))
    settings = {}
    for group_key, members in runs.groupby(label, sort=False):
        keys = setting_keys(members)
        for _, run in members.drop_duplicates("config_id").iterrows():
            settings[(*group_key, run["config_id"])] = ", ".join(f"{k}={_text(run[k])}" for k in keys) or "-"
    table["setting"] = [settings[tuple(row)] for row in table[[*groups, "config_id"]].itertuples(index=False)]
    table["measure"] = np.where(table["gap"], "f − f*", "f")
    table["no_result"] = table["no_result"].astype(int)
    table = table.sort_values([*groups, "final", "iterations", "config_id"], kind="stable")
    table["rank"] = table.groupby(groups, sort=False).cumcount() + 1 if groups else np.arange(1, len(table) + 1)
    if top is not None:
        table = table[table["rank"] <= top]
    return table[columns].reset_index(drop=True)


def best_table(runs: pd.DataFrame, top: int = 3) -> str:
    """The best ``top`` configs of each group as a few lines of text, for the end of a sweep:
    the same numbers as the report's table (:func:`best_configs`)."""
    best = best_configs(runs, top)
    if best.empty:
        return ""
    groups = [key for key in ("sweep", "objective", "optimizer") if key in best.columns]
    lines = []
    for key, rows in best.groupby(groups, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        lines.append("best: " + ", ".join(str(k) for k in key) + f"  ({rows['measure'].iloc[0]}, median over seeds)")
        for row in rows.itertuples():
            seeds = f"  ({row.runs} runs, {row.no_result} without a result)" if row.runs > 1 else ""
            lines.append(
                f"  {row.rank}. {row.setting}: {_number(row.final)} after {_number(row.iterations)} iterations{seeds}"
            )
    return "\n".join(lines)


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "no result"
    return f"{value:.4g}" if value != int(value) or abs(value) >= 1e6 else str(int(value))
