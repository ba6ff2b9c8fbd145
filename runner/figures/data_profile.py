"""``data_profile``: Moré & Wild's data profiles of the optimizers over gradient evaluations."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._benchmark import (
    BEST_RULE,
    PANEL,
    applies,
    caption,
    hopeless,
    reference_note,
    settings,
    study,
)
from runner.figures._data import profiles
from runner.figures._layout import _grid, _legend, _suptitle
from runner.figures._style import _fmt
from runner.figures.performance_profile import _target

name = "data_profile"


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """d_s(b), the fraction of problems each optimizer solves within b gradient evaluations (``ngev``:
    the gradients computed up to the iterate that passes f <= f_L + t (f(x0) - f_L)), one panel per t
    in :data:`runner.profiles.PROFILE_TAUS` (:func:`runner.profiles.data_profile`). The budget is not
    divided by n + 1 as Moré & Wild do for derivative-free solvers: a gradient is one evaluation here.

    Drawn for a study across problems, as the performance profile; failed, diverged and never
    reached are never within a budget. Artists: ``profile:<optimizer>:<t>``.
    """
    if traces.empty or "ngev" not in traces.columns or not applies(runs):
        return None
    s = study(runs)
    ref = profiles.reference_values(traces, s.chosen, s.problem)
    fig, axes, ncols = _grid(len(profiles.PROFILE_TAUS), size=PANEL, sharex=True, sharey=True, extra_width=2.0)
    budget_max = 1.3 * float(pd.to_numeric(traces["ngev"], errors="coerce").max())  # the last step shows
    n_problems = 0
    for ax, tau in zip(axes, profiles.PROFILE_TAUS, strict=True):
        cost = profiles.cost_to_target(traces, s.chosen, tau, cost="ngev", problem=s.problem)
        n_problems = len(cost)
        values = cost.to_numpy(float)
        finite = values[np.isfinite(values)]
        budgets = np.unique(np.concatenate([[1.0], finite, [max(budget_max, 1.0)]]))
        d = profiles.data_profile(cost, budgets)
        for solver in d.columns:
            ax.step(
                d.index, d[solver], where="post", lw=2, gid=f"profile:{solver}:{tau:g}",
                label=_fmt(solver), **s.styles[solver],
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlim(1, max(budget_max, 2.0))
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"target {_target(tau)}", fontsize=10)
        ax.set_xlabel("budget b: gradient evaluations (ngev)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("fraction of problems solved within b")
    handles = [Line2D([], [], lw=2, label=_fmt(v), **s.styles[v]) for v in s.solvers]
    _legend(axes[min(ncols, len(axes)) - 1], handles, "optimizer")
    title = caption(
        f"Data profiles (Moré & Wild 2009) over {n_problems} problems (objective × seed): fraction of problems "
        "whose target an optimizer reaches within b gradient evaluations (not divided by n + 1).",
        "Failed, diverged or never reached: not solved within any budget, so a curve ends at the fraction solved.",
        reference_note(ref) + " " + hopeless(s.best),
        BEST_RULE,
    )
    _suptitle(fig, title, settings(runs))
    return fig
