"""How a figure splits the runs: swept keys, grid or search, panels, legends, titles.

The conventions are the package's (see :mod:`runner.figures`): a line's colour follows one swept
key, the other swept keys make panels (on a grid), and the title ends with the fixed settings.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._data import _by_run, _canon, _column, _dims, config_keys
from runner.figures._style import PALETTE, PANEL_SIZE, _fmt, _name, _ordered, _short, _styles, _wrap

# Past these, a figure shows evenly spaced values of a swept key (the first and the last among
# them) and says so in its title; the tables, and the heatmap, hold every run.
MAX_LINES = len(PALETTE)  # lines per panel: one colour each
MAX_PANELS = 9  # a 3 x 3 grid
DPI = 150  # the PNG's; a figure is laid out at it too (:func:`new_figure`)


def new_figure(**kwargs) -> Figure:
    """A constrained-layout :class:`Figure` at the PNG's dpi, on an Agg canvas of its own.

    So the layout passes (:func:`_fit_width`, :func:`freeze_layout`) and the PNG measure the text with
    one renderer and share its caches (text extents, parsed mathtext of log ticks), instead of a fresh
    renderer and a fresh measure of every label each time. The files look the same: sizes are in inches.
    """
    fig = Figure(dpi=DPI, layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def swept_keys(runs: pd.DataFrame) -> list[str]:
    """Config columns whose value varies across ``runs``, in column order.

    Not swept: the seed, and any column that varies among the repetitions of
    one config (it follows the seed, like ``objective.seed: ${seed}``); and an
    ``optimizer.*`` (``objective.*``) column that has one value (or null) for each
    optimizer (objective) while the optimizer (objective) varies: it only says
    which optimizer has that key and its default (``optimizer.momentum`` when gd meets
    momentum; ``optimizer.eps`` when adagrad meets adam; ``objective.n`` across objectives).
    """
    keys = []
    for key in config_keys(runs):
        values = _column(runs, key)
        if values.nunique(dropna=False) < 2:
            continue
        if "config_id" in runs.columns and (values.groupby(runs["config_id"]).nunique(dropna=False) > 1).any():
            continue
        namespace = key.partition(".")[0]
        owner = _column(runs, namespace)
        if "." in key and owner.nunique() > 1 and (values.groupby(owner).nunique(dropna=False) <= 1).all():
            continue
        keys.append(key)
    return keys


def is_grid(runs: pd.DataFrame, keys: list[str] | None = None) -> bool:
    """Whether the swept values of ``runs`` form a grid.

    The rule: with ``k`` swept keys taking ``n_1, ..., n_k`` distinct values, the
    runs form a grid when they hold at least half of the ``n_1 * ... * n_k``
    combinations (a grid with a few failed or skipped cells still is one). One
    swept key, or none, is always a grid. A random or Optuna search, where each
    trial draws its own values, holds about ``n`` of ``n**k`` combinations: not a grid.
    """
    keys = swept_keys(runs) if keys is None else keys
    if len(keys) < 2:
        return True
    columns = [_column(runs, k) for k in keys]
    combos = len(set(zip(*columns, strict=True)))
    return combos >= 0.5 * math.prod(column.nunique(dropna=False) for column in columns)


def fixed_settings(runs: pd.DataFrame) -> str:
    """The settings every run of the sweep shares, for a subtitle:
    ``fixed: objective=shifted_quadratic, optimizer.momentum=0.9, max_iter=1000, tol=1e-06``.

    A key counts when it is not swept and has one value among the runs that
    have it (``optimizer.momentum`` of the momentum runs when gd meets momentum);
    ``trace.x`` (what is recorded, not how the run goes) is left out.
    """
    swept = set(swept_keys(runs))
    parts = []
    for key in config_keys(runs):
        if key in swept or key == "trace.x":
            continue
        values = _column(runs, key).dropna().unique()
        if len(values) == 1:
            parts.append(f"{key}={_fmt(values[0])}")
    return "fixed: " + ", ".join(parts) if parts else ""


def _setting(run, keys: list[str]) -> str:
    """A run's values of ``keys``, for a legend: ``lr=0.5, momentum=0.9``."""
    return ", ".join(f"{_short(k)}={_fmt(run[k])}" for k in keys)


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


def _panels(runs: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """``runs`` split by the values of ``keys``: ``[(title, runs), ...]`` in value order."""
    if not keys:
        return [("", runs)]
    columns = {k: _column(runs, k) for k in keys}
    rows: dict[tuple, list[int]] = {}  # each combination's row positions, in table order
    for i, combo in enumerate(zip(*columns.values(), strict=True)):
        rows.setdefault(combo, []).append(i)
    orders = [{v: i for i, v in enumerate(_ordered(columns[k]))} for k in keys]
    panels = []
    for combo in sorted(rows, key=lambda combo: tuple(order[v] for order, v in zip(orders, combo, strict=True))):
        title = ", ".join(f"{_name(k)} = {_fmt(v)}" for k, v in zip(keys, combo, strict=True))
        panels.append((title, runs.iloc[rows[combo]]))
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
    grid: bool = True  # the swept values form a grid (is_grid): else one line names all its swept values


def _layout(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    hue: str | None = None,
    extra_panel_keys=(),
    max_panels: int = MAX_PANELS,
) -> _Layout:
    traced_ids = _traced_ids(traces)
    traced = runs[runs["run_id"].isin(traced_ids)]
    keys = swept_keys(traced)
    grid = is_grid(traced, keys)
    hue = hue if hue is not None else _hue_key(traced, keys)
    # Off a grid every trial has its own values: a panel per value would hold one line each.
    facets = [k for k in keys if k != hue] if grid else []
    facets += [k for k in extra_panel_keys if k not in facets and k != hue]
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
    return _Layout(hue, values, _styles(values), panels, traced, failed, keys, " and ".join(shown), grid)


def _traced_ids(traces: pd.DataFrame) -> set:
    """The runs that have trace rows."""
    return set(traces["run_id"].unique()) if "run_id" in traces.columns and len(traces) else set()


def _traced_swept_keys(traces: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """The swept keys of the runs that have traces, as :func:`_layout` finds them (its ``swept``): a figure
    that needs a key swept (or not) asks this first, for the price of one look at the tables."""
    return swept_keys(runs[runs["run_id"].isin(_traced_ids(traces))])


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


def _run_label(layout: _Layout, run: pd.Series, panel_runs: pd.DataFrame) -> str:
    """A run's legend entry: its colour key's value; off a grid, all its swept values."""
    if not layout.grid:
        return _setting(run, layout.swept)
    return _fmt(_hue_of(layout, run)) if layout.hue else _describe(panel_runs) or "run"


def _in_hue_order(layout: _Layout, runs: pd.DataFrame) -> pd.DataFrame:
    order = {v: i for i, v in enumerate(layout.hue_values)}
    hues = _column(runs, layout.hue) if layout.hue else [None] * len(runs)
    return runs.iloc[np.argsort([order[v] for v in hues], kind="stable")]


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


def _grid(n: int, *, ncols_max: int = 3, size=PANEL_SIZE, sharex=True, sharey=True, extra_width=2.2):
    ncols = min(n, ncols_max, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    fig = new_figure(figsize=(size[0] * ncols + extra_width, size[1] * nrows + 0.8))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    flat = list(axes.flat)
    for i, ax in enumerate(flat):
        if i >= n:
            ax.remove()
        elif i + ncols >= n:  # nothing drawn below it: it shows the x tick labels
            ax.xaxis.set_tick_params(labelbottom=True)
    return fig, flat[:n], ncols


def _has_panel_below(i: int, n: int, ncols: int) -> bool:
    return i + ncols < n


def _legend(ax, handles: list, title: str | None) -> None:
    """The figure's legend, outside the right of ``ax`` (the top-right panel), top-aligned with it;
    attached to an axes so that constrained layout makes room for it below the figure title."""
    if handles:
        ax.legend(
            handles=handles,
            title=title or None,
            loc="upper left",
            bbox_to_anchor=(1.03, 1.0),
            borderaxespad=0,
            fontsize=9,
            title_fontsize=9,
            frameon=False,
            alignment="left",
        )


def _suptitle(fig: Figure, text: str, runs: pd.DataFrame | None = None, *, fit: bool = True) -> None:
    """The figure title, and below it the settings the sweep's ``runs`` hold fixed
    (:func:`fixed_settings`); both wrapped to the figure's width, so they fit at any sweep size.
    ``fit`` widens the figure to a legend beside the panels (:func:`_fit_width`; it costs a draw)."""
    fixed = fixed_settings(runs) if runs is not None and len(runs) else ""
    text = "\n".join(part for part in (text, fixed) if part)
    if text:
        fig.suptitle(_wrap(text, fig.get_figwidth() - 0.2, 11), fontsize=11)
    if fit:
        _fit_width(fig)


def _fit_width(fig: Figure) -> None:
    """Widen ``fig`` until what it draws fits: a legend beside the panels is as wide as its longest
    entry, and constrained layout cannot shrink a panel with a fixed aspect (paths) to make room."""
    for _ in range(3):
        _lay_out(fig)
        box = fig.get_tightbbox()  # inches
        over = max(box.x1 - fig.get_figwidth(), -box.x0, 0.0)
        if over <= 0.02:
            return
        fig.set_figwidth(fig.get_figwidth() + over + 0.15)


def _lay_out(fig: Figure) -> None:
    """Solve the figure's constrained layout at its size (placing the axes); what a draw does first."""
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
    fig._runner_laid_out = tuple(fig.get_size_inches())  # a mark of ours, read by freeze_layout


def freeze_layout(fig: Figure) -> Figure:
    """Lay ``fig`` out once (unless :func:`_fit_width` just did, at its present size) and keep that layout
    for every file it is saved to: else each ``savefig`` solves the constrained layout again before it
    draws, the PNG and the PDF alike, which costs as much as the drawing itself. Call it once the
    figure is complete; returns ``fig``."""
    if fig.get_layout_engine() is None:
        return fig
    if getattr(fig, "_runner_laid_out", None) != tuple(fig.get_size_inches()):
        _lay_out(fig)
    fig.set_layout_engine(None)  # the axes keep the positions the layout gave them
    return fig


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
    if not _traced_ids(traces) <= set(ids):  # else every traced run is drawn: no copy of the table
        traces = traces[traces["run_id"].isin(ids)]
    panel_runs = runs[runs["run_id"].isin(ids) | ~runs["run_id"].isin(dims)]
    layout = _layout(traces, panel_runs, max_panels=max_panels)
    extra = _objective_panel_keys(layout.hue)
    if extra:
        layout = _layout(traces, panel_runs, hue=layout.hue, extra_panel_keys=extra, max_panels=max_panels)
    return layout, _by_run(traces, layout.traced["run_id"]), _one_line_per_colour(layout)


def _one_line_per_colour(layout: _Layout) -> bool:
    hues = _column(layout.traced, layout.hue) if layout.hue else [None] * len(layout.traced)
    return len(layout.traced) == len(set(hues))
