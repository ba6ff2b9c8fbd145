"""The figures package: its registry lists exactly its figure modules, and every figure it lists
draws a Figure, or says it does not apply (None), on small sweeps of every shape."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import runner.figures as figures
from runner.run import run
from runner.tables import load, load_runs, write_tables

# The file stems users and scripts know: renaming one loses a figure from their folders.
STEMS = {
    "convergence_iteration",
    "convergence_evaluations",
    "momentum",
    "paths",
    "heatmap_lr_momentum",
    "objective_1d",
    "search",
    "lr_sensitivity",
    "performance_profile",
    "data_profile",
    "runtime_ecdf",
}
PACKAGE = Path(figures.__file__).parent

# Small sweeps, one per shape a figure looks for (overrides per run).
QUADRATIC = ["objective=shifted_quadratic", "optimizer=momentum", "max_iter=60", "tol=1e-9"]
SWEEPS = {
    "grid": [[*QUADRATIC, f"lr={lr}", f"optimizer.momentum={m}"] for lr in (1, 2) for m in (0, 0.5)],
    "momentum": [[*QUADRATIC, "lr=1", f"optimizer.momentum={m}"] for m in (0, 0.5)],
    "search": [[*QUADRATIC, f"lr={lr}", f"optimizer.momentum={m}"] for lr, m in ((0.5, 0), (1, 0.3), (2, 0.6))],
    "across_problems": [
        [f"objective={objective}", f"optimizer={optimizer}", f"lr={lr}", "max_iter=60", "tol=0"]
        for objective in ("quartic", "shifted_quadratic")
        for optimizer in ("gd", "adam")
        for lr in (0.01, 0.1)
    ],
    "one_d_and_scipy": [
        ["objective=quartic", "optimizer=gd", "lr=0.01", "max_iter=60"],
        ["objective=quartic", "optimizer=scipy", "optimizer.method=BFGS", "max_iter=60"],
    ],
}


def test_the_registry_lists_every_figure_module_once_under_its_file_stem():
    modules = {m.name for m in pkgutil.iter_modules([str(PACKAGE)]) if not m.name.startswith("_")}
    registered = {module.__name__.rpartition(".")[2] for module in figures.REGISTRY.values()}
    assert registered == modules
    assert set(figures.REGISTRY) >= STEMS
    for stem, module in figures.REGISTRY.items():
        assert module.name == stem and callable(module.figure)


def test_a_figure_module_without_name_or_figure_or_with_a_taken_name_is_refused():
    with pytest.raises(TypeError, match="figure module=_style: expected a module with name"):
        figures._register("_style")
    with pytest.raises(ValueError, match="name=paths: expected one figure per name"):
        figures._register("paths", "paths")


def test_figures_import_the_layers_below_them_in_one_module_and_never_the_runner():
    """Tables and storage come through ``_data`` alone (a rename below is one line); no driver at all."""
    below = ("runner.store", "runner.tables", "runner.config")
    drivers = ("runner.run", "runner.loop", "runner.batched", "runner.scipy_driver", "runner.stopping", "runner.app")
    for path in sorted(PACKAGE.glob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        assert not imported & set(drivers), path.name
        if path.name != "_data.py":
            assert not imported & set(below), path.name


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from runner.app import config_dir

    made = {}
    for name, jobs in SWEEPS.items():
        root = tmp_path_factory.mktemp(name)
        for i, overrides in enumerate(jobs):
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                cfg = compose(config_name="config", overrides=overrides)
            run(cfg, root / f"job{i}")
        write_tables(root)
        made[name] = (load(root), load_runs(root))
    return made


def test_every_registered_figure_draws_a_figure_or_none_and_each_draws_somewhere(sweeps):
    drawn = set()
    for sweep, (traces, runs) in sweeps.items():
        assert set(runs["status"]) <= {"converged", "max_iter", "diverged"}, sweep
        for stem, module in figures.REGISTRY.items():
            fig = module.figure(traces, runs)
            assert fig is None or isinstance(fig, Figure), (sweep, stem)
            if fig is not None:
                drawn.add(stem)
    assert drawn == set(figures.REGISTRY)  # every figure met a sweep it applies to
