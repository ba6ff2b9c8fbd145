"""``objective_1d``: a 1-D objective and its derivative, critical points marked, the runs' iterates on f."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._data import _objective
from runner.figures._layout import (
    _describe,
    _hue_of,
    _in_hue_order,
    _legend,
    _low_dim_runs,
    _run_label,
    _suptitle,
    _title,
    new_figure,
)
from runner.figures._series import _box, _exit, _sane_points, _wild
from runner.figures._style import DIVERGED_MARKER, _fmt, _name

name = "objective_1d"


def critical_points(objective, lo: float, hi: float, n: int = 4001) -> list[tuple[float, str]]:
    """``[(x, kind), ...]`` where f' = 0 in [lo, hi], kind ``"minimum"`` or ``"maximum"``
    (f' changing sign from - to +, or + to -), refined with brentq."""
    from scipy.optimize import brentq

    xs = np.linspace(lo, hi, n)
    g = objective.grad(xs[:, None])[:, 0]
    found = []
    for k in np.flatnonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0):
        try:
            root = brentq(lambda t: float(objective.grad(np.array([t]))[0]), xs[k], xs[k + 1], xtol=1e-12)
        except RuntimeError:  # a bracket as wide as 1e300 does not narrow to 1e-12 in brentq's 100 steps
            continue
        found.append((root, "minimum" if g[k] < 0 else "maximum"))
    return found


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """f and f' of 1-D objectives (notes' Figure 2), critical points marked, the runs' iterates on f."""
    low_dim = _low_dim_runs(traces, runs, 1, max_panels=4)  # side by side
    if low_dim is None:
        return None
    layout, by_run, one_line_per_colour = low_dim
    n = len(layout.panels)
    fig = new_figure(figsize=(5.4 * n + 2.6, 6.2))
    axes = fig.subplots(2, n, squeeze=False, sharex="col", height_ratios=[3, 2])
    handles = {}
    kinds_seen = {}
    for col, (title, panel_runs) in enumerate(layout.panels):
        ax_f, ax_g = axes[0, col], axes[1, col]
        objective = _objective(panel_runs.iloc[0])
        xs = {rid: by_run[rid]["x_0"].to_numpy(float) for rid in panel_runs["run_id"]}
        fs = {rid: by_run[rid]["f"].to_numpy(float) for rid in panel_runs["run_id"]}
        status = dict(zip(panel_runs["run_id"], panel_runs["status"], strict=True))
        diverged = {rid for rid in xs if _wild(status[rid], fs[rid], xs[rid][:, None])}
        sane = [rid for rid in xs if rid not in diverged]
        # A start where f is not a number (x0 = 1e300 on the quartic) sets no view: it is marked at the edge.
        starts = [r for r in xs if np.isfinite(fs[r][0]) and np.isfinite(xs[r][0])]
        points = [xs[r][:1, None] for r in starts] + [xs[r][:, None] for r in sane]
        values = [fs[r][:1] for r in starts] + [fs[r] for r in sane]
        if objective.x_star is not None:
            points.append(np.asarray(objective.x_star, float)[None])
            values.append(np.array([np.nan]))
        if not points:  # nothing finite to centre on: the origin, with the critical points around it
            points, values = [np.zeros((1, 1))], [np.array([np.nan])]
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
                name = (
                    "global minimum"
                    if objective.x_star is not None and abs(c - objective.x_star[0]) < 1e-6 * max(1.0, abs(c))
                    else "lowest minimum"
                )
            elif len(crit) > 1:
                name = f"local {kind}"
            marker = {"minimum": "v", "maximum": "^"}[kind] if "global" not in name else "*"
            fc = float(objective.value(np.array([c])))
            label = f"{name}, x = {c:.3g}" if len(crit) <= 5 else name
            for ax, y in ((ax_f, fc), (ax_g, 0.0)):
                ax.axvline(c, color="0.6", lw=0.8, ls=":", zorder=1)
                (h,) = ax.plot(
                    [c],
                    [y],
                    marker=marker,
                    ms=12 if marker == "*" else 9,
                    color="black",
                    mfc="#F0E442",
                    ls="none",
                    zorder=3.5,
                    gid=f"critical:{kind}",
                )
            kinds_seen.setdefault(label, h)
        shown_f = F[np.isfinite(F)] if np.isfinite(F).any() else np.zeros(1)
        f_lo, f_hi = float(np.min(shown_f)), float(np.max(shown_f))
        pad = 0.06 * (f_hi - f_lo or 1.0)
        f_top = f_hi + pad
        for _, run in _in_hue_order(layout, panel_runs).iterrows():
            rid = run["run_id"]
            style = layout.styles[_hue_of(layout, run)]
            x, f = xs[rid], fs[rid]
            ok = np.isfinite(x) & np.isfinite(f)
            label = _run_label(layout, run, panel_runs)
            if rid in diverged and one_line_per_colour:
                label += f" ({'diverged' if run['status'] == 'diverged' else 'growing'})"
            drawn = np.stack([x[ok], f[ok]], axis=1)
            if rid in diverged and len(drawn):
                k, exit_point = _exit(drawn, np.array([lo, -np.inf]), np.array([hi, f_top]))
                drawn = drawn[: k + 1]
            (line,) = ax_f.plot(
                drawn[:, 0],
                drawn[:, 1],
                lw=0.9,
                marker="o",
                ms=3.5,
                alpha=0.9,
                gid=f"iterates:{rid}",
                zorder=3,
                label=label,
                **style,
            )
            if layout.hue or rid in diverged:
                handles.setdefault(label, line)
            if np.isfinite(x[0]) and np.isfinite(f[0]) and lo <= x[0] <= hi and f[0] <= f_top:
                ax_f.plot(x[0], f[0], "o", ms=9, mfc="white", mec=style["color"], mew=1.8, zorder=4, gid=f"start:{rid}")
            else:  # off the view: an arrow on its edge, pointing where the start is
                right = not x[0] < lo
                edge = (hi if right else lo, f_top if not f[0] <= f_top else max(f[0], f_lo - pad))
                (off,) = ax_f.plot(
                    *edge,
                    ">" if right else "<",
                    ms=10,
                    mfc="white",
                    mec=style["color"],
                    mew=1.8,
                    zorder=4,
                    clip_on=False,
                    gid=f"start:{rid}",
                    label=f"start off the view: x0 = {_fmt(float(x[0]))}, f = {_fmt(float(f[0]))}",
                )
                handles.setdefault(off.get_label(), off)
            if rid in diverged and len(drawn):
                ax_f.plot(exit_point[0], exit_point[1], color=style["color"], gid=f"diverged:{rid}", **DIVERGED_MARKER)
            elif rid in diverged:  # not one finite iterate: the arrow at its start says where it went
                pass
            else:
                ax_f.plot(
                    x[-1], f[-1], "s", ms=7, color=style["color"], mec="black", mew=0.6, zorder=5, gid=f"end:{rid}"
                )
        ax_f.set_ylim(f_lo - pad, f_top)
        ax_f.set_xlim(lo, hi)
        ax_f.set_ylabel("f(x)")
        ax_g.set_ylabel("f′(x)")
        ax_g.set_xlabel("x")
        ax_f.grid(True, alpha=0.3)
        ax_g.grid(True, alpha=0.3)
        if title:
            ax_f.set_title(title, fontsize=10)
    legend = [
        *list(handles.values()),
        Line2D([], [], marker="o", ms=9, mfc="white", mec="0.3", mew=1.8, ls="none", label="start"),
        Line2D([], [], marker="s", ms=7, color="0.3", mec="black", mew=0.6, ls="none", label="end"),
    ]
    legend += [
        Line2D(
            [], [], marker=h.get_marker(), ms=h.get_markersize(), color="black", mfc="#F0E442", ls="none", label=label
        )
        for label, h in kinds_seen.items()
    ]
    _legend(axes[0, -1], legend, _name(layout.hue) if layout.grid else None)
    _suptitle(
        fig,
        _title(
            layout, _describe(layout.traced, skip=layout.swept) + "; the objective, its derivative and the iterates"
        ),
        runs,
    )
    return fig
