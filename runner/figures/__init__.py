"""Figures of a sweep (or of one run), drawn from its parquet files alone: one module per figure.

``draw(path)`` reads ``runs.parquet`` and ``traces.parquet`` through the
tables layer (``load_runs`` and ``load``; a single run's folder works too),
draws every figure that fits the data and writes each as PNG and PDF into
``path/figures/``. ``python -m runner.plot DIR`` (or ``python -m runner.figures DIR``)
does the same from the command line.

A figure is a module of this package with a ``name``, its file stem, and a
function ``figure(traces, runs) -> Figure | None``; :data:`REGISTRY` lists the
modules, one line each, in drawing order, so that adding a figure is one module
and one line there. What the figures share: ``_data`` (the tables' columns, each
run's rows, and its objective, built by ``objectives.REGISTRY`` or a config folder the
user names with ``--config-dir``, never by a ``_target_`` read from the folder), ``_style``
(palette, names, number formatting), ``_layout`` (swept keys, grid or search,
panels, legends, titles) and ``_series`` (series, repetitions, view ranges).
The figures, each drawn only where it applies:

=========================  ==========================================================
``convergence_iteration``  f - f* (f where f* is unknown) against iteration, log y;
                           one line per value of the swept hyperparameter, one
                           panel per value of the other swept keys.
``convergence_evaluations`` the same against evaluations, function plus gradient
                           (``nfev + ngev``), when they are not simply iterations + 1 (scipy).
``momentum``               vanilla (momentum 0) against each momentum value, with
                           the iterations to reach the tolerance in the legend.
``paths``                  iterate paths on the contours of a 2-D objective.
``heatmap_lr_momentum``    final f - f* and iterations over an lr x momentum grid,
                           with the theoretical stability boundary on quadratics, the
                           optimal (lr*, momentum*) and the iterations theory gives.
``objective_1d``           a 1-D objective and its derivative, critical points
                           marked, with the runs' iterates on the curve.
``search``                 when the swept values are not a grid (:func:`is_grid`:
                           Optuna, random search): final f - f* against each swept
                           key, and the best so far against the trial.
``lr_sensitivity``         a study across problems (objective and optimizer both swept):
                           median final f - f* against lr, a line per optimizer, a
                           panel per objective, the best lr starred.
``performance_profile``    the same study: Dolan & Moré's rho_s(tau) over iterations to
                           f <= f_L + t (f(x0) - f_L), each optimizer at its best lr.
``data_profile``           the same study: the fraction of problems solved within a
                           budget of gradient evaluations (Moré & Wild).
``runtime_ecdf``           the same study, where f* is known: the ECDF of gradient
                           evaluations to f - f* <= 1e-k, k = 1..8 (COCO).
=========================  ==========================================================

Conventions shared by the figures:

* **Grid or search** (:func:`is_grid`): off a grid, figures draw one panel, not one per
  value of a swept key, and a line's legend entry names all its swept values.
* **Titles** are wrapped to the figure's width and followed by the settings the sweep
  holds fixed (:func:`fixed_settings`); a legend beside the panels widens the figure.
* **Reached tol** means the stop rule |f_k - f_(k-1)| < tol fired (:func:`reached_tol`:
  ``stop_reason == "tol"``, or status ``converged`` in tables without ``stop_reason``);
  its marker sits on the run's last row.
* **Swept keys** (:func:`swept_keys`) are the config columns whose value varies
  across runs. The seed, and columns that follow it (``objective.seed: ${seed}``),
  make repetitions, not sweeps. The line colour follows ``lr`` when it is swept,
  else the swept key with the most values; the other swept keys make panels.
* **Repetitions** (runs sharing a ``config_id``) are drawn as their median with a
  25-75 % band (:func:`repetition_quantiles`): at each x every run counts with
  its last recorded value at or before x, so a run that stopped early keeps its
  final value, and a diverged run counts as +inf.
* **Diverged runs** keep their finite rows; the y range comes from the runs that
  did not diverge (and every run's start), and an ``x`` marks where a diverged
  run diverged: its last finite value, or, when that is off the top, the point
  where its curve leaves the plot for good (the legend names the iteration).
* **Theory** (:mod:`runner.theory`, on quadratics, for gd, heavy ball and Nesterov): a
  convergence line against iterations gets the dashed line (f_0 - f*) ρ^(2k) of its
  ``rate_theory`` from the same start; the heatmap marks the optimal (lr*, momentum*) and
  prints the iterations theory gives each cell, in brackets.
* **Colours** are the Okabe-Ito colour-blind-safe palette (:data:`PALETTE`,
  yellow last, as it is faint on white), cycling line styles past 8 values;
  heatmaps use viridis. Figures are plain :class:`matplotlib.figure.Figure`
  objects, never pyplot state, so drawing works headless and leaves no
  figure open.

Each ``figure(traces, runs)`` function returns a Figure (or ``None`` when the
figure does not apply); its artists carry gids that name what they show:
``run:<run_id>`` (one run's rows), ``median:<config_id>`` and
``band:<config_id>`` (repetitions), ``diverged:<run_id>``, ``end:<run_id>``,
``path:<run_id>``, ``iterates:<run_id>``, ``start:<run_id>``, ``stability``, ``critical:<kind>``,
``final`` and ``best_so_far`` (search); beside the measurement, ``theory:<config_id>`` (the
theoretical rate's dashed line), ``optimum``, ``theory_iterations:<lr>:<momentum>`` and
``theory_contour`` (heatmap).
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from pathlib import Path
from types import ModuleType

import pandas as pd
from matplotlib.figure import Figure

from runner.figures._data import FIGURES_DIR, TRACE_COLUMNS, atomic_write, load, load_runs, reading, trust_config_dir
from runner.figures._layout import DPI, freeze_layout
from runner.figures._shared import shared

FORMATS = ("png", "pdf")
SAVE = {
    # zlib's fastest level: the same pixels, a file about as small (a figure's flat colours compress
    # at once), in a third of the time of the default 6.
    "png": {"pil_kwargs": {"compress_level": 1}},
    "pdf": {"metadata": {"CreationDate": None}},  # reproducible PDFs
}


def _register(*modules: str) -> dict[str, ModuleType]:
    """The figure modules by their ``name`` (file stem); a module without ``name`` and ``figure``,
    or a name taken twice, is refused."""
    registry = {}
    for module_name in modules:
        module = import_module(f"{__name__}.{module_name}")
        stem, figure = getattr(module, "name", None), getattr(module, "figure", None)
        if not isinstance(stem, str) or not callable(figure):
            raise TypeError(f"figure module={module_name}: expected a module with name (its file stem) and figure()")
        if stem in registry:
            raise ValueError(f"name={stem}: expected one figure per name, {module_name} and {registry[stem].__name__}")
        registry[stem] = module
    return registry


# The registry, in drawing order: a new figure is a module (``name`` and ``figure``) and one line here.
REGISTRY = _register(
    "convergence",
    "evaluations",
    "momentum",
    "paths",
    "heatmap",
    "search",
    "objective_1d",
    "lr_sensitivity",
    "performance_profile",
    "data_profile",
    "runtime_ecdf",
)

FIGURE_NAMES = tuple(REGISTRY)


def draw(path: str | Path, runs: pd.DataFrame | None = None, traces: pd.DataFrame | None = None) -> list[Path]:
    """Draw every figure that fits the runs below ``path`` into ``path/figures/``.

    ``path`` is a sweep folder or a single run's folder. Returns the files
    written, a PNG and a PDF per figure, in registry order. A figure that fails is
    reported on stderr and skipped; the others are still drawn. Figure files of a
    previous draw that no longer apply are removed. With two cores or more, a forked
    copy of this process draws some of the figures (:func:`runner.figures._shared.shared`).

    ``runs`` (``load_runs(path)``) and ``traces`` (``load(path, columns=TRACE_COLUMNS)``, or more
    columns) are read from ``path`` unless given: a caller that has just loaded them passes them on.
    """
    path = Path(path)
    runs = load_runs(path) if runs is None else runs
    traces = load(path, columns=TRACE_COLUMNS) if traces is None else traces
    drawn = shared(list(REGISTRY), lambda name: _draw_one(path, name, traces, runs))
    written = []
    for name in REGISTRY:
        files, failure = drawn[name]
        if failure:
            print(f"figures: {name} not drawn ({failure})", file=sys.stderr, flush=True)
        written += files
    return written


def _draw_one(path: Path, name: str, traces: pd.DataFrame, runs: pd.DataFrame) -> tuple[list[Path], str | None]:
    """Figure ``name`` of the runs below ``path``, written as PNG and PDF (or its old files removed when it
    does not apply): ``(the files written, why it was not drawn or None)``. A figure that raises is not
    drawn; a file that cannot be written raises (:class:`runner.store.WriteError`)."""
    out = path / FIGURES_DIR
    try:
        with reading(path):
            fig = REGISTRY[name].figure(traces, runs)
            if fig is not None:
                freeze_layout(fig)  # one layout for the PNG and the PDF
        failure = None
    except Exception as err:  # one broken figure must not cost the others
        fig, failure = None, f"{type(err).__name__}: {err}"
    written = []
    for fmt in FORMATS:
        target = out / f"{name}.{fmt}"
        if fig is None:
            target.unlink(missing_ok=True)
            continue
        out.mkdir(exist_ok=True)
        atomic_write(target, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI, **SAVE[fmt]))
        written.append(target)
    return written, failure


def figures(traces: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Figure]:
    """Every figure that applies, by file stem (see the module docstring)."""
    made = {name: module.figure(traces, runs) for name, module in REGISTRY.items()}
    return {name: fig for name, fig in made.items() if fig is not None}


def main(argv: list[str] | None = None) -> int:
    """``python -m runner.plot DIR``: redraw the figures of a sweep or run folder from its files."""
    parser = argparse.ArgumentParser(
        prog="python -m runner.plot",
        description="Draw the figures of a sweep folder (runs.parquet, traces.parquet) or of a single run's "
        "folder (trace.parquet, summary.json) into DIR/figures/, as PNG and PDF.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="a sweep folder or a single run's folder")
    parser.add_argument(
        "--config-dir",
        type=Path,
        action="append",
        default=[],
        metavar="CONF",
        help="a config folder of yours, as given to python -m runner --config-dir: the objectives of its "
        "objective/*.yaml are built for the figures too (only the project's are otherwise; a folder's files "
        "never name code that runs)",
    )
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"DIR={args.dir}: expected an existing folder")
    for conf in args.config_dir:
        if not (conf / "objective").is_dir():
            parser.error(f"--config-dir={conf}: expected a config folder with an objective/ group")
        trust_config_dir(conf)
    try:
        written = draw(args.dir)
    except KeyboardInterrupt:  # the figures written so far are whole: each file is renamed into place
        print(f"interrupted: the figures written so far are in {args.dir / FIGURES_DIR}", file=sys.stderr)
        return 130  # 128 + SIGINT, the command line's code for Ctrl-C (runner.interrupt, a layer above)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a figure's file could not be written (disk full, a read-only folder): one line
        print(f"error: {err}", file=sys.stderr)
        return 1
    for target in written:
        print(target)
    if not written:
        print(f"no figures: no run below {args.dir} has a trace", file=sys.stderr)
    return 0
