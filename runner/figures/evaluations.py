"""``convergence_evaluations``: the convergence figure against function plus gradient evaluations."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from runner.figures.convergence import figure as convergence_figure

name = "convergence_evaluations"


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """The convergence figure against evaluations, function plus gradient (``nfev + ngev``), what a
    method used; drawn when they tell more than iterations: some run's ``nfev`` or ``ngev`` is not
    ``iteration + 1`` (scipy's line searches, Powell's probes, trust-ncg's Hessian-vector products)."""
    if traces.empty or "nfev" not in traces.columns:
        return None
    nfev = pd.to_numeric(traces["nfev"], errors="coerce")
    ngev = pd.to_numeric(traces["ngev"], errors="coerce") if "ngev" in traces.columns else None
    one_each = nfev == traces["iteration"] + 1
    if ngev is not None:
        one_each &= ngev == traces["iteration"] + 1
    if nfev.isna().all() or one_each.all():
        return None
    if ngev is None:  # tables without gradient counts: function evaluations alone
        return convergence_figure(traces[nfev.notna()], runs, x="nfev")
    evaluations = nfev + ngev
    return convergence_figure(traces.assign(evaluations=evaluations)[evaluations.notna()], runs, x="evaluations")
