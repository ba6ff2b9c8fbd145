"""``performance_profile``: Dolan & Moré's performance profiles of the optimizers over a study's problems."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._benchmark import (
    BEST_RULE,
    FAIL_RULE,
    PANEL,
    TIE_RULE,
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

name = "performance_profile"


def _target(tau: float) -> str:
    return f"f ≤ f_L + {tau:g}·(f(x0) − f_L)"


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """rho_s(tau), the fraction of problems on which each optimizer needs at most tau times the fewest
    iterations any optimizer needs to pass the test f <= f_L + t (f(x0) - f_L), one panel per t in
    :data:`runner.profiles.PROFILE_TAUS` (:func:`runner.profiles.performance_profile`).

    Drawn for a study across problems (:func:`runner.figures._benchmark.applies`): each optimizer at
    its best lr per objective, a problem per (objective, seed). The curve at tau = 1 is the fraction
    where the optimizer is the fastest (ties count for each tied one); its right end is the fraction
    it solves at all (failed, diverged and never reached: ratio inf). Artists: ``profile:<optimizer>:<t>``.
    """
    if traces.empty or not applies(runs):
        return None
    s = study(runs)
    ref = profiles.reference_values(traces, s.chosen, s.problem)
    fig, axes, ncols = _grid(len(profiles.PROFILE_TAUS), size=PANEL, sharex=False, sharey=True, extra_width=2.0)
    n_problems = 0
    for ax, tau in zip(axes, profiles.PROFILE_TAUS, strict=True):
        cost = profiles.cost_to_target(traces, s.chosen, tau, cost="iteration", problem=s.problem)
        n_problems = len(cost)
        ratios = profiles.performance_ratios(cost).to_numpy(float)
        finite = ratios[np.isfinite(ratios)]
        top = max(float(finite.max()) if len(finite) else 1.0, 2.0) * 1.5
        taus = np.unique(np.concatenate([[1.0], finite, [top]]))
        rho = profiles.performance_profile(cost, taus)
        for solver in rho.columns:
            ax.step(
                rho.index, rho[solver], where="post", lw=2, gid=f"profile:{solver}:{tau:g}",
                label=f"{_fmt(solver)}", **s.styles[solver],
            )  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlim(1, top)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"target {_target(tau)}", fontsize=10)
        ax.set_xlabel("τ: iterations ≤ τ × the fewest any optimizer needs")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(r"$\rho_s(\tau)$: fraction of problems")
    handles = [Line2D([], [], lw=2, label=_fmt(v), **s.styles[v]) for v in s.solvers]
    _legend(axes[min(ncols, len(axes)) - 1], handles, "optimizer")
    title = caption(
        f"Performance profiles (Dolan & Moré 2002) over {n_problems} problems (objective × seed): "
        r"$\rho_s(\tau)$ = fraction of problems where an optimizer needs ≤ τ × the fewest iterations to the target.",
        f"{TIE_RULE} {FAIL_RULE}",
        reference_note(ref) + " " + hopeless(s.best),
        BEST_RULE,
    )
    _suptitle(fig, title, settings(runs))
    return fig
