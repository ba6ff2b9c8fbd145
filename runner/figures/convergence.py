"""``convergence_iteration``: f - f* (f where f* is unknown) against iteration.

A line per value of the colour key, a panel per value of the other swept keys
(on a grid), median and 25-75 % band over repetitions, an ``x`` where a diverged
run left the plot. :func:`_convergence` draws these panels for the figures that
compare lines the same way (evaluations, momentum). Against iterations, a run with a
theoretical rate (``rate_theory``: gd, heavy ball, Nesterov on a quadratic) gets a thin
dashed line of its colour, (f_0 - f*) ρ^(2k) from the same start: where the run follows
the theory and where it departs from it.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._data import RATE_THEORY, _by_run, _finite, reached_tol
from runner.figures._layout import (
    _describe,
    _grid,
    _has_panel_below,
    _Layout,
    _layout,
    _legend,
    _not_drawn,
    _setting,
    _suptitle,
    _title,
)
from runner.figures._series import _Curve, _curves, _exit_point, _span_is_wide, _y_range
from runner.figures._style import (
    DIVERGED_MARKER,
    GAP,
    PANEL_SIZE,
    TOL_RULE,
    X_LABELS,
    _diverged_handle,
    _fmt,
    _name,
    _short,
    _wrap,
)

name = "convergence_iteration"
THEORY_LABEL = "theory: (f₀ − f*) ρ^(2k),\nρ = rate_theory"


def figure(traces: pd.DataFrame, runs: pd.DataFrame, x: str = "iteration") -> Figure | None:
    """f - f* (or f) against ``x`` (``"iteration"`` or ``"nfev"``): a line per value of the colour key,
    a panel per value of the other swept keys, median and 25-75 % band over repetitions."""
    if traces.empty:
        return None
    layout = _layout(traces, runs)
    return _convergence(traces, runs, layout, x)


def _y_label(gap: bool) -> str:
    return GAP if gap else "f"


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

    def name(c: _Curve) -> str:
        """A line's legend entry: its colour key's value; off a grid, all its swept values."""
        if not layout.grid:  # each line has its own values of every swept key: the legend names them all
            return _setting(c.runs.iloc[0], layout.swept)
        return _fmt(c.hue_value) if layout.hue else _describe(c.runs) or "run"

    label = label or name
    one_line_per_colour = len(every) == len({c.hue_value for c in every})

    # The legend beside the panels is as wide as its longest entry (a search's names every swept value).
    longest = max((len(label(c)) + (len(c.note()) + 3 if c.note() else 0) for c in every), default=0)
    fig, axes, ncols = _grid(len(layout.panels), extra_width=max(2.2, 0.075 * min(longest, 60) + 0.6))
    handles, per_panel_legends = {}, not one_line_per_colour and label is not name
    x_max, x_min = [], []
    theory_drawn = False
    for i, (ax, (title, _), curves) in enumerate(zip(axes, layout.panels, panel_curves, strict=True)):
        # Limits and scales first: autoscaling over a diverged run's 1e308 would overflow.
        ax.set_ylim(bottom, top)
        ax.set_yscale("log" if log_y else "linear")
        ax.set_xscale("log" if log_x else "linear")
        notes = []
        for c in curves:
            style = layout.styles[c.hue_value]
            text = label(c)
            if c.note() and one_line_per_colour:
                text = textwrap.fill(text + f" ({c.note()})", 60, subsequent_indent="  ")
            elif c.note():
                notes.append(f"{_short(layout.hue)} = {_fmt(c.hue_value)}: {c.note()}" if layout.hue else c.note())
            kind = f"median:{c.config_id}" if c.band else f"run:{next(iter(c.per_run))}"
            # Against evaluations, f holds until the next recorded point: steps, not slopes.
            (line,) = ax.plot(
                c.x,
                c.y,
                lw=1.2 if c.band else 1.6,
                label=text,
                gid=kind,
                drawstyle="default" if x == "iteration" else "steps-post",
                **style,
            )
            if x == "iteration" and c.gap and (theory := _theory_line(c, bottom, top)) is not None:
                ax.plot(*theory, color=style["color"], lw=1.0, ls=(0, (4, 2.5)), zorder=3, gid=f"theory:{c.config_id}")
                theory_drawn = True
            if c.band:
                grid, lo, hi = c.band
                ok = np.isfinite(lo) & np.isfinite(hi)
                band = ax.fill_between(
                    grid,
                    np.where(ok, lo, np.nan),
                    np.where(ok, hi, np.nan),
                    color=style["color"],
                    alpha=0.25,
                    lw=0,
                    step=None if x == "iteration" else "post",
                )
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
            if label is not name:  # a comparison: mark where the stop rule |Δf| < tol fired, the run's last row
                stopped = dict(zip(c.runs["run_id"], reached_tol(c.runs), strict=True))
                for rid, (xs, ys) in c.per_run.items():
                    if stopped[rid] and len(ys) and np.isfinite(ys[-1]):
                        ax.plot(
                            [xs[-1]],
                            [ys[-1]],
                            "o",
                            ms=5,
                            color=style["color"],
                            gid=f"end:{rid}",
                            clip_on=False,
                            zorder=4,
                        )
        if notes:  # one line each, up to three; past that, wrapped
            lines = notes if len(notes) <= 3 else textwrap.wrap("; ".join(notes), 60, max_lines=4, placeholder=" ...")
            title = "\n".join(([title] if title else []) + lines)
        if title:
            ax.set_title(_wrap(title, PANEL_SIZE[0], 9), fontsize=9)
        if per_panel_legends:
            ax.legend(fontsize=7.5, title=_name(layout.hue) or None, title_fontsize=7.5, loc="best")
        ax.grid(True, which="major", alpha=0.3)
        if i % ncols == 0:
            ax.set_ylabel(_y_label(gap) if gap or not any(c.gap for c in every) else f"{GAP} (f where f* unknown)")
        if not _has_panel_below(i, len(axes), ncols):
            ax.set_xlabel(X_LABELS.get(x, x))
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
        legend.append(Line2D([], [], color="0.3", marker="o", ms=5, ls="none", label=f"stopped: {TOL_RULE}"))
    if theory_drawn:
        legend.append(Line2D([], [], color="0.3", lw=1.0, ls=(0, (4, 2.5)), label=THEORY_LABEL))
    legend += _not_drawn(layout, runs)
    legend_title = None if per_panel_legends or not layout.grid else _name(layout.hue)
    _legend(axes[min(ncols, len(axes)) - 1], legend, legend_title)
    repeats = max((len(c.per_run) for c in every), default=1)
    title = _describe(layout.traced, skip=layout.swept)
    if repeats > 1:
        title += f"; median and 25–75 % band over {repeats} seeds"
    _suptitle(fig, _title(layout, title), runs)
    return fig


def _theory_line(c: _Curve, bottom: float, top: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The theoretical f - f* of a curve: ``(f_0 - f*) ρ^(2 (k - k_0))`` from its first point, over its
    iterations, ρ the median ``rate_theory`` of its runs; cut at its first point out of the plot's
    ``[bottom, top]`` (it leaves the view there), None where its runs have no rate."""
    rates = [r for r in map(_finite, c.runs[RATE_THEORY]) if r is not None] if RATE_THEORY in c.runs.columns else []
    if not rates or not len(c.x) or not np.isfinite(c.y[0]) or c.y[0] <= 0:
        return None
    rho = float(np.median(rates))
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        y = c.y[0] * np.exp(2.0 * (c.x - c.x[0]) * np.log(rho))
    outside = np.flatnonzero((y < bottom) | (y > top))
    end = int(outside[0]) + 1 if len(outside) else len(y)
    return (c.x[:end], y[:end]) if end > 1 else None
