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
    if runs.empty:
        return []
    config = pd.factorize(runs["config_id"], use_na_sentinel=False)[0]
    keys = []
    for key in runs.columns:
        if key in _NOT_SETTINGS:
            continue
        codes = _codes(runs[key])
        if codes.min() == codes.max():
            continue
        first = np.empty(config.max() + 1, dtype=codes.dtype)
        first[config] = codes  # one value a config: each config's value, whichever of its runs wrote it last
        if (first[config] != codes).any():
            continue
        keys.append(key)
    return keys


def _codes(column: pd.Series) -> np.ndarray:
    """One integer per distinct value of ``column``, null included (lists compared as tuples)."""
    values = column.map(_hashable) if column.dtype == object else column
    return pd.factorize(values, use_na_sentinel=False)[0]


def fixed_settings(runs: pd.DataFrame) -> str:
    """The config keys with one value among the runs that have them, not :func:`setting_keys` nor the
    seed: ``objective=shifted_quadratic, optimizer=momentum, max_iter=2000, tol=1e-12``."""
    varying = set(setting_keys(runs))
    parts = []
    for key in runs.columns:
        if key in varying or (key in _NOT_SETTINGS and key not in ("objective", "optimizer")) or key == "trace.x":
            continue
        column = runs[key].map(_hashable) if runs[key].dtype == object else runs[key]
        values = pd.unique(column.dropna())
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
    Computed once at the end of a sweep and shared: :func:`best_table` and the report take it as it is.
    """
    groups = [key for key in ("sweep", "objective", "optimizer") if key in runs.columns]
    columns = [*groups, "rank", "config_id", "setting", "measure", "final", "iterations", "runs", "no_result", "run_id"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    runs = runs.reset_index(drop=True)
    scores = run_scores(runs)
    final = scores["final"].to_numpy(dtype=float)
    iterations = scores["iterations"].to_numpy(dtype=float)
    # Each run's group and config as integers that sort as their values do (a null objective is a group too).
    group, labels = np.zeros(len(runs), dtype=np.int64), []
    for key in groups:
        codes, uniques = pd.factorize(runs[key].astype(object).where(runs[key].notna(), ""), sort=True)
        group, labels = group * len(uniques) + codes, [*labels, uniques]
    config_codes, config_ids = pd.factorize(runs["config_id"], sort=True, use_na_sentinel=False)
    configs, first, member = np.unique(group * len(config_ids) + config_codes, return_index=True, return_inverse=True)
    size = np.bincount(member, minlength=len(configs))
    # Its best run: the first by (final, iterations) among its repetitions, in the table's order on ties.
    by_score = np.lexsort((np.arange(len(runs)), iterations, final, member))
    best_run = by_score[np.cumsum(size) - size]
    table = pd.DataFrame(
        {
            "config_id": config_ids[config_codes[first]],
            "final": _medians(final, member, size),
            "iterations": _medians(iterations, member, size),
            "runs": size,
            "no_result": np.bincount(member, weights=np.isinf(final), minlength=len(configs)).astype(int),
            "run_id": runs["run_id"].to_numpy()[best_run],
        }
    )
    table["measure"] = np.where(np.bincount(member, weights=~scores["gap"].to_numpy(bool)) == 0, "f − f*", "f")
    table["setting"] = _settings(runs, group, first)
    code = group[first]
    for key, uniques in reversed(list(zip(groups, labels, strict=True))):
        code, index = np.divmod(code, len(uniques))
        table.insert(0, key, np.asarray(uniques, dtype=object)[index])
    # Best first in each group: by median final, then median iterations, then config_id; nulls last.
    order = np.lexsort((config_codes[first], table["iterations"], table["final"], group[first]))
    table = table.iloc[order].reset_index(drop=True)
    starts = np.flatnonzero(np.r_[True, np.diff(group[first][order]) != 0])
    table["rank"] = np.arange(len(table)) - np.repeat(starts, np.diff(np.r_[starts, len(table)])) + 1
    if top is not None:
        table = table[table["rank"] <= top]
    return table[columns].reset_index(drop=True)


def _medians(values: np.ndarray, member: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The median of each config's ``values`` (``member``: each value's config, ``size``: each config's count),
    nulls left out, null when a config has none, as pandas' median takes it."""
    ordered = values[np.lexsort((values, member))]  # each config's values in a row, ascending, nulls last
    valid = np.bincount(member, weights=~np.isnan(values), minlength=len(size)).astype(int)
    start = np.cumsum(size) - size
    low, high = start + np.maximum(valid - 1, 0) // 2, start + valid // 2
    return np.where(valid > 0, (ordered[low] + ordered[np.minimum(high, len(values) - 1)]) / 2, np.nan)


def _settings(runs: pd.DataFrame, group: np.ndarray, first: np.ndarray) -> list[str]:
    """Each config's ``setting``: ``key=value`` for the keys that vary in its group, or ``-``. ``group``: each
    run's group; ``first``: each config's first run."""
    settings = np.full(len(first), "-", dtype=object)
    for code in np.unique(group[first]):
        mine = np.flatnonzero(group[first] == code)
        keys = setting_keys(runs if len(mine) == len(first) else runs[group == code])
        texts = []
        for key in keys:
            known = {}  # each value's text once: a grid repeats a few values over many configs
            texts.append([f"{key}={_known_text(v, known)}" for v in runs[key].to_numpy(dtype=object)[first[mine]]])
        if texts:
            settings[mine] = [", ".join(parts) for parts in zip(*texts, strict=True)]
    return settings.tolist()


def _known_text(value, known: dict) -> str:
    try:
        return known[value] if value in known else known.setdefault(value, _text(value))
    except TypeError:  # a list
        return _text(value)


def best_table(runs: pd.DataFrame | None = None, top: int = 3, *, best: pd.DataFrame | None = None) -> str:
    """The best ``top`` configs of each group as a few lines of text, for the end of a sweep: the same
    numbers as the report's table. ``best``: :func:`best_configs` of the runs, when the caller has it
    (then ``runs`` is not needed and nothing is ranked twice); else they are ranked from ``runs``."""
    best = best_configs(runs, top) if best is None else best[best["rank"] <= top]
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
                f"  {row.rank}. {row.setting}: {number(row.final)} after {number(row.iterations)} iterations{seeds}"
            )
    return "\n".join(lines)


def number(value) -> str:
    """A final value or an iteration count as the report and the end of a sweep print it: 4 significant
    digits, a whole number below 1e6 as it is, ``no result`` for +inf (a run without one), ``n/a`` for null
    (a count no run of the config recorded)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if not math.isfinite(value):
        return "no result"
    return f"{value:.4g}" if value != int(value) or abs(value) >= 1e6 else str(int(value))
