"""``heatmap_lr_momentum``: final f - f* and iterations to tol over an lr x momentum grid.

On quadratics the optimizer's stability boundary (its ``stable_lr``, see
:data:`runner.optimizers.OPTIMIZERS`) is drawn over the cells, and beside it the theory
(:mod:`runner.theory`): a star at the optimal (lr*, momentum*) and, in the iterations panel, the
iterations theory gives each cell, in brackets below the measured ones (a contour where the grid
is too big to print in its cells).
"""

from __future__ import annotations

import inspect
import json
import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.patheffects import withStroke
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from runner.figures._data import (
    MOMENTUM,
    _column,
    _f_star,
    _finite,
    _first_and_last_f,
    _objective,
    reached_tol,
    theory_iterations,
    theory_optimum,
    theory_rates,
)
from runner.figures._layout import _describe, _panels, _suptitle, new_figure, swept_keys
from runner.figures._style import GAP, TOL_RULE, _fmt, _ordered
from runner.optimizers import OPTIMIZERS

name = "heatmap_lr_momentum"
ANNOTATED_CELLS = 12  # heatmap cells carry their value up to this many per axis


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """Final f - f* and iterations to reach tol over an lr x momentum grid (medians over repetitions).

    Drawn when both ``lr`` and ``optimizer.momentum`` are swept over a grid (at
    least half of the lr x momentum cells run, so not for a random search). Diverged cells
    are hatched and say so; a final f - f* above the start's (a run still
    blowing up at max_iter) goes beyond the colour scale's top and prints its
    value. For quadratic objectives (``hessian_max_eig`` known) with an optimizer that
    knows its stable learning rate (``stable_lr``: gd, heavy ball, Nesterov), the stability
    boundary is drawn, lr = 2(1 + momentum)/L for heavy ball (gid ``stability``).

    Beside it, theory (where the optimizer also has ``optimal`` and ``rate_block``): a star at the
    (lr*, momentum*) of the smallest rate ρ (:func:`runner.theory.optimal`; gid ``optimum``), and in
    the iterations panel each cell's theoretical iterations for f - f* <= tol from its start,
    ceil(log(tol / (f_0 - f*)) / (2 log ρ)) with ρ the runs' ``rate_theory``
    (:func:`runner.theory.iterations_for`), in brackets in a smaller, dimmer type below the measured
    count; on grids too big to print in, a contour of it (gid ``theory_contour``).
    """
    if MOMENTUM not in runs.columns or "lr" not in runs.columns:
        return None
    # Cells need numbers: a failed run's lr=abc turns the column to text, and has no cell.
    lr, momentum = (pd.to_numeric(runs[key], errors="coerce") for key in ("lr", MOMENTUM))
    # An infinite lr or momentum has no cell either: the legend names its runs.
    on_grid = np.isfinite(lr) & np.isfinite(momentum)
    off_grid_runs = runs[lr.notna() & momentum.notna() & ~on_grid]
    grid_runs = runs.assign(**{"lr": lr, MOMENTUM: momentum})[on_grid]
    keys = swept_keys(grid_runs)
    if not {"lr", MOMENTUM} <= set(keys):
        return None
    panels = _panels(grid_runs, [k for k in keys if k not in ("lr", MOMENTUM)])
    for _, panel in panels:  # a grid, not a random search: at least half of its cells were run
        cells = set(zip(_column(panel, "lr"), _column(panel, MOMENTUM), strict=True))
        if len(cells) < 0.5 * _column(panel, "lr").nunique() * _column(panel, MOMENTUM).nunique():
            return None
    first_last_f = _first_and_last_f(traces)
    # Iterations to reach tol say something only where some run reached it (not with tol=0).
    stopped_by_tol = dict(zip(grid_runs["run_id"], reached_tol(grid_runs), strict=True))
    quantities = (GAP, f"iterations until {TOL_RULE}") if any(stopped_by_tol.values()) else (GAP,)
    fig = new_figure(figsize=(0.9 + 5.3 * len(quantities), 4.4 * len(panels) + 0.6))
    axes = fig.subplots(len(panels), len(quantities), squeeze=False)
    boundary_drawn = boundary_seen = diverged_any = over_any = blank_any = theory_any = False
    optima: set[str] = set()
    boundary_texts, off_grid = set(), set()
    for row, (title, panel) in enumerate(panels):
        lrs = np.array(_ordered(_column(panel, "lr")), float)
        ms = np.array(_ordered(_column(panel, MOMENTUM)), float)
        x_axis, y_axis = _CellAxis(lrs), _CellAxis(ms)
        x_edges, y_edges = x_axis.edges, y_axis.edges
        gap_cells = np.full((len(ms), len(lrs)), np.nan)
        it_cells = np.full((len(ms), len(lrs)), np.nan)
        theory_cells = np.full((len(ms), len(lrs)), np.nan)  # iterations theory gives each cell
        state = np.full((len(ms), len(lrs)), "not run", dtype=object)
        start_gap = []
        gap_known = True
        cells: dict[tuple, list[dict]] = {}  # plain rows: a thousand cells cost no pandas call each
        for run, lr, m in zip(panel.to_dict("records"), _column(panel, "lr"), _column(panel, MOMENTUM), strict=True):
            cells.setdefault((lr, m), []).append(run)
        for (lr, m), cell in cells.items():
            i, j = int(np.flatnonzero(ms == m)[0]), int(np.flatnonzero(lrs == lr)[0])
            status = [run["status"] for run in cell]
            diverged = status.count("diverged")
            finals, theory = [], []
            for run in cell:
                f_star = _f_star(run)
                gap_known &= f_star is not None
                if run["run_id"] in first_last_f:
                    f_first, f_last = first_last_f[run["run_id"]]
                    start_gap.append(f_first - (f_star or 0.0))
                    finals.append(f_last - (f_star or 0.0))
                    if f_star is not None and (k := theory_iterations(run, f_first - f_star)) is not None:
                        theory.append(k)
            if theory:
                theory_cells[i, j] = float(np.median(theory))
            if diverged:
                state[i, j] = "diverged" if diverged == len(cell) else f"{diverged}/{len(cell)}\ndiverged"
            elif status.count("failed") == len(cell):
                state[i, j] = "failed"
            else:
                stopped = [stopped_by_tol[run["run_id"]] for run in cell]
                state[i, j] = "ok" if all(stopped) else "not converged"
            if finals and not diverged:
                gap_cells[i, j] = float(np.median(finals))
            converged = [run["iterations"] for run in cell if stopped_by_tol[run["run_id"]]]
            if converged and not diverged:
                it_cells[i, j] = float(np.median(converged))
            elif state[i, j] == "not converged":
                it_cells[i, j] = max(_finite(run["iterations"]) or 0.0 for run in cell)
        start = max(start_gap) if start_gap else np.nan
        annotated = max(len(lrs), len(ms)) <= ANNOTATED_CELLS
        for col, (ax, values, what) in enumerate(
            zip(
                axes[row],
                (gap_cells, it_cells)[: len(quantities)],
                (GAP if gap_known else "f", *quantities[1:]),
                strict=True,
            )
        ):
            finite = values[np.isfinite(values)]
            cap = start if col == 0 and np.isfinite(start) else (finite.max() if len(finite) else 1.0)
            shown = finite[finite <= cap]
            positive = shown[shown > 0]
            vmin = positive.min() if len(positive) else 1e-16
            vmax = max(cap, vmin * 10)
            norm = (
                LogNorm(vmin, vmax)
                if (len(positive) and vmax / vmin >= 10)
                else Normalize(shown.min() if len(shown) else 0, shown.max() if len(shown) else 1)
            )
            cmap = _viridis_with_over()
            x_axis.apply(ax, "x")
            y_axis.apply(ax, "y")
            under = isinstance(norm, LogNorm) and bool((finite <= 0).any())  # f* reached to rounding: below the scale
            coloured = np.where(values <= 0, vmin / 10, values) if under else values
            mesh = ax.pcolormesh(
                x_edges,
                y_edges,
                np.ma.masked_invalid(coloured),
                cmap=cmap,
                norm=norm,
                edgecolors="white",
                linewidth=1.0 if annotated else 0.3,
            )
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
                        ax.add_patch(
                            Rectangle(
                                (x_edges[j], y_edges[i]),
                                width,
                                height,
                                facecolor="0.88",
                                lw=0,
                                edgecolor="0.45",
                                hatch="xx",
                                zorder=2,
                                gid=f"diverged_cell:{lr:g}:{m:g}",
                            )
                        )
                        if annotated:
                            ax.text(
                                cx,
                                cy,
                                state[i, j],
                                ha="center",
                                va="center",
                                fontsize=7.5,
                                zorder=5,
                                bbox={"facecolor": "0.88", "edgecolor": "none", "pad": 0.5},
                            )
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
                    theory = theory_cells[i, j] if col == 1 else np.nan
                    # With a second number the measured one sits just above the cell's centre, the theory's below.
                    ax.text(
                        cx,
                        cy,
                        text,
                        ha="center",
                        va="center" if np.isnan(theory) else "bottom",
                        fontsize=7.5,
                        color=color,
                        zorder=5,
                        path_effects=[withStroke(linewidth=1.5, foreground=halo)],
                    )
                    if not np.isnan(theory):  # the second, dim number: what theory gives the cell
                        theory_any = True
                        ax.text(
                            cx,
                            cy,
                            f"({_iterations_text(theory)})",
                            ha="center",
                            va="top",
                            fontsize=6.5,
                            color=color,
                            alpha=0.75,
                            zorder=5,
                            gid=f"theory_iterations:{lr:g}:{m:g}",
                        )
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
            best = optimum(panel)
            if best is not None:
                inside = x_edges[0] <= best["lr"] <= x_edges[-1] and y_edges[0] <= best["momentum"] <= y_edges[-1]
                ax.plot(
                    [min(max(best["lr"], x_edges[0]), x_edges[-1])],
                    [min(max(best["momentum"], y_edges[0]), y_edges[-1])],
                    marker="*",
                    ms=15,
                    color="white",
                    markeredgecolor="black",
                    markeredgewidth=1.2,
                    ls="none",
                    zorder=6,
                    clip_on=False,
                    gid="optimum",
                )
                optima.add(_optimum_text(best) + ("" if inside else " (outside the grid: on its edge)"))
            if col == 1 and not annotated:
                theory_any |= _theory_contour(ax, panel, x_edges, y_edges, start, grid_runs)
    legend = []
    if boundary_drawn:
        text = boundary_texts.pop() if len(boundary_texts) == 1 else "stability boundary: unstable to its right"
        if not boundary_seen:  # no line to see: say where it is
            text += f" ({off_grid.pop()})" if len(off_grid) == 1 else " (outside the grid)"
        legend.append(Line2D([], [], color="#D55E00", lw=2.2, ls="--", label=text))
    for text in sorted(optima):
        legend.append(Line2D([], [], marker="*", ms=12, color="white", markeredgecolor="black", ls="none", label=text))
    if theory_any:
        legend.append(
            Line2D(
                [],
                [],
                ls="none",
                label=f"(n): iterations theory gives: the least n with ρ^(2n) ({GAP} at the start) ≤ tol, "
                "ρ the rate of ‖x − x*‖ (rate_theory)",
            )
        )
    if diverged_any:
        legend.append(Patch(facecolor="0.88", edgecolor="0.45", hatch="xx", label="diverged"))
    if over_any:
        legend.append(Patch(facecolor=_viridis_with_over().get_over(), label=f"{GAP} above the start's (growing)"))
    if blank_any:
        legend.append(Patch(facecolor="white", edgecolor="0.6", label="not run, or failed"))
    if len(off_grid_runs):
        cells = sorted(
            {
                f"lr = {_fmt(r['lr'])}, momentum = {_fmt(r[MOMENTUM])}: {r['status']}"
                for _, r in off_grid_runs.iterrows()
            }
        )
        legend.append(
            Line2D(
                [],
                [],
                ls="none",
                label="no cell: " + "; ".join(cells[:4]) + (f" and {len(cells) - 4} more" if len(cells) > 4 else ""),
            )
        )
    if legend:
        # One entry a line, wrapped to the figure's width: one column of panels holds about 78 characters.
        for handle in legend:
            handle.set_label(textwrap.fill(handle.get_label(), 78 * len(quantities)))
        fig.legend(
            handles=legend,
            loc="outside lower center",
            ncols=1,
            fontsize=9,
            frameon=False,
        )
    repeats = grid_runs.groupby("config_id").size().max()
    # Its legend sits below the panels, wrapped to their width: nothing to widen for.
    _suptitle(fig, _describe(grid_runs, skip=keys) + ("; medians over seeds" if repeats > 1 else ""), runs, fit=False)
    return fig


def stability_limit(optimizer: str, hyperparams: dict, L: float):
    """The largest stable learning rate on a quadratic with largest Hessian eigenvalue ``L``, as a
    function of momentum, or ``None`` where the optimizer knows none.

    The limit is the optimizer's own: ``stable_lr(L, **hyperparams)`` of its factory in
    :data:`runner.optimizers.OPTIMIZERS` (gd 2/(L + wd); heavy ball 2(1 + m)/((1 - d)(L + wd));
    Nesterov 2(1 + m)/((1 + 2m)(L + wd))). Hyperparameters it does not take make it unknown.
    """
    stable_lr = getattr(OPTIMIZERS.get(optimizer), "stable_lr", None)
    if stable_lr is None:
        return None
    params = inspect.signature(stable_lr).parameters
    hyper = {k: v for k, v in hyperparams.items() if k not in ("lr", "momentum")}
    if not set(hyper) <= set(params) - {"L"} or stable_lr(L, **hyper) is None:
        return None

    def limit(m):
        m = np.asarray(m, float)
        lr = stable_lr(L, **hyper, momentum=m) if "momentum" in params else stable_lr(L, **hyper)
        return np.broadcast_to(np.asarray(lr, float), m.shape)

    return limit


def _stability_text(optimizer: str, hyperparams: dict, L: float) -> str:
    hyper = {k: v for k, v in hyperparams.items() if k not in ("lr", "momentum")}
    rule = OPTIMIZERS[optimizer].stable_lr.formula(**hyper).replace("-", "−")  # a minus sign, as typeset
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
        with np.errstate(over="ignore"):
            self.log = bool(self.values.min() > 0 and self.values.max() / self.values.min() >= 10)
        knots = np.log10(self.values) if self.log else self.values
        # One knot past each end, a cell's spacing away but short of overflowing (lr = 1e300 next to
        # lr = 1 is 300 decades from it): the end cells' outer edges are finite numbers.
        room = math.log10(np.finfo(float).max) - 0.01 if self.log else np.finfo(float).max / 4
        step = np.diff(knots) if len(knots) > 1 else np.array([1.0])
        before = min(step[0], room + knots[0])
        after = min(step[-1], room - knots[-1])
        self.knots = np.concatenate([[knots[0] - before], knots, [knots[-1] + after]])
        self.index = np.arange(-1, len(self.values) + 1, dtype=float)

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


def _viridis_with_over():
    from matplotlib import colormaps

    viridis = colormaps["viridis"]
    return viridis.with_extremes(under=viridis(0.0), over="#CC79A7", bad="white")


def _panel_stability(panel: pd.DataFrame):
    """``(limit, legend text)`` of the stability limit every run of a heatmap panel shares, or ``(None, None)``:
    one optimizer with one set of hyperparameters besides lr and momentum, one objective function
    (x0 aside) that knows its largest Hessian eigenvalue."""
    none = None, None
    optimizers = _column(panel, "optimizer").unique()
    if len(optimizers) != 1:
        return none
    configs = [json.loads(c) for c in panel["config"]]
    settings = {
        json.dumps({k: v for k, v in c["optimizer"].items() if k not in ("_target_", "lr", "momentum")}, sort_keys=True)
        for c in configs
    }
    objectives = {json.dumps({k: v for k, v in c["objective"].items() if k != "x0"}, sort_keys=True) for c in configs}
    if len(settings) != 1 or len(objectives) != 1:
        return none
    L = _objective(panel.iloc[0]).hessian_max_eig
    if L is None:
        return none
    hyper = json.loads(settings.pop())
    limit = stability_limit(str(optimizers[0]), hyper, float(L))
    return (limit, _stability_text(str(optimizers[0]), hyper, float(L))) if limit is not None else none


def _iterations_text(k: float) -> str:
    return "∞" if math.isinf(k) else f"{k:.0f}"


def _optimum_text(best: dict) -> str:
    lr, momentum = (float(format(best[key], ".3g")) for key in ("lr", "momentum"))
    rho = best["rate"]
    return f"optimum by theory, the smallest rate ρ = {rho:.3g}: lr* = {_fmt(lr)}, momentum* = {_fmt(momentum)}"


def optimum(panel: pd.DataFrame) -> dict | None:
    """The (lr*, momentum*) of the smallest rate ρ for the runs of a heatmap panel
    (:func:`runner.theory.optimal`, with ``rate``), under :func:`_panel_stability`'s conditions
    (one optimizer, one set of its other hyperparameters, one objective); None without a theory."""
    run = _panel_run(panel)
    if run is None:
        return None
    best = theory_optimum(run)
    return best if best is not None and "momentum" in best else None


def _theory_contour(ax, panel: pd.DataFrame, x_edges, y_edges, start_gap: float, runs: pd.DataFrame) -> bool:
    """Contours of the iterations theory gives for f - f* <= tol from ``start_gap`` over the panel's
    plane (gid ``theory_contour``), where its cells are too many to print in; whether any was drawn."""
    run = _panel_run(panel)
    tols = pd.to_numeric(runs.get("tol"), errors="coerce").dropna().unique() if "tol" in runs else []
    if run is None or len(tols) != 1 or not tols[0] > 0 or not np.isfinite(start_gap) or start_gap <= 0:
        return False
    lr = np.geomspace(x_edges[0], x_edges[-1], 200) if x_edges[0] > 0 else np.linspace(x_edges[0], x_edges[-1], 200)
    m = np.linspace(max(y_edges[0], 0.0), min(y_edges[-1], 0.999), 200)
    rho = theory_rates(run, lr[None, :], m[:, None])
    if rho is None:
        return False
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.log(float(tols[0]) / start_gap) / (2.0 * np.log(rho))
    k = np.where((rho < 1) & (k > 0), k, np.nan)
    finite = k[np.isfinite(k)]
    if not len(finite):
        return False
    levels = [v for v in (3, 10, 30, 100, 300, 1000, 3000, 10000, 30000) if finite.min() < v < finite.max()]
    if not levels:
        return False
    lines = ax.contour(lr, m, k, levels=levels, colors="white", linewidths=0.8, alpha=0.8, zorder=3)
    lines.set_gid("theory_contour")
    ax.clabel(lines, fontsize=6.5, fmt=lambda v: f"({v:.0f})")
    return True


def _panel_run(panel: pd.DataFrame):
    """A run of the panel standing for all of them in theory: one optimizer with one set of
    hyperparameters besides lr and momentum, one objective function (x0 aside); else None."""
    optimizers = _column(panel, "optimizer").unique()
    if len(optimizers) != 1:
        return None
    configs = [json.loads(c) for c in panel["config"]]
    settings = {
        json.dumps({k: v for k, v in c["optimizer"].items() if k not in ("_target_", "lr", "momentum")}, sort_keys=True)
        for c in configs
    }
    objectives = {json.dumps({k: v for k, v in c["objective"].items() if k != "x0"}, sort_keys=True) for c in configs}
    return panel.iloc[0] if len(settings) == 1 and len(objectives) == 1 else None
