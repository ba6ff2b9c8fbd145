"""``runtime_ecdf``: COCO's empirical distribution of the runtime to reach f - f* <= 1e-k, k = 1..8."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._benchmark import BEST_RULE, PANEL, applies, caption, hopeless, settings, study
from runner.figures._data import profiles
from runner.figures._layout import _grid, _legend, _suptitle
from runner.figures._style import _fmt

name = "runtime_ecdf"


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """For each optimizer, the fraction of its (problem, target) pairs reached within each budget of
    gradient evaluations, the targets f - f* <= 1e-1, ..., 1e-8 (:data:`runner.profiles.ECDF_TARGETS`),
    on the problems whose f* is known (:func:`runner.profiles.runtimes_to_targets`,
    :func:`runner.profiles.runtime_ecdf`); a cross marks where each curve ends (its last reach).

    Drawn for a study across problems where some objective knows f*; failed, diverged and never
    reached pairs never count. Artists: ``ecdf:<optimizer>``.
    """
    if traces.empty or "ngev" not in traces.columns or not applies(runs):
        return None
    s = study(runs)
    runtimes = profiles.runtimes_to_targets(traces, s.chosen, problem=s.problem)
    if runtimes.empty:
        return None  # no objective of the study knows f*
    values = runtimes["runtime"].to_numpy(float)
    budget_max = max(1.3 * float(pd.to_numeric(traces["ngev"], errors="coerce").max()), 2.0)  # the last step shows
    budgets = np.unique(np.concatenate([[1.0], values[np.isfinite(values)], [budget_max]]))
    ecdf = profiles.runtime_ecdf(runtimes, budgets)
    fig, axes, _ = _grid(1, size=(PANEL[0] * 1.4, PANEL[1] * 1.1), sharex=False, sharey=False, extra_width=2.0)
    ax = axes[0]
    for solver in ecdf.columns:
        ax.step(ecdf.index, ecdf[solver], where="post", lw=2, gid=f"ecdf:{solver}", **s.styles[solver])
    ax.set_xscale("log")
    ax.set_xlim(1, budget_max)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("budget: gradient evaluations (ngev)")
    ax.set_ylabel("fraction of (problem, target) pairs reached")
    ax.grid(True, alpha=0.3)
    last = ecdf.iloc[-1]
    handles = [Line2D([], [], lw=2, label=f"{_fmt(v)}: {last.get(v, 0):.0%}", **s.styles[v]) for v in s.solvers]
    _legend(ax, handles, "optimizer: reached in all")
    objectives = sorted({p.split("/")[0] for p in runtimes["problem"]})
    n_problems = runtimes["problem"].nunique()
    title = caption(
        f"Runtime ECDF (COCO): targets f − f* ≤ 1e-1, 1e-2, …, 1e-8 on the {n_problems} problems whose f* is known "
        f"({', '.join(objectives)}; objective × seed): {n_problems * len(profiles.ECDF_TARGETS)} (problem, target) "
        "pairs per optimizer.",
        "A pair counts from the first iterate that reaches its target; failed, diverged or never reached pairs "
        "never count. " + hopeless(s.best),
        BEST_RULE,
    )
    _suptitle(fig, title, settings(runs))
    return fig
