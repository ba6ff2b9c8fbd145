"""The figures under their historical names: ``python -m runner.plot DIR`` and ``runner.plot.draw``.

The figures live in :mod:`runner.figures`, one module each; this module only
gives them the names the command line, the README and existing code use.
"""

from __future__ import annotations

import sys

from runner.figures import FIGURE_NAMES, FORMATS, REGISTRY, draw, figures, main, trust_config_dir
from runner.figures._data import TRACE_COLUMNS, config_keys, reached_tol
from runner.figures._layout import MAX_LINES, MAX_PANELS, _evenly, fixed_settings, is_grid, swept_keys
from runner.figures._series import repetition_quantiles, run_series
from runner.figures._style import PALETTE
from runner.figures.convergence import figure as convergence_figure
from runner.figures.evaluations import figure as evaluations_figure
from runner.figures.heatmap import figure as heatmap_figure
from runner.figures.heatmap import stability_limit
from runner.figures.momentum import figure as momentum_figure
from runner.figures.objective_1d import critical_points
from runner.figures.objective_1d import figure as objective_1d_figure
from runner.figures.paths import MARKED_PATH
from runner.figures.paths import figure as paths_figure
from runner.figures.search import figure as search_figure

__all__ = [
    "FIGURE_NAMES",
    "FORMATS",
    "MARKED_PATH",
    "MAX_LINES",
    "MAX_PANELS",
    "PALETTE",
    "REGISTRY",
    "TRACE_COLUMNS",
    "_evenly",
    "config_keys",
    "convergence_figure",
    "critical_points",
    "draw",
    "evaluations_figure",
    "figures",
    "fixed_settings",
    "heatmap_figure",
    "is_grid",
    "main",
    "momentum_figure",
    "objective_1d_figure",
    "paths_figure",
    "reached_tol",
    "repetition_quantiles",
    "run_series",
    "search_figure",
    "stability_limit",
    "swept_keys",
    "trust_config_dir",
]

if __name__ == "__main__":
    sys.exit(main())
