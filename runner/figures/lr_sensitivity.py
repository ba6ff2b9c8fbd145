"""``lr_sensitivity``: final f - f* against the learning rate, a line per optimizer, a panel per objective."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._benchmark import BEST_RULE, PANEL, applies, caption, hopeless, settings, study
from runner.figures._data import profiles
from runner.figures._layout import _grid, _legend, _suptitle, swept_keys
from runner.figures._style import DIVERGED_MARKER, _diverged_handle, _fmt, _ordered

name = "lr_sensitivity"
STRIP = 0.14  # of each panel's height, on top: the lrs whose median is infinite
BLOWN = 1e3  # a median this many times the start's f - f* has blown up: drawn as infinite


def _starts(traces: pd.DataFrame, runs: pd.DataFrame, problem) -> dict:
    """Each objective's median f(x0) - f* (f(x0) where f* is unknown) over its runs' first rows."""
    if traces.empty or not {"run_id", "iteration", "f"} <= set(traces.columns):
        return {}
    first = traces[traces["iteration"] == 0].drop_duplicates("run_id").set_index("run_id")["f"]
    f_star = profiles.known_f_star(runs, problem).fillna(0.0)
    gap = runs["run_id"].map(first) - f_star
    return gap.groupby(runs["objective"]).median().to_dict()


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """DeepOBS's learning-rate sensitivity: for each objective (a panel) and optimizer (a line), the
    median over the seeds of the final f - f* (f where f* is unknown; :func:`runner.profiles.final_value`)
    at each lr, log-log, with a star on the best lr (:func:`runner.profiles.best_lr`). A median that
    is infinite (half the seeds or more failed or diverged), or blown up (over :data:`BLOWN` times the
    objective's median f(x0) - f*), is a cross in the panel's grey top strip, a
    row per optimizer; an optimizer failing at every lr of an objective is left out and named in the caption; a
    median at or below 0 (f* reached to rounding) a triangle on its bottom edge.

    Drawn for a study across problems that sweeps ``lr``. Artists: ``lr:<objective>:<optimizer>``,
    ``best:<objective>:<optimizer>``, ``diverged:<objective>:<optimizer>``.
    """
    if not applies(runs) or "lr" not in swept_keys(runs):
        return None
    s = study(runs)
    table = runs[["objective", "optimizer", "lr"]].assign(value=profiles.final_value(runs, s.problem).to_numpy())
    medians = table.groupby(["objective", "optimizer", "lr"], dropna=False)["value"].median().reset_index()
    known = profiles.known_f_star(runs, s.problem).notna().groupby(runs["objective"]).any()
    objectives = [v for v in _ordered(runs["objective"]) if v is not None]
    starts = _starts(traces, runs, s.problem)
    fig, axes, ncols = _grid(len(objectives), size=PANEL, sharex=True, sharey=False, extra_width=2.0)
    any_top = any_bottom = False
    for i, (ax, objective) in enumerate(zip(axes, objectives, strict=True)):
        panel = medians[medians["objective"] == objective]
        start = starts.get(objective, np.nan)
        if np.isfinite(start) and start > 0:  # blown up: drawn with the infinite ones, in the strip
            panel = panel.assign(value=panel["value"].where(~(panel["value"] > BLOWN * start), np.inf))
        v = panel["value"].to_numpy(float)
        positive = v[np.isfinite(v) & (v > 0)]
        log_y = len(positive) > 0 and (bool(known.get(objective, False)) or (v[np.isfinite(v)] > 0).all())
        shown = positive if log_y else v[np.isfinite(v)]
        if not len(shown):
            shown = np.array([1.0])
        if log_y:
            low, high = np.log10(shown.min()), np.log10(shown.max())
            pad = max(0.05 * (high - low), 0.2)
            bottom, top = 10 ** (low - pad), 10 ** (high + pad)
        else:
            pad = 0.05 * (shown.max() - shown.min()) or max(abs(shown.max()), 1.0) * 0.1
            bottom, top = shown.min() - pad, shown.max() + pad
        # The top STRIP of the panel holds a row of crosses per optimizer: its lrs with an infinite median.
        share = STRIP / (1 - STRIP)
        ceiling = 10 ** (np.log10(top) + np.log10(top / bottom) * share) if log_y else top + (top - bottom) * share
        ax.set_yscale("log" if log_y else "linear")
        ax.set_xscale("log")
        ax.set_ylim(bottom, ceiling)
        ax.axhspan(top, ceiling, color="0.94", zorder=0, lw=0)
        best = s.best[s.best["objective"] == objective].set_index("optimizer")
        for j, solver in enumerate(s.solvers):
            rows = panel[panel["optimizer"] == solver].sort_values("lr")
            if rows.empty or not np.isfinite(rows["value"].to_numpy(float)).any():
                continue  # failing at every lr: the caption names it
            style = s.styles[solver]
            lr, value = rows["lr"].to_numpy(float), rows["value"].to_numpy(float)
            finite = np.isfinite(value)
            y = np.where(~finite, np.nan, np.where(log_y & (value <= 0), bottom, value))
            ax.plot(lr, y, marker="o", ms=3.5, lw=1.6, gid=f"lr:{objective}:{solver}", **style)
            if (~finite).any():
                any_top = True
                row = 1 - STRIP * (j + 0.7) / (len(s.solvers) + 0.4)
                ax.plot(
                    lr[~finite], np.full((~finite).sum(), row), transform=ax.get_xaxis_transform(),
                    color=style["color"], gid=f"diverged:{objective}:{solver}",
                    **{**DIVERGED_MARKER, "markersize": 6, "markeredgewidth": 1.6},
                )  # fmt: skip
            low = finite & log_y & (value <= 0)
            if low.any():
                any_bottom = True
                ax.plot(lr[low], np.full(low.sum(), bottom), "v", ms=7, color=style["color"], clip_on=False, zorder=4)
            if solver in best.index and math.isfinite(best.loc[solver, "median"]):
                b_lr, b_v = float(best.loc[solver, "lr"]), float(best.loc[solver, "median"])
                b_y = bottom if log_y and b_v <= 0 else b_v
                ax.plot(
                    [b_lr], [b_y], marker="*", ms=14, mec="black", mew=0.8, color=style["color"], ls="none",
                    zorder=6, clip_on=False, gid=f"best:{objective}:{solver}",
                )  # fmt: skip
        ax.set_title(f"{objective}" + ("" if known.get(objective, False) else " (f* unknown: f)"), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("learning rate")
        if i % ncols == 0:
            ax.set_ylabel("median final f − f* (f)")
    handles = [Line2D([], [], lw=1.6, marker="o", ms=3.5, label=_fmt(v), **s.styles[v]) for v in s.solvers]
    handles.append(Line2D([], [], marker="*", ms=12, mec="black", color="0.6", ls="none", label="best lr"))
    if any_top:
        strip = (
            "top strip, a row per optimizer:\nmedian not finite (half the seeds\nor more failed or diverged)"
            f" or\nover {BLOWN:g} × f(x0) − f*"
        )
        handles.append(_diverged_handle(strip))
    if any_bottom:
        handles.append(Line2D([], [], marker="v", ms=7, color="0.4", ls="none", label="median ≤ 0 (f* to rounding)"))
    _legend(axes[min(ncols, len(axes)) - 1], handles, "optimizer")
    n_seeds = int(runs["seed"].nunique()) if "seed" in runs.columns else 1
    title = caption(
        f"Learning-rate sensitivity (DeepOBS): median over {n_seeds} seed(s) of the final f − f* (f where f* is "
        "unknown) against lr; a failed or diverged run counts as +∞.",
        "★ " + BEST_RULE,
        hopeless(s.best),
    )
    _suptitle(fig, title, settings(runs))
    return fig
