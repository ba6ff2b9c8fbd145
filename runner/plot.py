"""Figures of a sweep (or of one run), drawn from its parquet files alone.

``draw(path)`` reads ``runs.parquet`` and ``traces.parquet`` through
:func:`runner.sweep.load_runs` and :func:`runner.sweep.load` (a single run's
folder works too), draws every figure that fits the data and writes each as
PNG and PDF into ``path/figures/``. ``python -m runner.plot DIR`` does the same
from the command line. The figures, each drawn only where it applies:

=========================  ==========================================================
``convergence_iteration``  f - f* (f where f* is unknown) against iteration, log y;
                           one line per value of the swept hyperparameter, one
                           panel per value of the other swept keys.
``convergence_evaluations`` the same against function evaluations (``nfev``), when
                           evaluations are not simply iterations + 1 (scipy).
``momentum``               vanilla (momentum 0) against each momentum value, with
                           the iterations to reach the tolerance in the legend.
``paths``                  iterate paths on the contours of a 2-D objective.
``heatmap_lr_momentum``    final f - f* and iterations over an lr x momentum grid,
                           with the theoretical stability boundary on quadratics.
``objective_1d``           a 1-D objective and its derivative, critical points
                           marked, with the runs' iterates on the curve.
=========================  ==========================================================

Conventions shared by the figures:

* **Swept keys** (:func:`swept_keys`) are the config columns whose value varies
  across runs. The seed, and columns that follow it (``objective.seed: ${seed}``),
  make repetitions, not sweeps. The line colour follows ``lr`` when it is swept,
  else the swept key with the most values; the other swept keys make panels.
* **Repetitions** (runs sharing a ``config_id``) are drawn as their median with a
  25-75 % band (:func:`repetition_quantiles`): at each x every run counts with
  its last recorded value at or before x, so a run that stopped early keeps its
  final value, and a diverged run counts as +inf.
* **Diverged runs** keep their finite rows; the y range comes from the runs that
  did not diverge (and every run's start), and an ``x`` marks where a diverged
  run diverged: its last finite value, or, when that is off the top, the point
  where its curve leaves the plot for good (the legend names the iteration).
* **Colours** are the Okabe-Ito colour-blind-safe palette (:data:`PALETTE`,
  yellow last, as it is faint on white), cycling line styles past 8 values;
  heatmaps use viridis. Figures are plain :class:`matplotlib.figure.Figure`
  objects, never pyplot state, so drawing works headless and leaves no
  figure open.

Each ``*_figure(traces, runs)`` function returns a Figure (or ``None`` when the
figure does not apply); its artists carry gids that name what they show:
``run:<run_id>`` (one run's rows), ``median:<config_id>`` and
``band:<config_id>`` (repetitions), ``diverged:<run_id>``, ``end:<run_id>``,
``path:<run_id>``, ``iterates:<run_id>``, ``stability``, ``critical:<kind>``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.patheffects import withStroke
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from runner.store import atomic_write
from runner.sweep import FIGURES_DIR, load, load_runs

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", ":", "-.")
FORMATS = ("png", "pdf")
SETTING_KEYS = ("objective", "optimizer", "lr", "max_iter", "tol", "grad_tol", "trace.x")
MOMENTUM = "optimizer.momentum"
# What a key is called on an axis or a legend title; other keys are shown as they are typed.
NAMES = {
    "lr": "learning rate",
    "optimizer.momentum": "momentum",
    "optimizer.method": "method",
    "optimizer.batch_size": "batch size",
    "optimizer.weight_decay": "weight decay",
    "objective.x0": "x0",
}
GAP = "f − f*"
DIVERGED_MARKER = {"marker": "x", "markersize": 9, "markeredgewidth": 2.2, "linestyle": "none", "zorder": 5,
                   "clip_on": False}  # fmt: skip
PANEL_SIZE = (4.6, 3.4)
# The trace columns the figures read; x_2 only tells 2-D runs from bigger ones (see _dims).
TRACE_COLUMNS = ["run_id", "iteration", "f", "nfev", "x_0", "x_1", "x_2"]
# Past these, a figure shows evenly spaced values of a swept key (the first and the last among
# them) and says so in its title; the tables, and the heatmap, hold every run.
MAX_LINES = len(PALETTE)  # lines per panel: one colour each
MAX_PANELS = 9  # a 3 x 3 grid
ANNOTATED_CELLS = 12  # heatmap cells carry their value up to this many per axis
MARKED_PATH = 200  # iterate paths up to this long mark each iterate


# --------------------------------------------------------------------------- drawing to files


def draw(path: str | Path) -> list[Path]:
    """Draw every figure that fits the runs below ``path`` into ``path/figures/``.

    ``path`` is a sweep folder or a single run's folder. Returns the files
    written, a PNG and a PDF per figure. A figure that fails is reported on
    stderr and skipped; the others are still drawn. Figure files of a previous
    draw that no longer apply are removed.
    """
    path = Path(path)
    runs = load_runs(path)
    traces = load(path, columns=TRACE_COLUMNS)
    out = path / FIGURES_DIR
    written = []
    for name, make in _FIGURES.items():
        try:
            fig = make(traces, runs)
        except Exception as err:  # one broken figure must not cost the others
            print(f"figures: {name} not drawn ({type(err).__name__}: {err})", file=sys.stderr, flush=True)
            fig = None
        for fmt in FORMATS:
            target = out / f"{name}.{fmt}"
            if fig is None:
                target.unlink(missing_ok=True)
                continue
            out.mkdir(exist_ok=True)
            metadata = {"CreationDate": None} if fmt == "pdf" else None  # reproducible PDFs
            atomic_write(target, lambda tmp, fig=fig, fmt=fmt, metadata=metadata: fig.savefig(
                tmp, format=fmt, dpi=150, metadata=metadata))  # fmt: skip
            written.append(target)
    return written


def figures(traces: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Figure]:
    """Every figure that applies, by file stem (see the module docstring)."""
    made = {name: make(traces, runs) for name, make in _FIGURES.items()}
    return {name: fig for name, fig in made.items() if fig is not None}


def main(argv: list[str] | None = None) -> int:
    """``python -m runner.plot DIR``: redraw the figures of a sweep or run folder from its files."""
    parser = argparse.ArgumentParser(
        prog="python -m runner.plot",
        description="Draw the figures of a sweep folder (runs.parquet, traces.parquet) or of a single run's "
        "folder (trace.parquet, summary.json) into DIR/figures/, as PNG and PDF.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="a sweep folder or a single run's folder")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"DIR={args.dir}: expected an existing folder")
    try:
        written = draw(args.dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for target in written:
        print(target)
    if not written:
        print(f"no figures: no run below {args.dir} has a trace", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- swept keys and labels


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
    if isinstance(value, (np.ndarray, list, tuple)):  # a list<double> column (betas, x0): hashable
        return tuple(_canon(v) for v in value)
    return value


def _column(runs: pd.DataFrame, key: str) -> pd.Series:
    if key not in runs.columns:
        return pd.Series([None] * len(runs), index=runs.index, dtype=object)
    return runs[key].map(_canon).astype(object)


def swept_keys(runs: pd.DataFrame) -> list[str]:
    """Config columns whose value varies across ``runs``, in column order.

    Not swept: the seed, and any column that varies among the repetitions of
    one config (it follows the seed, like ``objective.seed: ${seed}``); and an
    ``optimizer.*`` (``objective.*``) column that is null for some runs and one
    value for the others while the optimizer (objective) varies: it only says
    which optimizer has that key (``optimizer.momentum`` when gd meets momentum).
    """
    keys = []
    for key in config_keys(runs):
        values = _column(runs, key)
        if values.nunique(dropna=False) < 2:
            continue
        if "config_id" in runs.columns and (values.groupby(runs["config_id"]).nunique(dropna=False) > 1).any():
            continue
        namespace = key.partition(".")[0]
        if "." in key and values.nunique() <= 1 and _column(runs, namespace).nunique() > 1:
            continue
        keys.append(key)
    return keys


def _name(key: str | None) -> str:
    return NAMES.get(key, key) if key else ""


def _short(key: str | None) -> str:
    """The key as typed, without its group: for notes, where space is short."""
    return key.partition(".")[2] or key if key else ""


def _fmt(value) -> str:
    value = _canon(value)
    if value is None:
        return "default"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _ordered(values) -> list:
    """Distinct values, numbers ascending, else as text; null first."""
    distinct = list(dict.fromkeys(_canon(v) for v in values))
    present = [v for v in distinct if v is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    present.sort(key=(lambda v: v) if numeric else str)
    return ([None] if None in distinct else []) + present


def _hue_key(runs: pd.DataFrame, keys: list[str]) -> str | None:
    """The key the line colour follows: ``lr`` when swept, else the swept key with the most values."""
    if not keys:
        return None
    if "lr" in keys:
        return "lr"
    return max(keys, key=lambda k: (_column(runs, k).nunique(dropna=False), -keys.index(k)))


def _describe(runs: pd.DataFrame, skip=()) -> str:
    """The settings all ``runs`` share, for a title: ``shifted_quadratic, gd, lr = 0.01``."""
    parts = []
    for key in ("objective", "optimizer", "lr"):
        if key in skip or key not in runs.columns:
            continue
        values = _column(runs, key).dropna().unique()
        if len(values) == 1:
            parts.append(_fmt(values[0]) if key != "lr" else f"lr = {_fmt(values[0])}")
    return ", ".join(parts)


def _styles(values: list) -> dict:
    n = len(PALETTE)
    return {v: {"color": PALETTE[i % n], "linestyle": LINESTYLES[(i // n) % len(LINESTYLES)]}
            for i, v in enumerate(values)}  # fmt: skip


def _panels(runs: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """``runs`` split by the values of ``keys``: ``[(title, runs), ...]`` in value order."""
    if not keys:
        return [("", runs)]
    columns = {k: _column(runs, k) for k in keys}
    combos = pd.DataFrame(columns).apply(tuple, axis=1)
    orders = [_ordered(columns[k]) for k in keys]
    panels = []
    for combo in sorted(set(combos), key=lambda combo: tuple(order.index(v) for order, v in zip(orders, combo))):
        title = ", ".join(f"{_name(k)} = {_fmt(v)}" for k, v in zip(keys, combo))
        panels.append((title, runs[combos.map(lambda c, combo=combo: c == combo).astype(bool)]))
    return panels


@dataclass
class _Layout:
    """How a figure splits the runs: the colour key, its values, and the panels."""

    hue: str | None
    hue_values: list
    styles: dict
    panels: list  # [(title, runs)]
    traced: pd.DataFrame  # the runs drawn
    failed: pd.DataFrame
    swept: list = field(default_factory=list)
    shown: str = ""  # which values are drawn, when not all of them are: "8 of 40 learning rates"


def _layout(traces: pd.DataFrame, runs: pd.DataFrame, *, hue: str | None = None, extra_panel_keys=(),
            max_panels: int = MAX_PANELS) -> _Layout:  # fmt: skip
    traced_ids = set(traces["run_id"].unique()) if "run_id" in traces.columns and len(traces) else set()
    traced = runs[runs["run_id"].isin(traced_ids)]
    keys = swept_keys(traced)
    hue = hue if hue is not None else _hue_key(traced, keys)
    facets = [k for k in keys if k != hue] + [k for k in extra_panel_keys if k not in keys and k != hue]
    all_values = _ordered(_column(traced, hue)) if hue else [None]
    values = _evenly(all_values, MAX_LINES)
    all_panels = _panels(traced, facets)
    panels = _evenly(all_panels, max_panels)
    shown = []
    if len(values) < len(all_values):
        shown.append(f"{len(values)} of {len(all_values)} {_name(hue)} values")
        kept = set(values)
        panels = [(title, p[_column(p, hue).map(lambda v: v in kept).astype(bool)]) for title, p in panels]
    if len(panels) < len(all_panels):
        what = f"{_name(facets[0])} values" if len(facets) == 1 else "panels"
        shown.append(f"{len(panels)} of {len(all_panels)} {what}")
    if shown:
        traced = pd.concat([p for _, p in panels])
    failed = runs[~runs["run_id"].isin(traced_ids)]
    return _Layout(hue, values, _styles(values), panels, traced, failed, keys, " and ".join(shown))


def _evenly(items: list, most: int) -> list:
    """At most ``most`` of ``items``, evenly spaced, the first and the last among them."""
    if len(items) <= most:
        return items
    return [items[i] for i in np.unique(np.round(np.linspace(0, len(items) - 1, most)).astype(int))]


def _title(layout: _Layout, text: str) -> str:
    """A figure title: ``text``, and which values are shown when not all are."""
    shown = f"showing {layout.shown}, evenly spaced" if layout.shown else ""
    return "; ".join(part for part in (text, shown) if part)


def _hue_of(layout: _Layout, run: pd.Series):
    return _canon(run[layout.hue]) if layout.hue else None


def _in_hue_order(layout: _Layout, runs: pd.DataFrame) -> pd.DataFrame:
    order = {v: i for i, v in enumerate(layout.hue_values)}
    keys = [order[_hue_of(layout, run)] for _, run in runs.iterrows()]
    return runs.iloc[np.argsort(keys, kind="stable")]


def _not_drawn(layout: _Layout, all_runs: pd.DataFrame) -> list[Line2D]:
    """Legend entries (text only) naming the runs that have no trace to draw (failed)."""
    if layout.failed.empty:
        return []
    keys = swept_keys(all_runs)
    lines = []
    for _, run in layout.failed.head(5).iterrows():
        setting = ", ".join(f"{_short(k)} = {_fmt(run[k])}" for k in keys if _canon(run.get(k)) is not None)
        lines.append(textwrap.shorten(f"{run['status']}" + (f": {setting}" if setting else ""), 40, placeholder=" ..."))
    if len(layout.failed) > 5:
        lines.append(f"and {len(layout.failed) - 5} more")
    return [Line2D([], [], ls="none", label="not drawn, no trace:\n" + "\n".join(lines))]


# --------------------------------------------------------------------------- series and repetitions


def _by_run(traces: pd.DataFrame, run_ids=None) -> dict[str, pd.DataFrame]:
    """Each run's rows in iteration order; only those of ``run_ids`` when given (the runs drawn)."""
    if traces.empty or "run_id" not in traces.columns:
        return {}
    if run_ids is not None:
        traces = traces[traces["run_id"].isin(run_ids)]
    return {rid: rows.sort_values("iteration", kind="stable") for rid, rows in traces.groupby("run_id", sort=False)}


def _f_star(run) -> float | None:
    """The run's f* (a runs-table row, as a Series or a dict), None where it is unknown."""
    return _finite(run.get("f_star"))


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):  # None, pd.NA, text
        return None
    return value if math.isfinite(value) else None


def run_series(rows: pd.DataFrame, run: pd.Series, x: str = "iteration") -> tuple[np.ndarray, np.ndarray]:
    """One run's ``(x, y)``: every trace row, y = f - f* where the run's f* is known, else f."""
    y = rows["f"].to_numpy(dtype=float)
    f_star = _f_star(run)
    if f_star is not None:
        y = y - f_star
    return rows[x].to_numpy(dtype=float), y


def repetition_quantiles(series: list[tuple[np.ndarray, np.ndarray]], qs=(0.25, 0.5, 0.75)):
    """``(grid, [q_25, q_50, q_75])`` of repetitions given as ``(x, y)`` pairs, x non-decreasing.

    The grid is every x any run recorded, from the latest first x on. At each
    grid point a run counts with its y at its last x at or before it (carried
    forward past its end); a non-finite y counts as +inf. The quantiles are
    numpy's "linear" ones, with +inf handled (a quantile between a finite value
    and +inf is +inf).
    """
    start = max(x[0] for x, _ in series)
    grid = np.unique(np.concatenate([x for x, _ in series]))
    grid = grid[grid >= start]
    values = np.empty((len(series), len(grid)))
    for i, (x, y) in enumerate(series):
        y = np.where(np.isfinite(y), y, np.inf)
        values[i] = y[np.searchsorted(x, grid, side="right") - 1]
    ordered = np.sort(values, axis=0)
    n = len(series)
    out = []
    for q in qs:
        position = (n - 1) * q
        lo, hi = math.floor(position), math.ceil(position)
        t = position - lo
        a, b = ordered[lo], ordered[hi]
        if t == 0:
            out.append(a.copy())
            continue
        with np.errstate(invalid="ignore"):
            out.append(np.where(a == b, a, a + t * (b - a)))
    return grid, out


@dataclass
class _Curve:
    """What one config contributes to a convergence panel."""

    config_id: str
    hue_value: object
    runs: pd.DataFrame  # its runs that have traces
    x: np.ndarray
    y: np.ndarray
    band: tuple | None  # (grid, lo, hi) for repetitions
    per_run: dict  # run_id -> (x, y)
    gap: bool  # y is f - f*

    @property
    def diverged_ids(self) -> list[str]:
        """Runs that diverged: status ``diverged`` (f or its gradient not finite), or a last f that is not finite."""
        status = dict(zip(self.runs["run_id"], self.runs["status"]))
        return [rid for rid, (_, y) in self.per_run.items()
                if status.get(rid) == "diverged" or (len(y) and not np.isfinite(y[-1]))]  # fmt: skip

    @property
    def growing(self) -> bool:
        """Not converged, and ended an order of magnitude above its start: blowing up, not yet overflowed."""
        if (self.runs["status"] == "converged").all() or not len(self.y) or not np.isfinite(self.y[-1]):
            return False
        return _grew(self.y[0], self.y[-1])

    @property
    def wild(self) -> bool:
        return bool(self.diverged_ids) or self.growing

    def note(self) -> str:
        """What the line alone does not say: divergence, growth, interruption."""
        n = len(self.per_run)
        notes = []
        if self.diverged_ids:
            if n == 1:
                its = self.runs["iterations"].iloc[0]
                notes.append(f"diverged at iteration {int(its)}" if pd.notna(its) else "diverged")
            else:
                notes.append(f"{len(self.diverged_ids)} of {n} diverged")
        elif self.growing:
            notes.append(f"{GAP if self.gap else 'f'} grew to {self.y[-1]:.1e}")
        if (self.runs["status"] == "interrupted").any():
            notes.append("interrupted")
        return ", ".join(notes)


def _curves(layout: _Layout, runs: pd.DataFrame, by_run: dict, x: str) -> list[_Curve]:
    curves = []
    order = {v: i for i, v in enumerate(layout.hue_values)}
    groups = sorted(runs.groupby("config_id", sort=False), key=lambda g: order[_hue_of(layout, g[1].iloc[0])])
    for config_id, group in groups:
        per_run = {run["run_id"]: run_series(by_run[run["run_id"]], run, x) for _, run in group.iterrows()}
        gap = all(_f_star(run) is not None for _, run in group.iterrows())
        if len(per_run) == 1:
            (xs, ys), band = next(iter(per_run.values())), None
            finite = np.isfinite(ys)
            xs, ys = xs[finite], ys[finite]
        else:
            grid, (lo, mid, hi) = repetition_quantiles(list(per_run.values()))
            xs, ys, band = grid, mid, (grid, lo, hi)
        curves.append(_Curve(config_id, _hue_of(layout, group.iloc[0]), group, xs, ys, band, per_run, gap))
    return curves


# --------------------------------------------------------------------------- axis ranges


def _span_is_wide(values: np.ndarray, decades: float = 2.0) -> bool:
    values = values[np.isfinite(values) & (values > 0)]
    return len(values) > 0 and values.max() / values.min() >= 10**decades


def _y_range(curves: list[_Curve], log: bool) -> tuple[float, float]:
    """The y range of a set of curves: every start, and all finite data of the curves that are not
    wild (diverged or blowing up); a wild curve's values count only as far as they stay below that."""
    sane, wild = [], []
    for c in curves:
        sane.extend(y[:1] for _, y in c.per_run.values() if len(y))
        values = [c.y] + ([c.band[1], c.band[2]] if c.band else [])
        (wild if c.wild else sane).extend(values)
    sane = np.concatenate(sane) if sane else np.array([1.0])
    sane = sane[np.isfinite(sane) & ((sane > 0) if log else True)]
    if not len(sane):
        sane = np.array([1.0])
    top = sane.max()
    extra = np.concatenate(wild) if wild else np.array([])
    extra = extra[np.isfinite(extra) & (extra <= top) & ((extra > 0) if log else True)]
    lo = min(sane.min(), extra.min()) if len(extra) else sane.min()
    if log:
        pad = max(0.04 * math.log10(top / lo), 0.15) if top > lo else 0.5
        return lo / 10**pad, top * 10**pad
    pad = 0.05 * (top - lo) if top > lo else max(abs(top), 1.0) * 0.1
    return lo - pad, top + pad


def _exit_point(x: np.ndarray, y: np.ndarray, top: float, bottom: float = -np.inf):
    """Where a diverged run diverged, as drawn: its last finite point, or, when that lies off the
    plot, the first point of its final excursion out of ``[bottom, top]``, put on the edge."""
    finite = np.isfinite(y)
    x, y = x[finite], y[finite]
    if not len(y):
        return None
    outside = (y > top) | (y < bottom)
    if not outside[-1]:
        return float(x[-1]), float(y[-1])
    inside = np.flatnonzero(~outside)
    j = inside[-1] + 1 if len(inside) else 0
    return float(x[j]), float(top if y[j] > top else bottom)


# --------------------------------------------------------------------------- figure scaffolding


def _grid(n: int, *, ncols_max: int = 3, size=PANEL_SIZE, sharex=True, sharey=True, extra_width=2.2):
    ncols = min(n, ncols_max, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols + extra_width, size[1] * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    flat = list(axes.flat)
    for i, ax in enumerate(flat):
        if i >= n:
            ax.remove()
        elif i + ncols >= n:  # nothing drawn below it: it shows the x tick labels
            ax.xaxis.set_tick_params(labelbottom=True)
    return fig, flat[:n], ncols


def _diverged_handle(label: str) -> Line2D:
    """The legend entry of the diverged-run marker (:data:`DIVERGED_MARKER`)."""
    return Line2D([], [], color="0.3", label=label, **{k: v for k, v in DIVERGED_MARKER.items() if k != "clip_on"})


def _has_panel_below(i: int, n: int, ncols: int) -> bool:
    return i + ncols < n


def _legend(ax, handles: list, title: str | None) -> None:
    """The figure's legend, outside the right of ``ax`` (the top-right panel), top-aligned with it;
    attached to an axes so that constrained layout makes room for it below the figure title."""
    if handles:
        ax.legend(handles=handles, title=title or None, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0,
                  fontsize=9, title_fontsize=9, frameon=False, alignment="left")


def _suptitle(fig: Figure, text: str) -> None:
    if text:
        fig.suptitle(text, fontsize=11)


# --------------------------------------------------------------------------- convergence


def _y_label(gap: bool) -> str:
    return GAP if gap else "f"


def convergence_figure(traces: pd.DataFrame, runs: pd.DataFrame, x: str = "iteration") -> Figure | None:
    """f - f* (or f) against ``x`` (``"iteration"`` or ``"nfev"``): a line per value of the colour key,
    a panel per value of the other swept keys, median and 25-75 % band over repetitions."""
    if traces.empty:
        return None
    layout = _layout(traces, runs)
    return _convergence(traces, runs, layout, x)


def _convergence(traces, runs, layout: _Layout, x: str, *, label=None) -> Figure:
    """The convergence panels. ``label(curve)`` names a line in the legend (default: its colour key's
    value); a note (diverged, ...) joins the label when each colour has one line, else the panel title."""
    by_run = _by_run(traces, layout.traced["run_id"])
    panel_curves = [_curves(layout, panel_runs, by_run, x) for _, panel_runs in layout.panels]
    every = [c for cs in panel_curves for c in cs]
    gap = all(c.gap for c in every)
    values = np.concatenate([c.y[np.isfinite(c.y)] for c in every] or [np.array([1.0])])
    log_y = gap or (bool(np.all(values > 0)) and _span_is_wide(values, 2))  # f itself: log where it spans decades
    bottom, top = _y_range(every, log_y)
    ends = np.array([c.x[-1] for c in every if len(c.x) and not c.wild] or [1.0])
    log_x = x != "iteration" and _span_is_wide(ends, 2)
    name = (lambda c: _fmt(c.hue_value)) if layout.hue else (lambda c: _describe(c.runs) or "run")
    label = label or name
    one_line_per_colour = len(every) == len({c.hue_value for c in every})

    fig, axes, ncols = _grid(len(layout.panels))
    handles, per_panel_legends = {}, not one_line_per_colour and label is not name
    x_max, x_min = [], []
    for i, (ax, (title, _), curves) in enumerate(zip(axes, layout.panels, panel_curves)):
        # Limits and scales first: autoscaling over a diverged run's 1e308 would overflow.
        ax.set_ylim(bottom, top)
        ax.set_yscale("log" if log_y else "linear")
        ax.set_xscale("log" if log_x else "linear")
        notes = []
        for c in curves:
            style = layout.styles[c.hue_value]
            text = label(c)
            if c.note() and one_line_per_colour:
                text += f" ({c.note()})"
            elif c.note():
                notes.append(f"{_short(layout.hue)} = {_fmt(c.hue_value)}: {c.note()}" if layout.hue else c.note())
            kind = f"median:{c.config_id}" if c.band else f"run:{next(iter(c.per_run))}"
            # Against evaluations, f holds until the next recorded point: steps, not slopes.
            (line,) = ax.plot(c.x, c.y, lw=1.2 if c.band else 1.6, label=text, gid=kind,
                              drawstyle="default" if x == "iteration" else "steps-post", **style)  # fmt: skip
            if c.band:
                grid, lo, hi = c.band
                ok = np.isfinite(lo) & np.isfinite(hi)
                band = ax.fill_between(grid, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color=style["color"],
                                       alpha=0.25, lw=0, step=None if x == "iteration" else "post")  # fmt: skip
                band.set_gid(f"band:{c.config_id}")
            if layout.hue or c.note() or label is not name:  # a lone line needs no legend: the title names it
                handles.setdefault(text if one_line_per_colour or per_panel_legends else name(c), line)
            if len(c.x):
                x_min.append(c.x[0])
            if not c.wild and len(c.x):
                x_max.append(c.x[-1])
            elif c.growing and len(c.x):
                x_max.append(_exit_point(c.x, c.y, top)[0])
            for rid in c.diverged_ids:
                point = _exit_point(*c.per_run[rid], top, bottom if not log_y else -np.inf)
                if point is not None:
                    ax.plot([point[0]], [point[1]], color=style["color"], gid=f"diverged:{rid}", **DIVERGED_MARKER)
                    x_max.append(point[0])
            if label is not name:  # a comparison: mark where each run reached tol
                for rid, (xs, ys) in c.per_run.items():
                    status = c.runs.loc[c.runs["run_id"] == rid, "status"].iloc[0]
                    if status == "converged" and len(ys) and np.isfinite(ys[-1]):
                        ax.plot([xs[-1]], [ys[-1]], "o", ms=5, color=style["color"], gid=f"end:{rid}",
                                clip_on=False, zorder=4)  # fmt: skip
        if notes:  # one line each, up to three; past that, wrapped
            lines = notes if len(notes) <= 3 else textwrap.wrap("; ".join(notes), 60, max_lines=4, placeholder=" ...")
            title = "\n".join(([title] if title else []) + lines)
        if title:
            ax.set_title(title, fontsize=9)
        if per_panel_legends:
            ax.legend(fontsize=7.5, title=_name(layout.hue) or None, title_fontsize=7.5, loc="best")
        ax.grid(True, which="major", alpha=0.3)
        if i % ncols == 0:
            ax.set_ylabel(_y_label(gap) if gap or not any(c.gap for c in every) else f"{GAP} (f where f* unknown)")
        if not _has_panel_below(i, len(axes), ncols):
            ax.set_xlabel("iteration" if x == "iteration" else "function evaluations (nfev)")
    hi = max(x_max or [1.0])
    lo = min(x_min or [0.0])
    if log_x:
        axes[0].set_xlim(max(lo, 0.5) / 1.3, hi * 1.3)
    else:
        axes[0].set_xlim(lo, lo + (hi - lo) * 1.03 if hi > lo else lo + 1)

    legend = [] if per_panel_legends else list(handles.values())
    if any(c.diverged_ids for c in every):
        legend.append(_diverged_handle("diverged: last value on the plot"))
    if label is not name:
        legend.append(Line2D([], [], color="0.3", marker="o", ms=5, ls="none", label="reached tol"))
    legend += _not_drawn(layout, runs)
    _legend(axes[min(ncols, len(axes)) - 1], legend, None if per_panel_legends else _name(layout.hue))
    repeats = max((len(c.per_run) for c in every), default=1)
    title = _describe(layout.traced, skip=layout.swept)
    if repeats > 1:
        title += f"; median and 25–75 % band over {repeats} seeds"
    _suptitle(fig, _title(layout, title))
    return fig


def evaluations_figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """The convergence figure against function evaluations, when they tell more than iterations:
    some run's ``nfev`` is not ``iteration + 1`` (scipy's line searches, Powell's probes)."""
    if traces.empty or "nfev" not in traces.columns:
        return None
    nfev = pd.to_numeric(traces["nfev"], errors="coerce")
    if nfev.isna().all() or (nfev == traces["iteration"] + 1).all():
        return None
    return convergence_figure(traces[nfev.notna()], runs, x="nfev")


# --------------------------------------------------------------------------- momentum


def momentum_figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """Vanilla (momentum 0) against each momentum value, f - f* against iteration, with the
    iterations to reach the tolerance (and how many times fewer than vanilla) in the legend.

    Drawn when ``optimizer.momentum`` is swept and includes 0, at a fixed
    learning rate; when lr is swept too, :func:`heatmap_figure` is the comparison.
    """
    if traces.empty or MOMENTUM not in runs.columns:
        return None
    layout = _layout(traces, runs, hue=MOMENTUM)
    if MOMENTUM not in layout.swept or "lr" in layout.swept or 0 not in layout.hue_values:
        return None

    vanilla = {}
    for _, panel_runs in layout.panels:
        base = panel_runs[(_column(panel_runs, MOMENTUM) == 0) & (panel_runs["status"] == "converged")]
        vanilla.update(dict.fromkeys(panel_runs["run_id"], float(base["iterations"].median()) if len(base) else None))

    def label(curve: _Curve) -> str:
        m = curve.hue_value
        name = f"{_fmt(m)} (vanilla)" if m == 0 else _fmt(m)
        status = curve.runs["status"]
        n = len(curve.runs)
        if not (status == "converged").all():
            reached = int((status == "converged").sum())
            return f"{name}: {reached} of {n} reached tol" if n > 1 else f"{name}: tol not reached"
        its = float(curve.runs["iterations"].median())
        text = f"{name}: {its:g} iterations to tol" + (" (median)" if n > 1 else "")
        base = vanilla[curve.runs["run_id"].iloc[0]]
        if m != 0 and base:
            ratio = base / its
            text += f", {ratio:.1f}× fewer" if ratio >= 1 else f", {1 / ratio:.1f}× more"
        return text

    return _convergence(traces, runs, layout, "iteration", label=label)


# --------------------------------------------------------------------------- objective helpers


def _objective(run: pd.Series):
    """The run's objective, rebuilt from its resolved config."""
    from runner.run import build

    return build(json.loads(run["config"])["objective"], "objective")


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


def _objective_panel_keys(hue: str | None) -> list[str]:
    """A colour key that changes the function itself (not only x0) must split the panels."""
    if hue == "objective" or (hue and hue.startswith("objective.") and hue != "objective.x0"):
        return [hue]
    return []


def _low_dim_runs(traces, runs, dim: int, max_panels: int = MAX_PANELS):
    """``(layout, by_run, one_line_per_colour)`` of the ``dim``-D runs, or None when there are none."""
    if traces.empty:
        return None
    dims = _dims(traces)
    ids = [rid for rid, d in dims.items() if d == dim]
    if not ids:
        return None
    traces = traces[traces["run_id"].isin(ids)]
    panel_runs = runs[runs["run_id"].isin(ids) | ~runs["run_id"].isin(dims)]
    layout = _layout(traces, panel_runs, max_panels=max_panels)
    extra = _objective_panel_keys(layout.hue)
    if extra:
        layout = _layout(traces, panel_runs, hue=layout.hue, extra_panel_keys=extra, max_panels=max_panels)
    return layout, _by_run(traces, layout.traced["run_id"]), _one_line_per_colour(layout)


def _sane_points(points: list[np.ndarray], values: list[np.ndarray], wild_points, wild_values):
    """Points that set a view: every sane point, and a diverged run's points no higher than the sane ones."""
    pts = np.concatenate(points)
    vals = np.concatenate(values)
    ok = np.all(np.isfinite(pts), axis=1)
    cap = np.nanmax(np.where(np.isfinite(vals), vals, np.nan)) if np.isfinite(vals).any() else np.inf
    extra = []
    for p, v in zip(wild_points, wild_values):
        keep = np.all(np.isfinite(p), axis=1) & np.isfinite(v) & (v <= cap)
        extra.append(p[keep])
    return np.concatenate([pts[ok]] + extra)


def _wild(runs: pd.DataFrame, run_id: str, f: np.ndarray, x: np.ndarray) -> bool:
    """A run that diverged, or did not converge and ended with f an order of magnitude above its start."""
    status = runs.loc[runs["run_id"] == run_id, "status"].iloc[0]
    if status == "diverged" or not (np.isfinite(f[-1]) and np.all(np.isfinite(x[-1]))):
        return True
    return status != "converged" and _grew(f[0], f[-1])


def _grew(first: float, last: float) -> bool:
    """Ended an order of magnitude above its start: blowing up, whether or not it has overflowed yet."""
    return last - first > 9 * abs(first)


def _one_line_per_colour(layout: _Layout) -> bool:
    return len(layout.traced) == len({_hue_of(layout, run) for _, run in layout.traced.iterrows()})


def _box(points: np.ndarray, pad: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return lo - pad * span, hi + pad * span


def _leaves_box(p: np.ndarray, lo, hi) -> np.ndarray:
    return ~np.all(np.isfinite(p) & (p >= lo) & (p <= hi), axis=1)


def _exit(p: np.ndarray, lo, hi) -> tuple[int, np.ndarray]:
    """Where a diverged path is marked, and how much of it to draw.

    Returns ``(k, point)``: the path is drawn up to row ``k`` (the first row
    after it leaves the view ``[lo, hi]`` for good, or its last row when it
    never does), and ``point`` is where it crosses the view's edge on its way
    out (its last row when it stays inside).
    """
    outside = _leaves_box(p, lo, hi)
    if not outside[-1]:
        return len(p) - 1, p[-1]
    inside = np.flatnonzero(~outside)
    if not len(inside):
        return 0, p[0]
    j = int(inside[-1])
    a, b = p[j], p[j + 1]
    if not np.all(np.isfinite(b)):
        return j, a
    d = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > 0, (hi - a) / d, np.where(d < 0, (lo - a) / d, np.inf))
    return j + 1, a + min(1.0, float(np.min(t))) * d


# --------------------------------------------------------------------------- 2-D paths


def paths_figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """Iterate paths of 2-D runs on the contours of their objective, start and end marked, x* starred."""
    low_dim = _low_dim_runs(traces, runs, 2)
    if low_dim is None:
        return None
    layout, by_run, one_line_per_colour = low_dim
    fig, axes, ncols = _grid(len(layout.panels), sharex=False, sharey=False, size=(4.6, 4.0))
    handles = {}
    for i, (ax, (title, panel_runs)) in enumerate(zip(axes, layout.panels)):
        objective = _objective(panel_runs.iloc[0])
        paths = {rid: by_run[rid][["x_0", "x_1"]].to_numpy(float) for rid in panel_runs["run_id"]}
        fvals = {rid: by_run[rid]["f"].to_numpy(float) for rid in panel_runs["run_id"]}
        diverged = {rid for rid in paths if _wild(panel_runs, rid, fvals[rid], paths[rid])}
        sane = [rid for rid in paths if rid not in diverged]
        points = [paths[rid][:1] for rid in paths] + [paths[rid] for rid in sane]
        values = [fvals[rid][:1] for rid in paths] + [fvals[rid] for rid in sane]
        if objective.x_star is not None and len(objective.x_star) == 2:
            points.append(np.asarray(objective.x_star, float)[None])
            values.append(np.array([np.nan]))
        view = _sane_points(points, values, [paths[r] for r in diverged], [fvals[r] for r in diverged])
        lo, hi = _box(view)
        aspect = (hi[1] - lo[1]) / (hi[0] - lo[0])
        if 1 / 3 <= aspect <= 3:  # the true geometry, where it fits: gradients cross contours at right angles
            ax.set_aspect("equal", adjustable="box")
            # widen the narrow side (more of the landscape, not more white space), to at most 4:3
            center, half = (lo + hi) / 2, (hi - lo) / 2
            half = np.maximum(half, half[::-1] * 0.75)
            lo, hi = center - half, center + half
        span = hi - lo  # the grid reaches past the view, so that contours run to its edges
        g0, g1 = np.meshgrid(*(np.linspace(lo[k] - 0.5 * span[k], hi[k] + 0.5 * span[k], 241) for k in (0, 1)))
        F = objective.value(np.stack([g0, g1], axis=-1))
        inside = (g0 >= lo[0]) & (g0 <= hi[0]) & (g1 >= lo[1]) & (g1 <= hi[1]) & np.isfinite(F)
        levels = np.unique(np.quantile(F[inside], np.linspace(0, 1, 16)[1:-1] ** 1.5))
        if len(levels) > 1:
            ax.contour(g0, g1, F, levels=levels, colors="0.65", linewidths=0.7, zorder=1)
        for _, run in _in_hue_order(layout, panel_runs).iterrows():
            rid = run["run_id"]
            p = paths[rid]
            style = layout.styles[_hue_of(layout, run)]
            finite = np.all(np.isfinite(p), axis=1)
            label = _fmt(_hue_of(layout, run)) if layout.hue else _describe(panel_runs) or "run"
            if rid in diverged and one_line_per_colour:
                label += f" ({'diverged' if run['status'] == 'diverged' else 'growing'})"
            drawn = p[finite]
            if rid in diverged:  # drawn until it leaves the view for good; beyond, it only scribbles across it
                k, exit_point = _exit(drawn, lo, hi)
                drawn = drawn[: k + 1]
            # A dot per iterate shows the step lengths, where there are few enough to tell apart.
            (line,) = ax.plot(drawn[:, 0], drawn[:, 1], lw=1.2, marker="." if len(drawn) <= MARKED_PATH else "",
                              ms=3.5, gid=f"path:{rid}", zorder=3, label=label, **style)  # fmt: skip
            if layout.hue or rid in diverged:
                handles.setdefault(label, line)
            ax.plot(p[0, 0], p[0, 1], "o", ms=8, mfc="white", mec=style["color"], mew=1.8, zorder=4,
                    gid=f"start:{rid}")  # fmt: skip
            if rid in diverged:
                ax.plot(exit_point[0], exit_point[1], color=style["color"], gid=f"diverged:{rid}", **DIVERGED_MARKER)
            else:
                ax.plot(p[-1, 0], p[-1, 1], "s", ms=6, color=style["color"], mec="black", mew=0.6, zorder=4,
                        gid=f"end:{rid}")  # fmt: skip
        if objective.x_star is not None and len(objective.x_star) == 2:
            ax.plot(*objective.x_star, "*", ms=14, color="black", mfc="white", mew=1.2, zorder=3.5, gid="x_star")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("$x_0$")
        if i % ncols == 0 or not ax.get_ylabel():
            ax.set_ylabel("$x_1$")
        if title:
            ax.set_title(title, fontsize=10)
    legend = list(handles.values()) + [
        Line2D([], [], marker="o", ms=8, mfc="white", mec="0.3", mew=1.8, ls="none", label="start"),
        Line2D([], [], marker="s", ms=6, color="0.3", mec="black", mew=0.6, ls="none", label="end"),
        Line2D([], [], marker="*", ms=14, color="black", mfc="white", mew=1.2, ls="none", label="x* (minimum)"),
    ]
    if any(g.startswith("diverged:") for ax in axes for g in (ln.get_gid() or "" for ln in ax.get_lines())):
        legend.append(_diverged_handle("diverged or growing: where it leaves the view"))
    _legend(axes[min(ncols, len(axes)) - 1], legend + _not_drawn(layout, runs), _name(layout.hue))
    _suptitle(fig, _title(layout, _describe(layout.traced, skip=layout.swept) + "; iterate paths on contours of f"))
    return fig


# --------------------------------------------------------------------------- lr x momentum heatmap


def stability_limit(optimizer: str, hyperparams: dict, L: float):
    """The largest stable learning rate on a quadratic with largest Hessian eigenvalue ``L``, as a
    function of momentum, or ``None`` where no formula is known.

    gd: lr < 2/L. Heavy ball (torch.optim.SGD convention, z <- m z + (1 - d) g,
    x <- x - lr z): lr < 2(1 + m) / ((1 - d) L). Weight decay wd adds wd to L.
    """
    wd = float(hyperparams.get("weight_decay") or 0.0)
    damp = float(hyperparams.get("dampening") or 0.0)
    L = L + wd
    if optimizer == "gd" and L > 0:
        return lambda m: 2.0 / L + 0.0 * np.asarray(m, float)
    if optimizer == "momentum" and L > 0 and damp < 1:
        return lambda m: 2.0 * (1.0 + np.asarray(m, float)) / ((1.0 - damp) * L)
    return None


def _stability_text(optimizer: str, hyperparams: dict, L: float) -> str:
    wd = float(hyperparams.get("weight_decay") or 0.0)
    damp = float(hyperparams.get("dampening") or 0.0)
    curvature = f"(L + {wd:g})" if wd else "L"
    rule = "2/" + curvature if optimizer == "gd" else "2(1 + momentum)/" + (
        f"((1 − {damp:g}) {curvature})" if damp else curvature)  # fmt: skip
    return f"stability boundary lr = {rule}, L = {L:.4g}: unstable to its right"


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise linear through ``(xp, fp)``, ``xp`` increasing, extended linearly past both ends."""
    y = np.interp(x, xp, fp)
    left, right = x < xp[0], x > xp[-1]
    y = np.where(left, fp[0] + (x - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0]), y)
    return np.where(right, fp[-1] + (x - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2]), y)


class _CellAxis:
    """An axis that gives each swept value one equal cell while data stay in their own units.

    Cell ``i`` is centred on the i-th value; between values the axis is linear
    (in log10 when all values are positive and span a decade), and past the
    ends it continues the end cells' spacing. Lines drawn on it, such as the
    stability boundary, are therefore at their true values.
    """

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, float)
        self.log = bool(self.values.min() > 0 and self.values.max() / self.values.min() >= 10)
        self.knots = np.log10(self.values) if self.log else self.values
        self.index = np.arange(len(self.values), dtype=float)

    def forward(self, v):
        v = np.asarray(v, float)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.log10(np.where(v > 0, v, np.nan))
        return _interp(v, self.knots, self.index)

    def inverse(self, i):
        u = _interp(np.asarray(i, float), self.index, self.knots)
        return 10**u if self.log else u

    @property
    def edges(self) -> np.ndarray:
        return self.inverse(np.arange(len(self.values) + 1) - 0.5)

    def apply(self, ax, which: str) -> None:
        """The scale on ``ax``'s ``which`` axis, a tick labelled per cell (evenly spaced ones past a dozen)."""
        getattr(ax, f"set_{which}scale")("function", functions=(self.forward, self.inverse))
        axis = getattr(ax, f"{which}axis")
        labelled = list(self.values[:: math.ceil(len(self.values) / ANNOTATED_CELLS)])  # a regular stride
        axis.set_major_locator(FixedLocator(labelled))
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(FixedFormatter([_fmt(float(v)) for v in labelled]))


def _cell_text_color(rgba) -> str:
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def heatmap_figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """Final f - f* and iterations to reach tol over an lr x momentum grid (medians over repetitions).

    Drawn when both ``lr`` and ``optimizer.momentum`` are swept over a grid (at
    least half of the lr x momentum cells run, so not for a random search). Diverged cells
    are hatched and say so; a final f - f* above the start's (a run still
    blowing up at max_iter) goes beyond the colour scale's top and prints its
    value. For quadratic objectives (``hessian_max_eig`` known) with gd or heavy
    ball, the stability boundary lr = 2(1 + momentum)/L is drawn (gid ``stability``).
    """
    if MOMENTUM not in runs.columns or "lr" not in runs.columns:
        return None
    # Cells need numbers: a failed run's lr=abc turns the column to text, and has no cell.
    lr, momentum = (pd.to_numeric(runs[key], errors="coerce") for key in ("lr", MOMENTUM))
    grid_runs = runs.assign(**{"lr": lr, MOMENTUM: momentum})[lr.notna() & momentum.notna()]
    keys = swept_keys(grid_runs)
    if not {"lr", MOMENTUM} <= set(keys):
        return None
    panels = _panels(grid_runs, [k for k in keys if k not in ("lr", MOMENTUM)])
    for _, panel in panels:  # a grid, not a random search: at least half of its cells were run
        cells = set(zip(_column(panel, "lr"), _column(panel, MOMENTUM)))
        if len(cells) < 0.5 * _column(panel, "lr").nunique() * _column(panel, MOMENTUM).nunique():
            return None
    first_last_f = _first_and_last_f(traces)
    # Iterations to reach tol say something only where some run reached it (not with tol=0).
    quantities = (GAP, "iterations to reach tol") if (grid_runs["status"] == "converged").any() else (GAP,)
    fig = Figure(figsize=(0.9 + 5.3 * len(quantities), 4.4 * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), len(quantities), squeeze=False)
    boundary_drawn = boundary_seen = diverged_any = over_any = blank_any = False
    boundary_texts, off_grid = set(), set()
    for row, (title, panel) in enumerate(panels):
        lrs = np.array(_ordered(_column(panel, "lr")), float)
        ms = np.array(_ordered(_column(panel, MOMENTUM)), float)
        x_axis, y_axis = _CellAxis(lrs), _CellAxis(ms)
        x_edges, y_edges = x_axis.edges, y_axis.edges
        gap_cells = np.full((len(ms), len(lrs)), np.nan)
        it_cells = np.full((len(ms), len(lrs)), np.nan)
        state = np.full((len(ms), len(lrs)), "not run", dtype=object)
        start_gap = []
        gap_known = True
        cells: dict[tuple, list[dict]] = {}  # plain rows: a thousand cells cost no pandas call each
        for run, lr, m in zip(panel.to_dict("records"), _column(panel, "lr"), _column(panel, MOMENTUM)):
            cells.setdefault((lr, m), []).append(run)
        for (lr, m), cell in cells.items():
            i, j = int(np.flatnonzero(ms == m)[0]), int(np.flatnonzero(lrs == lr)[0])
            status = [run["status"] for run in cell]
            diverged = status.count("diverged")
            finals = []
            for run in cell:
                f_star = _f_star(run)
                gap_known &= f_star is not None
                if run["run_id"] in first_last_f:
                    f_first, f_last = first_last_f[run["run_id"]]
                    start_gap.append(f_first - (f_star or 0.0))
                    finals.append(f_last - (f_star or 0.0))
            if diverged:
                state[i, j] = "diverged" if diverged == len(cell) else f"{diverged}/{len(cell)}\ndiverged"
            elif status.count("failed") == len(cell):
                state[i, j] = "failed"
            else:
                state[i, j] = "ok" if status.count("converged") == len(cell) else "not converged"
            if finals and not diverged:
                gap_cells[i, j] = float(np.median(finals))
            converged = [run["iterations"] for run in cell if run["status"] == "converged"]
            if converged and not diverged:
                it_cells[i, j] = float(np.median(converged))
            elif state[i, j] == "not converged":
                it_cells[i, j] = max(_finite(run["iterations"]) or 0.0 for run in cell)
        start = max(start_gap) if start_gap else np.nan
        annotated = max(len(lrs), len(ms)) <= ANNOTATED_CELLS
        for col, (ax, values, what) in enumerate(
            zip(axes[row], (gap_cells, it_cells), (GAP if gap_known else "f", *quantities[1:]))
        ):
            finite = values[np.isfinite(values)]
            cap = start if col == 0 and np.isfinite(start) else (finite.max() if len(finite) else 1.0)
            shown = finite[finite <= cap]
            positive = shown[shown > 0]
            vmin = positive.min() if len(positive) else 1e-16
            vmax = max(cap, vmin * 10)
            norm = LogNorm(vmin, vmax) if (len(positive) and vmax / vmin >= 10) else Normalize(
                shown.min() if len(shown) else 0, shown.max() if len(shown) else 1)  # fmt: skip
            cmap = _viridis_with_over()
            x_axis.apply(ax, "x")
            y_axis.apply(ax, "y")
            under = isinstance(norm, LogNorm) and bool((finite <= 0).any())  # f* reached to rounding: below the scale
            coloured = np.where(values <= 0, vmin / 10, values) if under else values
            mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(coloured), cmap=cmap, norm=norm,
                                 edgecolors="white", linewidth=1.0 if annotated else 0.3)  # fmt: skip
            over = bool((finite > vmax).any())
            over_any |= over
            label = ("final " + what) if col == 0 else what
            extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}
            fig.colorbar(mesh, ax=ax, label=label, extend=extend[under, over], pad=0.02)
            for i, m in enumerate(ms):
                for j, lr in enumerate(lrs):
                    cx, cy = lr, m
                    v = values[i, j]
                    if "diverged" in state[i, j]:
                        diverged_any = True
                        width, height = x_edges[j + 1] - x_edges[j], y_edges[i + 1] - y_edges[i]
                        ax.add_patch(Rectangle((x_edges[j], y_edges[i]), width, height, facecolor="0.88", lw=0,
                                               edgecolor="0.45", hatch="xx", zorder=2,
                                               gid=f"diverged_cell:{lr:g}:{m:g}"))  # fmt: skip
                        if annotated:
                            ax.text(cx, cy, state[i, j], ha="center", va="center", fontsize=7.5, zorder=5,
                                    bbox={"facecolor": "0.88", "edgecolor": "none", "pad": 0.5})  # fmt: skip
                        continue
                    if not np.isfinite(v):
                        blank_any |= not annotated
                        if annotated:
                            ax.text(cx, cy, state[i, j], ha="center", va="center", fontsize=7.5, color="0.35")
                        continue
                    if not annotated:  # too many cells to print in: the colour says it
                        continue
                    if col == 0:
                        text = f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e+")
                    else:
                        text = f"{v:.0f}" if state[i, j] == "ok" else f"> {v:.0f}"
                    color = _cell_text_color(cmap(norm(min(v, vmax))) if v <= vmax else cmap.get_over())
                    halo = "black" if color == "white" else "white"  # legible where the boundary line crosses
                    ax.text(cx, cy, text, ha="center", va="center", fontsize=7.5, color=color, zorder=5,
                            path_effects=[withStroke(linewidth=1.5, foreground=halo)])  # fmt: skip
            ax.set_xlim(x_edges[0], x_edges[-1])
            ax.set_ylim(y_edges[0], y_edges[-1])
            ax.set_xlabel("learning rate lr")
            ax.set_ylabel("momentum")
            ax.set_title(f"{'final ' if col == 0 else ''}{what}" + (f"\n{title}" if title else ""), fontsize=10)
            limit, limit_text = _panel_stability(panel)
            if limit is not None:
                boundary_texts.add(limit_text)
                m_line = np.linspace(y_edges[0], y_edges[-1], 101)
                ax.plot(limit(m_line), m_line, color="#D55E00", lw=2.2, ls="--", gid="stability", zorder=4)
                boundary_drawn = True
                lr_line, lr_at = limit(m_line), limit(ms)
                if lr_line.min() > x_edges[-1] or lr_line.max() < x_edges[0]:
                    side = "right" if lr_line.min() > x_edges[-1] else "left"
                    off_grid.add(f"at lr {_fmt(float(lr_at.min()))}–{_fmt(float(lr_at.max()))}, {side} of the grid")
                else:
                    boundary_seen = True
    legend = []
    if boundary_drawn:
        text = boundary_texts.pop() if len(boundary_texts) == 1 else "stability boundary: unstable to its right"
        if not boundary_seen:  # no line to see: say where it is
            text += f" ({off_grid.pop()})" if len(off_grid) == 1 else " (outside the grid)"
        legend.append(Line2D([], [], color="#D55E00", lw=2.2, ls="--", label=text))
    if diverged_any:
        legend.append(Patch(facecolor="0.88", edgecolor="0.45", hatch="xx", label="diverged"))
    if over_any:
        legend.append(Patch(facecolor=_viridis_with_over().get_over(), label=f"{GAP} above the start's (growing)"))
    if blank_any:
        legend.append(Patch(facecolor="white", edgecolor="0.6", label="not run, or failed"))
    if legend:
        for handle in legend:  # to the figure's width: one column of panels holds about 78 characters
            handle.set_label(textwrap.fill(handle.get_label(), 78 * len(quantities)))
        fig.legend(handles=legend, loc="outside lower center", ncols=len(legend) if len(quantities) > 1 else 1,
                   fontsize=9, frameon=False)  # fmt: skip
    repeats = grid_runs.groupby("config_id").size().max()
    _suptitle(fig, _describe(grid_runs, skip=keys) + ("; medians over seeds" if repeats > 1 else ""))
    return fig


def _first_and_last_f(traces: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Each run's f at its first and at its last recorded iteration."""
    if traces.empty or "run_id" not in traces.columns:
        return {}
    by_run = traces.groupby("run_id", sort=False)["iteration"]
    first = traces.loc[by_run.idxmin(), ["run_id", "f"]].set_index("run_id")["f"]
    last = traces.loc[by_run.idxmax(), ["run_id", "f"]].set_index("run_id")["f"]
    return {rid: (float(first[rid]), float(last[rid])) for rid in first.index}


def _viridis_with_over():
    from matplotlib import colormaps

    viridis = colormaps["viridis"]
    return viridis.with_extremes(under=viridis(0.0), over="#CC79A7", bad="white")


def _panel_stability(panel: pd.DataFrame):
    """``(limit, legend text)`` of the stability limit every run of a heatmap panel shares, or ``(None, None)``:
    one optimizer with one set of the hyperparameters the limit depends on, one objective function."""
    none = None, None
    optimizers = _column(panel, "optimizer").unique()
    if len(optimizers) != 1:
        return none
    hyper = {}
    for key in ("optimizer.dampening", "optimizer.weight_decay", "optimizer.nesterov"):
        values = _column(panel, key).unique()
        if len(values) != 1:
            return none
        hyper[key.partition(".")[2]] = values[0]
    if hyper.get("nesterov"):
        return none
    objectives = {json.dumps({k: v for k, v in json.loads(c)["objective"].items() if k != "x0"}, sort_keys=True)
                  for c in panel["config"]}  # fmt: skip
    if len(objectives) != 1:
        return none
    L = _objective(panel.iloc[0]).hessian_max_eig
    limit = None if L is None else stability_limit(str(optimizers[0]), hyper, float(L))
    return (limit, _stability_text(str(optimizers[0]), hyper, float(L))) if limit is not None else none


# --------------------------------------------------------------------------- 1-D objective


def critical_points(objective, lo: float, hi: float, n: int = 4001) -> list[tuple[float, str]]:
    """``[(x, kind), ...]`` where f' = 0 in [lo, hi], kind ``"minimum"`` or ``"maximum"``
    (f' changing sign from - to +, or + to -), refined with brentq."""
    from scipy.optimize import brentq

    xs = np.linspace(lo, hi, n)
    g = objective.grad(xs[:, None])[:, 0]
    found = []
    for k in np.flatnonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0):
        root = brentq(lambda t: float(objective.grad(np.array([t]))[0]), xs[k], xs[k + 1], xtol=1e-12)
        found.append((root, "minimum" if g[k] < 0 else "maximum"))
    return found


def objective_1d_figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """f and f' of 1-D objectives (notes' Figure 2), critical points marked, the runs' iterates on f."""
    low_dim = _low_dim_runs(traces, runs, 1, max_panels=4)  # side by side
    if low_dim is None:
        return None
    layout, by_run, one_line_per_colour = low_dim
    n = len(layout.panels)
    fig = Figure(figsize=(5.4 * n + 2.6, 6.2), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, sharex="col", height_ratios=[3, 2])
    handles = {}
    kinds_seen = {}
    for col, (title, panel_runs) in enumerate(layout.panels):
        ax_f, ax_g = axes[0, col], axes[1, col]
        objective = _objective(panel_runs.iloc[0])
        xs = {rid: by_run[rid]["x_0"].to_numpy(float) for rid in panel_runs["run_id"]}
        fs = {rid: by_run[rid]["f"].to_numpy(float) for rid in panel_runs["run_id"]}
        diverged = {rid for rid in xs if _wild(panel_runs, rid, fs[rid], xs[rid][:, None])}
        sane = [rid for rid in xs if rid not in diverged]
        points = [xs[r][:1, None] for r in xs] + [xs[r][:, None] for r in sane]
        values = [fs[r][:1] for r in xs] + [fs[r] for r in sane]
        if objective.x_star is not None:
            points.append(np.asarray(objective.x_star, float)[None])
            values.append(np.array([np.nan]))
        view = _sane_points(points, values, [xs[r][:, None] for r in diverged], [fs[r] for r in diverged])
        lo, hi = float(view.min()), float(view.max())
        # Critical points near the iterates belong in the picture (the notes' Figure 2 shows all three).
        reach = max(4 * (hi - lo), 8.0)
        crit = critical_points(objective, lo - reach, hi + reach)
        if crit:
            lo, hi = min(lo, min(c for c, _ in crit)), max(hi, max(c for c, _ in crit))
        (lo,), (hi,) = _box(np.array([[lo], [hi]]), pad=0.08)
        grid = np.linspace(lo, hi, 1001)
        F, G = objective.value_and_grad(grid[:, None])
        ax_f.plot(grid, F, color="0.15", lw=1.4, zorder=2, gid="f")
        ax_g.plot(grid, G[:, 0], color="0.15", lw=1.4, zorder=2, gid="df")
        ax_g.axhline(0.0, color="0.5", lw=0.8, zorder=1)
        minima = [c for c, k in crit if k == "minimum"]
        lowest = min(minima, key=lambda c: float(objective.value(np.array([c])))) if minima else None
        for c, kind in crit:
            name = kind
            if c == lowest and len(minima) > 1:
                name = "global minimum" if objective.x_star is not None and abs(c - objective.x_star[0]) < 1e-6 * max(
                    1.0, abs(c)) else "lowest minimum"  # fmt: skip
            elif len(crit) > 1:
                name = f"local {kind}"
            marker = {"minimum": "v", "maximum": "^"}[kind] if "global" not in name else "*"
            fc = float(objective.value(np.array([c])))
            label = f"{name}, x = {c:.3g}" if len(crit) <= 5 else name
            for ax, y in ((ax_f, fc), (ax_g, 0.0)):
                ax.axvline(c, color="0.6", lw=0.8, ls=":", zorder=1)
                (h,) = ax.plot([c], [y], marker=marker, ms=12 if marker == "*" else 9, color="black", mfc="#F0E442",
                               ls="none", zorder=3.5, gid=f"critical:{kind}")  # fmt: skip
            kinds_seen.setdefault(label, h)
        f_lo, f_hi = float(np.min(F)), float(np.max(F))
        pad = 0.06 * (f_hi - f_lo or 1.0)
        f_top = f_hi + pad
        for _, run in _in_hue_order(layout, panel_runs).iterrows():
            rid = run["run_id"]
            style = layout.styles[_hue_of(layout, run)]
            x, f = xs[rid], fs[rid]
            ok = np.isfinite(x) & np.isfinite(f)
            label = _fmt(_hue_of(layout, run)) if layout.hue else _describe(panel_runs) or "run"
            if rid in diverged and one_line_per_colour:
                label += f" ({'diverged' if run['status'] == 'diverged' else 'growing'})"
            drawn = np.stack([x[ok], f[ok]], axis=1)
            if rid in diverged:
                k, exit_point = _exit(drawn, np.array([lo, -np.inf]), np.array([hi, f_top]))
                drawn = drawn[: k + 1]
            (line,) = ax_f.plot(drawn[:, 0], drawn[:, 1], lw=0.9, marker="o", ms=3.5, alpha=0.9, gid=f"iterates:{rid}",
                                zorder=3, label=label, **style)  # fmt: skip
            if layout.hue or rid in diverged:
                handles.setdefault(label, line)
            ax_f.plot(x[0], f[0], "o", ms=9, mfc="white", mec=style["color"], mew=1.8, zorder=4, gid=f"start:{rid}")
            if rid in diverged:
                ax_f.plot(exit_point[0], exit_point[1], color=style["color"], gid=f"diverged:{rid}", **DIVERGED_MARKER)
            else:
                ax_f.plot(x[-1], f[-1], "s", ms=7, color=style["color"], mec="black", mew=0.6, zorder=5,
                          gid=f"end:{rid}")  # fmt: skip
        ax_f.set_ylim(f_lo - pad, f_top)
        ax_f.set_xlim(lo, hi)
        ax_f.set_ylabel("f(x)")
        ax_g.set_ylabel("f′(x)")
        ax_g.set_xlabel("x")
        ax_f.grid(True, alpha=0.3)
        ax_g.grid(True, alpha=0.3)
        if title:
            ax_f.set_title(title, fontsize=10)
    legend = list(handles.values()) + [
        Line2D([], [], marker="o", ms=9, mfc="white", mec="0.3", mew=1.8, ls="none", label="start"),
        Line2D([], [], marker="s", ms=7, color="0.3", mec="black", mew=0.6, ls="none", label="end"),
    ]
    legend += [Line2D([], [], marker=h.get_marker(), ms=h.get_markersize(), color="black", mfc="#F0E442", ls="none",
                      label=label) for label, h in kinds_seen.items()]  # fmt: skip
    _legend(axes[0, -1], legend, _name(layout.hue))
    _suptitle(fig, _title(layout, _describe(layout.traced, skip=layout.swept)
                          + "; the objective, its derivative and the iterates"))  # fmt: skip
    return fig


_FIGURES = {
    "convergence_iteration": convergence_figure,
    "convergence_evaluations": evaluations_figure,
    "momentum": momentum_figure,
    "paths": paths_figure,
    "heatmap_lr_momentum": heatmap_figure,
    "objective_1d": objective_1d_figure,
}

FIGURE_NAMES = tuple(_FIGURES)

if __name__ == "__main__":
    sys.exit(main())
