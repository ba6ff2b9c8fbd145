"""Which configs won: the runs table ranked per objective and optimizer (and sweep, when several).

The rule, used by the report and by the table printed at the end of a sweep:

* a run's **final** is f - f* where its f* is known, else f; its **iterations** are the updates it
  did before its stop rule fired;
* a run that did not end with a result (``failed``, ``diverged``, ``interrupted``) counts as +inf
  in both, so a config most of whose seeds fail ranks after every config that has a result;
* a config (one ``config_id``: its repetitions over seeds) has the median of its runs' final and
  iterations; configs are ranked by median final, ties (several configs reaching f* exactly)
  broken by median iterations.

The rule is written once, in numpy, over a table's columns as pandas would hold them: :func:`rank_configs`
reads a pyarrow table (what :func:`runner.tables.write_tables` returns) from its buffers, without pandas,
so a sweep's end that writes no page never imports it (0.35 s); :func:`best_configs` reads a DataFrame.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from runner.tables import _RESULT_FIELDS, _RUN_FIELDS

if TYPE_CHECKING:
    import pandas as pd

# Statuses that are not results: their runs rank last (as +inf).
NO_RESULT = ("failed", "diverged", "interrupted")
# Columns of the runs table that are not config keys, or not ones that tell configs apart.
_NOT_SETTINGS = {*_RUN_FIELDS, *_RESULT_FIELDS, "config", "sweep", "seed", "objective", "optimizer"}
# The keys configs are ranked within, those of them a table has.
_GROUPS = ("sweep", "objective", "optimizer")
# The columns of the ranking after its groups' keys.
_COLUMNS = ("rank", "config_id", "setting", "measure", "final", "iterations", "runs", "no_result", "run_id")


class _FrameColumns:
    """A DataFrame's columns as the ranking reads them (:class:`_TableColumns` reads a pyarrow table's)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame.reset_index(drop=True)
        self.names = list(frame.columns)
        self.rows = len(frame)

    def floats(self, name: str) -> np.ndarray:
        """The column as numbers, null (or not a number) as NaN."""
        import pandas as pd

        return pd.to_numeric(self.frame[name], errors="coerce").astype(float).to_numpy()

    def codes(self, name: str) -> np.ndarray:
        """One integer per distinct value of the column, null one value too (lists compared as tuples)."""
        import pandas as pd

        column = self.frame[name]
        return pd.factorize(column.map(_hashable) if column.dtype == object else column, use_na_sentinel=False)[0]

    def sorted_codes(self, name: str, null=None):
        """One integer per distinct value of the column, sorting as the values do, null as ``null`` (when None:
        one value, last); and the values, an array of the column's type (``null`` given: of their own)."""
        import pandas as pd

        column = self.frame[name]
        if null is None:
            return pd.factorize(column, sort=True, use_na_sentinel=False)
        codes, uniques = pd.factorize(column.astype(object).where(column.notna(), null), sort=True)
        return codes, pd.Series(np.asarray(uniques, dtype=object)).array  # the type pandas gives a column of them

    def isin(self, name: str, values) -> np.ndarray:
        """Whether each value of the column is one of ``values``."""
        return self.frame[name].isin(values).to_numpy()

    def values(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The column's values at ``rows``, as Python objects."""
        return self.frame[name].to_numpy(dtype=object)[rows]

    def take(self, name: str, rows: np.ndarray):
        """The column's values at ``rows``, an array of the type pandas gives a column of them."""
        column = self.frame[name]
        return column.to_numpy()[rows] if column.dtype == object else column.array[rows]


class _TableColumns:
    """A pyarrow table's columns as the ranking reads them, with the values ``to_pandas`` gives (an integer column
    with nulls as floats, null as NaN). Read from Arrow's buffers and ``to_pylist``: pyarrow's own conversions to
    numpy import pandas, and its compute functions pyarrow.compute (0.1 s)."""

    def __init__(self, table: pa.Table):
        self.table = table
        self.names = table.column_names
        self.rows = table.num_rows
        self._python: dict[str, list] = {}
        self._codes: dict[str, tuple[np.ndarray, list]] = {}

    def floats(self, name: str) -> np.ndarray:
        numbers = _numbers(self.table.column(name))
        if numbers is None:  # text: numbers where it parses as one, as pandas.to_numeric(errors="coerce")
            return np.array([_float(v) for v in self.python(name)], dtype=float)
        return numbers.astype(float)

    def codes(self, name: str) -> np.ndarray:
        return self._factorized(name)[0]

    def sorted_codes(self, name: str, null=None) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = self._factorized(name)
        values = [null if u is None else u for u in uniques]
        distinct = [v for v in dict.fromkeys(values) if v is not None]  # a null as "" is "" too
        try:
            distinct.sort()
        except TypeError:  # values of several types: by type, then value
            distinct.sort(key=lambda v: (type(v).__name__, str(v)))
        distinct += [None] if None in values else []  # null last
        position = {v: i for i, v in enumerate(distinct)}
        return np.array([position[v] for v in values], dtype=np.int64)[codes], _objects(distinct)

    def isin(self, name: str, values) -> np.ndarray:
        codes, uniques = self._factorized(name)
        return np.isin(codes, [i for i, u in enumerate(uniques) if u in values])

    def _factorized(self, name: str) -> tuple[np.ndarray, list]:
        """One integer per distinct value of the column, null (and NaN) one value, lists compared as tuples, and
        the values of the integers, null as None."""
        if name not in self._codes:
            column = self.table.column(name)
            numbers = _numbers(column)
            if numbers is None:
                text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
                self._codes[name] = _python_codes(self.python(name), text)
            else:  # one NaN, and -0.0 is 0.0, as pandas.factorize has them
                distinct, codes = np.unique(numbers, return_inverse=True)
                self._codes[name] = codes.reshape(-1), [None if v != v else v for v in distinct.tolist()]
        return self._codes[name]

    def values(self, name: str, rows: np.ndarray) -> np.ndarray:
        python = self.python(name)
        return _objects([python[i] for i in rows.tolist()])

    take = values

    def python(self, name: str) -> list:
        """The column as Python values, an integer column with nulls as floats (as ``to_pandas`` makes it)."""
        if name not in self._python:
            column = self.table.column(name)
            values = column.to_pylist()
            if pa.types.is_integer(column.type) and column.null_count:
                values = [None if v is None else float(v) for v in values]
            self._python[name] = values
        return self._python[name]


def _numbers(column: pa.ChunkedArray) -> np.ndarray | None:
    """An integer, float or bool column's values from its buffers, as ``to_pandas`` gives them: with nulls,
    floats with NaN for null; None for a column of another type."""
    type_ = column.type
    if pa.types.is_boolean(type_):
        dtype = np.dtype(bool)
    elif pa.types.is_integer(type_):
        dtype = np.dtype(f"{'i' if pa.types.is_signed_integer(type_) else 'u'}{type_.bit_width // 8}")
    elif pa.types.is_floating(type_):
        dtype = np.dtype(f"f{type_.bit_width // 8}")
    else:
        return None
    parts = [np.empty(0, dtype)]
    for chunk in column.chunks:
        if not len(chunk):
            continue
        validity, data = chunk.buffers()[:2]
        if pa.types.is_boolean(type_):  # one bit a value
            bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
            values = bits[chunk.offset : chunk.offset + len(chunk)].astype(bool)
        else:
            values = np.frombuffer(data, dtype, len(chunk), chunk.offset * dtype.itemsize)
        if chunk.null_count:
            valid = (
                np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[
                    chunk.offset : chunk.offset + len(chunk)
                ].astype(bool)
                if validity is not None
                else np.zeros(len(chunk), dtype=bool)
            )
            values = np.where(valid, values.astype(float), np.nan)
        parts.append(values)
    if column.null_count:
        parts = [part.astype(float) for part in parts]
    return np.concatenate(parts)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _python_codes(values: list, text: bool = False) -> tuple[np.ndarray, list]:
    """One integer per distinct value (null, NaN included, one value; lists as tuples), in order of appearance, and
    the values. ``text``: the values are strings or None, as they are."""
    keys = values if text else [_hashable(v) for v in values]
    index = {v: i for i, v in enumerate(dict.fromkeys(keys))}
    return np.fromiter(map(index.__getitem__, keys), np.int64, len(keys)), list(index)


def _objects(values: list) -> np.ndarray:
    """``values`` as a 1-d object array (a list of tuples too)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _scores(columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each run's final, iterations (+inf without a result) and whether its final is f - f*: the module's rule."""
    f = columns.floats("f")
    f_star = columns.floats("f_star") if "f_star" in columns.names else np.full(columns.rows, np.nan)
    gap = np.isfinite(f_star)
    final = np.where(gap, f - f_star, f)
    bad = columns.isin("status", NO_RESULT) | ~np.isfinite(final)
    return np.where(bad, np.inf, final), np.where(bad, np.inf, columns.floats("iterations")), gap


def run_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's ``final`` (f - f*, or f where f* is unknown) and ``iterations``, +inf for runs
    without a result (:data:`NO_RESULT`, or a final that is not finite); ``gap``: whether final is f - f*."""
    import pandas as pd

    final, iterations, gap = _scores(_FrameColumns(runs))
    return pd.DataFrame({"final": final, "iterations": iterations, "gap": gap}, index=runs.index)


def setting_keys(runs: pd.DataFrame) -> list[str]:
    """The config columns whose value varies among ``runs`` and not among the repetitions of one config
    (``objective.seed: ${seed}`` follows the seed): what tells one config from another."""
    if runs.empty:
        return []
    columns = _FrameColumns(runs)
    _, first, member = np.unique(columns.codes("config_id"), return_index=True, return_inverse=True)
    one_group = np.zeros(len(first), dtype=np.int64)
    return [key for key, in_group in _setting_keys(columns, one_group, first, member.reshape(-1)) if in_group[0]]


def _setting_keys(columns, config_group: np.ndarray, first: np.ndarray, member: np.ndarray) -> list:
    """``(key, in_group)`` for each config column, ``in_group[g]``: whether it is a setting of group ``g``,
    :func:`setting_keys` among the group's runs. ``config_group``: each config's group (0, 1, ...);
    ``first``: each config's first run; ``member``: each run's config."""
    run_group = config_group[member]
    groups = int(config_group.max()) + 1
    order = np.argsort(run_group, kind="stable")
    starts = np.searchsorted(run_group[order], np.arange(groups))
    found = []
    for key in columns.names:
        if key in _NOT_SETTINGS:
            continue
        codes = columns.codes(key)
        by_group = codes[order]
        varies = np.minimum.reduceat(by_group, starts) != np.maximum.reduceat(by_group, starts)
        # One value a config: every run of it has its first run's.
        mixed = np.bincount(run_group, weights=codes != codes[first][member], minlength=groups) > 0
        if (in_group := varies & ~mixed).any():
            found.append((key, in_group))
    return found


def fixed_settings(runs: pd.DataFrame) -> str:
    """The config keys with one value among the runs that have them, not :func:`setting_keys` nor the
    seed: ``objective=shifted_quadratic, optimizer=momentum, max_iter=2000, tol=1e-12``."""
    import pandas as pd

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
    :func:`rank_configs` ranks a pyarrow table by the same rule, without pandas.
    """
    import pandas as pd

    if runs.empty:
        return pd.DataFrame(columns=[*(key for key in _GROUPS if key in runs.columns), *_COLUMNS])
    return pd.DataFrame(_rank(_FrameColumns(runs), top))


def rank_configs(runs: pa.Table, top: int | None = None) -> dict[str, np.ndarray]:
    """:func:`best_configs` of a runs table as pyarrow reads it (:func:`runner.tables.write_tables`), read without
    pandas: its columns, in its order, as numpy arrays, each of one value a config."""
    if runs.num_rows == 0:
        return {key: np.empty(0, dtype=object) for key in (*(k for k in _GROUPS if k in runs.column_names), *_COLUMNS)}
    return _rank(_TableColumns(runs), top)


def _rank(columns, top: int | None) -> dict:
    """The ranking of :func:`best_configs`, from ``columns`` (:class:`_FrameColumns`, :class:`_TableColumns`): its
    columns as arrays, of the types the columns' reader gives them."""
    groups = [key for key in _GROUPS if key in columns.names]
    final, iterations, gap = _scores(columns)
    # Each run's group and config as integers that sort as their values do (a null objective is a group too).
    group, labels = np.zeros(columns.rows, dtype=np.int64), []
    for key in groups:
        codes, uniques = columns.sorted_codes(key, null="")
        group, labels = group * len(uniques) + codes, [*labels, uniques]
    config_codes, config_ids = columns.sorted_codes("config_id")
    configs, first, member = np.unique(group * len(config_ids) + config_codes, return_index=True, return_inverse=True)
    member = member.reshape(-1)
    size = np.bincount(member, minlength=len(configs))
    # Its best run: the first by (final, iterations) among its repetitions, in the table's order on ties.
    by_score = np.lexsort((np.arange(columns.rows), iterations, final, member))
    best_run = by_score[np.cumsum(size) - size]
    medians = _medians(final, member, size), _medians(iterations, member, size)
    # Best first in each group: by median final, then median iterations, then config_id; nulls last.
    order = np.lexsort((config_codes[first], medians[1], medians[0], group[first]))
    _, config_group = np.unique(group[first], return_inverse=True)  # each config's group: 0, 1, ...
    table, code = {}, group[first][order]
    for key, uniques in reversed(list(zip(groups, labels, strict=True))):
        code, index = np.divmod(code, len(uniques))
        table = {key: uniques[index], **table}
    starts = np.flatnonzero(np.r_[True, np.diff(group[first][order]) != 0])
    table["rank"] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)])) + 1
    table["config_id"] = config_ids[config_codes[first][order]]
    table["setting"] = _settings(columns, config_group.reshape(-1), first, member)[order]
    no_gap = np.bincount(member, weights=~gap, minlength=len(configs))
    table["measure"] = np.where(no_gap[order] == 0, "f − f*", "f")
    table["final"], table["iterations"] = medians[0][order], medians[1][order]
    table["runs"] = size[order]
    table["no_result"] = np.bincount(member, weights=np.isinf(final), minlength=len(configs)).astype(int)[order]
    table["run_id"] = columns.take("run_id", best_run[order])
    if top is not None:
        keep = table["rank"] <= top
        table = {key: values[keep] for key, values in table.items()}
    return table


def _medians(values: np.ndarray, member: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The median of each config's ``values`` (``member``: each value's config, ``size``: each config's count),
    nulls left out, null when a config has none, as pandas' median takes it."""
    ordered = values[np.lexsort((values, member))]  # each config's values in a row, ascending, nulls last
    valid = np.bincount(member, weights=~np.isnan(values), minlength=len(size)).astype(int)
    start = np.cumsum(size) - size
    low, high = start + np.maximum(valid - 1, 0) // 2, start + valid // 2
    return np.where(valid > 0, (ordered[low] + ordered[np.minimum(high, len(values) - 1)]) / 2, np.nan)


def _settings(columns, config_group: np.ndarray, first: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Each config's ``setting``: ``key=value`` for the keys that vary in its group, or ``-``. ``config_group``:
    each config's group (0, 1, ...); ``first``: each config's first run; ``member``: each run's config."""
    settings = np.full(len(first), "-", dtype=object)
    keys = _setting_keys(columns, config_group, first, member)
    for code in range(int(config_group.max()) + 1):
        mine = np.flatnonzero(config_group == code)
        texts = []
        for key, in_group in keys:
            if in_group[code]:
                known = {}  # each value's text once: a grid repeats a few values over many configs
                values = zip(columns.values(key, first[mine]), first[mine].tolist(), strict=True)
                texts.append([f"{key}={_setting_text(columns, key, v, run, known)}" for v, run in values])
        if texts:
            settings[mine] = [", ".join(parts) for parts in zip(*texts, strict=True)]
    return settings


def _setting_text(columns, key: str, value, run: int, known: dict) -> str:
    """``value``'s text (:func:`_known_text`); where it reads ``default`` (a null column), the value as run
    ``run`` configured it (:func:`_as_configured`), read only then, so a grid's values stay a dict lookup."""
    text = _known_text(value, known)
    return _as_configured(columns, key, run) if text == "default" else text


def _as_configured(columns, key: str, run: int) -> str:
    """The text of ``key`` in run ``run``'s config where its column is null: ``default`` when the config has it
    null too (the objective's own x0), else the value as configured, which its column could not hold (a failed
    run's ``lr=abc``)."""
    value = None
    if "config" in columns.names and isinstance(text := columns.values("config", np.array([run]))[0], str):
        value = json.loads(text)
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    return _text(value)


def _known_text(value, known: dict) -> str:
    try:
        return known[value] if value in known else known.setdefault(value, _text(value))
    except TypeError:  # a list
        return _text(value)


def best_table(
    runs: pd.DataFrame | pa.Table | None = None, top: int = 3, *, best: pd.DataFrame | dict | None = None
) -> str:
    """The best ``top`` configs of each group as a few lines of text, for the end of a sweep: the same
    numbers as the report's table. ``best``: :func:`best_configs` (or :func:`rank_configs`) of the runs, when the
    caller has it (then ``runs`` is not needed and nothing is ranked twice); else they are ranked from ``runs``,
    a DataFrame or a pyarrow table."""
    if best is None:
        best = rank_configs(runs, top) if isinstance(runs, pa.Table) else best_configs(runs, top)
    if not isinstance(best, dict):  # a DataFrame
        best = {key: best[key].to_numpy() for key in best.columns}
    keep = np.flatnonzero(best["rank"] <= top) if len(best["rank"]) else np.empty(0, dtype=np.int64)
    rows: dict[tuple, list[int]] = {}  # each group's rows, groups in order of appearance
    groups = [best[key] for key in _GROUPS if key in best]
    for i in keep.tolist():
        rows.setdefault(tuple(_hashable(values[i]) for values in groups), []).append(i)
    lines = []
    for mine in rows.values():
        first = mine[0]
        label = ", ".join(str(values[first]) for values in groups)
        if best["final"][first] == math.inf:  # ranked first with no result: none of the group's configs has one
            lines.append(f"best: {label}  (no config has a result)")
            continue
        lines.append(f"best: {label}  ({best['measure'][first]}, median over seeds)")
        for i in mine:
            runs_, failed = best["runs"][i], best["no_result"][i]
            seeds = f"  ({runs_} runs, {failed} without a result)" if runs_ > 1 else ""
            final, iterations = number(best["final"][i]), number(best["iterations"][i])
            # a config without a result has no iteration count to give
            outcome = final if best["final"][i] == math.inf else f"{final} after {iterations} iterations"
            lines.append(f"  {best['rank'][i]}. {best['setting'][i]}: {outcome}{seeds}")
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
