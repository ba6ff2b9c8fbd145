"""``momentum``: vanilla (momentum 0) against each momentum value, at a fixed learning rate."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from runner.figures._data import MOMENTUM, _column, reached_tol
from runner.figures._layout import _layout, _traced_swept_keys
from runner.figures._series import _Curve
from runner.figures._style import TOL_RULE, _fmt
from runner.figures.convergence import _convergence

name = "momentum"


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """Vanilla (momentum 0) against each momentum value, f - f* against iteration, with the
    iterations to reach the tolerance (and how many times fewer than vanilla) in the legend.

    Drawn when ``optimizer.momentum`` is swept and includes 0, at a fixed
    learning rate; when lr is swept too, the ``heatmap_lr_momentum`` figure is the comparison.
    """
    if traces.empty or MOMENTUM not in runs.columns:
        return None
    swept = _traced_swept_keys(traces, runs)  # the layout's own test, before the layout is built
    if MOMENTUM not in swept or "lr" in swept:
        return None
    layout = _layout(traces, runs, hue=MOMENTUM)
    if MOMENTUM not in layout.swept or "lr" in layout.swept or 0 not in layout.hue_values:
        return None

    vanilla = {}
    for _, panel_runs in layout.panels:
        base = panel_runs[(_column(panel_runs, MOMENTUM) == 0) & reached_tol(panel_runs)]
        vanilla.update(dict.fromkeys(panel_runs["run_id"], float(base["iterations"].median()) if len(base) else None))

    def label(curve: _Curve) -> str:
        m = curve.hue_value
        name = f"{_fmt(m)} (vanilla)" if m == 0 else _fmt(m)
        stopped = reached_tol(curve.runs)
        n = len(curve.runs)
        if not stopped.all():
            reached = int(stopped.sum())
            return f"{name}: {reached} of {n} stopped by {TOL_RULE}" if n > 1 else f"{name}: {TOL_RULE} not reached"
        its = float(curve.runs["iterations"].median())
        text = f"{name}: {its:g} iterations to tol" + (" (median)" if n > 1 else "")
        base = vanilla[curve.runs["run_id"].iloc[0]]
        if m != 0 and base:
            ratio = base / its
            text += f", {ratio:.1f}× fewer" if ratio >= 1 else f", {1 / ratio:.1f}× more"
        return text

    return _convergence(traces, runs, layout, "iteration", label=label)
