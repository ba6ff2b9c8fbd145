"""``paths``: iterate paths of 2-D runs on the contours of their objective."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._data import _objective
from runner.figures._layout import (
    _describe,
    _grid,
    _hue_of,
    _in_hue_order,
    _legend,
    _low_dim_runs,
    _not_drawn,
    _run_label,
    _suptitle,
    _title,
)
from runner.figures._series import _box, _exit, _sane_points, _wild
from runner.figures._style import DIVERGED_MARKER, _diverged_handle, _name

name = "paths"
MARKED_PATH = 200  # iterate paths up to this long mark each iterate


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """Iterate paths of 2-D runs on the contours of their objective, start and end marked, x* starred."""
    low_dim = _low_dim_runs(traces, runs, 2)
    if low_dim is None:
        return None
    layout, by_run, one_line_per_colour = low_dim
    fig, axes, ncols = _grid(len(layout.panels), sharex=False, sharey=False, size=(4.6, 4.0))
    handles = {}
    for i, (ax, (title, panel_runs)) in enumerate(zip(axes, layout.panels, strict=True)):
        objective = _objective(panel_runs.iloc[0])
        # Column by column: selecting two columns builds a frame per run, ten times the cost.
        paths = {
            rid: np.column_stack([by_run[rid]["x_0"].to_numpy(float), by_run[rid]["x_1"].to_numpy(float)])
            for rid in panel_runs["run_id"]
        }
        fvals = {rid: by_run[rid]["f"].to_numpy(float) for rid in panel_runs["run_id"]}
        status = dict(zip(panel_runs["run_id"], panel_runs["status"], strict=True))
        diverged = {rid for rid in paths if _wild(status[rid], fvals[rid], paths[rid])}
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
            label = _run_label(layout, run, panel_runs)
            if rid in diverged and one_line_per_colour:
                label += f" ({'diverged' if run['status'] == 'diverged' else 'growing'})"
            drawn = p[finite]
            if rid in diverged:  # drawn until it leaves the view for good; beyond, it only scribbles across it
                k, exit_point = _exit(drawn, lo, hi)
                drawn = drawn[: k + 1]
            # A dot per iterate shows the step lengths, where there are few enough to tell apart.
            (line,) = ax.plot(
                drawn[:, 0],
                drawn[:, 1],
                lw=1.2,
                marker="." if len(drawn) <= MARKED_PATH else "",
                ms=3.5,
                gid=f"path:{rid}",
                zorder=3,
                label=label,
                **style,
            )
            if layout.hue or rid in diverged:
                handles.setdefault(label, line)
            ax.plot(p[0, 0], p[0, 1], "o", ms=8, mfc="white", mec=style["color"], mew=1.8, zorder=4, gid=f"start:{rid}")
            if rid in diverged:
                ax.plot(exit_point[0], exit_point[1], color=style["color"], gid=f"diverged:{rid}", **DIVERGED_MARKER)
            else:
                ax.plot(
                    p[-1, 0],
                    p[-1, 1],
                    "s",
                    ms=6,
                    color=style["color"],
                    mec="black",
                    mew=0.6,
                    zorder=4,
                    gid=f"end:{rid}",
                )
        if objective.x_star is not None and len(objective.x_star) == 2:
            ax.plot(*objective.x_star, "*", ms=14, color="black", mfc="white", mew=1.2, zorder=3.5, gid="x_star")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("$x_0$")
        if i % ncols == 0 or not ax.get_ylabel():
            ax.set_ylabel("$x_1$")
        if title:
            ax.set_title(title, fontsize=10)
    legend = [
        *list(handles.values()),
        Line2D([], [], marker="o", ms=8, mfc="white", mec="0.3", mew=1.8, ls="none", label="start"),
        Line2D([], [], marker="s", ms=6, color="0.3", mec="black", mew=0.6, ls="none", label="end"),
        Line2D([], [], marker="*", ms=14, color="black", mfc="white", mew=1.2, ls="none", label="x* (minimum)"),
    ]
    if any(g.startswith("diverged:") for ax in axes for g in (ln.get_gid() or "" for ln in ax.get_lines())):
        legend.append(_diverged_handle("diverged or growing: where it leaves the view"))
    legend_title = _name(layout.hue) if layout.grid else None
    _legend(axes[min(ncols, len(axes)) - 1], legend + _not_drawn(layout, runs), legend_title)
    _suptitle(
        fig, _title(layout, _describe(layout.traced, skip=layout.swept) + "; iterate paths on contours of f"), runs
    )
    return fig
