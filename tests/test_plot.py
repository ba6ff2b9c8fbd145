"""Figures: which ones a sweep gets, and that what they draw is the trace data itself."""

from __future__ import annotations

import itertools
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from runner import plot
from runner.app import config_dir
from runner.run import run
from runner.tables import load, load_runs, write_tables
from tests.helpers import run_module

REPO = Path(__file__).resolve().parent.parent
L_QUADRATIC = 2 / 9  # largest Hessian eigenvalue of the shifted quadratic
PRESET_FIGURES = {
    "lr_sweep": {"convergence_iteration", "paths"},
    "momentum_sweep": {"convergence_iteration", "momentum", "paths"},
    "lr_momentum_grid": {"convergence_iteration", "paths", "heatmap_lr_momentum"},
}


@pytest.fixture(scope="module")
def compose_cfg():
    """``compose_cfg("optimizer=momentum", "lr=0.5")`` -> the config as the CLI hands it to ``run``.

    Unresolved, unlike the conftest fixture's: ``objective.seed: ${seed}`` stays a
    reference, so runs that differ only in seed share a ``config_id``. Option
    choices (``optimizer=momentum``, ``+experiment=...``) are composed by Hydra,
    once per combination; values (``lr=0.5``) are merged in, which is quicker.
    """
    composed = {}

    def _compose(*overrides: str):
        choices = tuple(o for o in overrides if o.startswith("+") or o.split("=")[0] in ("objective", "optimizer"))
        if choices not in composed:
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                composed[choices] = compose(config_name="config", overrides=list(choices))
        values = [o for o in overrides if o not in choices]
        return OmegaConf.merge(composed[choices], OmegaConf.from_dotlist(values))

    return _compose


def make_sweep(compose_cfg, root: Path, *jobs: list[str]) -> Path:
    """Run each job (a list of overrides) into ``root/<overrides>`` and write the sweep's tables."""
    for overrides in jobs:
        run(compose_cfg(*overrides), root / ("/".join(o.lstrip("+") for o in overrides) or "run"))
    write_tables(root)
    return root


def data(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return load(path), load_runs(path)


def artists(fig, prefix: str) -> dict:
    """The figure's lines whose gid starts with ``prefix``, by the rest of the gid."""
    return {
        ln.get_gid()[len(prefix) :]: ln
        for ax in fig.axes
        for ln in ax.get_lines()
        if (ln.get_gid() or "").startswith(prefix)
    }


def legend_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def gap_rows(traces: pd.DataFrame, runs: pd.DataFrame, run_id: str) -> np.ndarray:
    """``(iteration, f - f*)`` of a run's finite trace rows, straight from the tables."""
    rows = traces[traces["run_id"] == run_id].sort_values("iteration")
    f_star = runs.set_index("run_id").loc[run_id, "f_star"]
    rows = rows[np.isfinite(rows["f"])]
    return np.column_stack([rows["iteration"], rows["f"] - f_star])


# --------------------------------------------------------------------------- presets


def preset_jobs(name: str) -> list[list[str]]:
    """The preset's grid, read from its yaml: ``[["+experiment=NAME", "lr=0.5"], ...]``."""
    params = OmegaConf.load(REPO / "conf" / "experiment" / f"{name}.yaml").hydra.sweeper.params
    axes = [[f"{key}={v}" for v in str(values).split(",")] for key, values in params.items()]
    return [[f"+experiment={name}", *combo] for combo in itertools.product(*axes)]


@pytest.mark.parametrize("preset", ["momentum_sweep", "lr_momentum_grid"])
def test_each_preset_gets_its_figures(preset, compose_cfg, tmp_path):
    sweep_dir = make_sweep(compose_cfg, tmp_path, *preset_jobs(preset))
    written = plot.draw(sweep_dir)
    expected = {sweep_dir / "figures" / f"{name}.{fmt}" for name in PRESET_FIGURES[preset] for fmt in ("png", "pdf")}
    assert set(written) == expected
    assert set((sweep_dir / "figures").iterdir()) == expected
    for path in written:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if path.suffix == ".png" else head.startswith(b"%PDF")


def test_the_lr_sweep_preset_draws_its_figures_at_the_end_of_the_sweep(tmp_path, monkeypatch, capsys):
    sweep_dir = tmp_path / "lr_sweep"
    done = run_module("runner", "+experiment=lr_sweep", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "figures: not drawn" not in done.stdout + done.stderr
    names = {p.name for p in (sweep_dir / "figures").iterdir()}
    assert names == {f"{n}.{fmt}" for n in PRESET_FIGURES["lr_sweep"] for fmt in ("png", "pdf")}

    # Redrawn from the parquet files alone, by the command line.
    for path in (sweep_dir / "figures").iterdir():
        path.unlink()
    (sweep_dir / "figures" / "momentum.png").write_bytes(b"stale")  # a figure that no longer applies goes
    with monkeypatch.context() as patch:  # python -m runner.plot DIR, in this process
        patch.setattr(sys, "argv", ["runner.plot", str(sweep_dir)])
        patch.delitem(sys.modules, "runner.plot")  # run as __main__, not on top of the imported module
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_module("runner.plot", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    assert {Path(line).name for line in capsys.readouterr().out.split()} == names
    assert {p.name for p in (sweep_dir / "figures").iterdir()} == names


# --------------------------------------------------------------------------- what is drawn is the data


LR_SWEEP = [
    ["objective=shifted_quadratic", "optimizer=gd", f"lr={lr}", "max_iter=2000", "tol=1e-12"] for lr in (0.5, 2, 10)
]


def test_convergence_lines_are_the_trace_rows_and_the_diverged_run_is_marked(compose_cfg, tmp_path):
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *LR_SWEEP))
    fig = plot.convergence_figure(traces, runs)
    (ax,) = fig.axes
    lines = artists(fig, "run:")
    assert set(lines) == set(runs["run_id"])
    for run_id, line in lines.items():
        assert np.array_equal(line.get_xydata(), gap_rows(traces, runs, run_id))
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "f − f*" and ax.get_xlabel() == "iteration"
    assert ax.get_legend().get_title().get_text() == "learning rate"

    # lr = 10 > 2/L diverges; its 1e308 does not set the axis range, the x marks where it leaves the plot.
    (diverged,) = runs[runs["status"] == "diverged"].itertuples()
    assert diverged.lr == 10
    f0 = traces.loc[traces["iteration"] == 0, "f"].iloc[0]
    bottom, top = ax.get_ylim()
    assert f0 < top < 10 * f0 and bottom < runs.loc[runs["status"] == "converged", "f_gap"].min()
    (marker,) = artists(fig, "diverged:").values()
    rows = gap_rows(traces, runs, diverged.run_id)
    k = int(np.flatnonzero(rows[:, 1] <= top)[-1]) + 1  # the first row of its final climb out of the plot
    assert marker.get_xydata().tolist() == [[rows[k, 0], top]]
    assert rows[k - 1, 1] <= top < rows[k, 1]
    assert f"10 (diverged at iteration {diverged.iterations})" in legend_texts(fig)
    # the x range is set by the converged runs and the marker, not by the 1762 iterations of the diverged run
    assert ax.get_xlim()[1] < 1.1 * max(runs.loc[runs["status"] == "converged", "iterations"].max(), rows[k, 0])


def test_a_run_that_diverges_within_the_plot_is_marked_at_its_last_finite_value():
    f_ok = 10 * 0.5 ** np.arange(21)
    f_bad = np.array([10.0, 5.0, 3.0, np.nan])
    traces = pd.DataFrame(
        {
            "iteration": np.r_[np.arange(21), np.arange(4)],
            "f": np.r_[f_ok, f_bad],
            "nfev": np.r_[np.arange(21), np.arange(4)] + 1,
            "run_id": ["a"] * 21 + ["b"] * 4,
            "config_id": ["A"] * 21 + ["B"] * 4,
            "lr": [0.1] * 21 + [1.0] * 4,
        }
    )
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "config_id": ["A", "B"],
            "lr": [0.1, 1.0],
            "objective": "toy",
            "optimizer": "gd",
            "status": ["converged", "diverged"],
            "iterations": [20, 3],
            "f_star": [0.0, 0.0],
            "config": "{}",
        }
    )
    fig = plot.convergence_figure(traces, runs)
    assert artists(fig, "diverged:")["b"].get_xydata().tolist() == [[2.0, 3.0]]
    assert np.array_equal(artists(fig, "run:")["b"].get_xydata(), [[0, 10], [1, 5], [2, 3]])
    assert fig.axes[0].get_ylim()[1] < 100


def test_repetitions_are_drawn_as_median_and_quartile_band(compose_cfg, tmp_path):
    jobs = [
        ["objective=least_squares", "optimizer=sgd", f"lr={lr}", "max_iter=150", f"seed={s}", "tol=0"]
        for lr in (0.001, 0.003)
        for s in range(3)
    ]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    assert "objective.seed" in runs.columns and plot.swept_keys(runs) == ["lr"]  # seed-followers are not sweeps
    fig = plot.convergence_figure(traces, runs)
    medians, bands = artists(fig, "median:"), {c.get_gid()[5:]: c for c in fig.axes[0].collections}
    assert set(medians) == set(bands) == set(runs["config_id"])
    for config_id, group in runs.groupby("config_id"):
        assert len(group) == 3 and group["f_star"].nunique() == 3  # each seed its own data, its own f*
        # f - f* of every seed by iteration, each with its own f*
        rows = traces[traces["config_id"] == config_id].merge(
            group[["run_id", "f_star"]], on="run_id", suffixes=("_trace", "")
        )
        assert "f_star_trace" not in rows or rows["f_star_trace"].equals(rows["f_star"])  # the trace's own f*
        table = rows.assign(gap=rows["f"] - rows["f_star"]).pivot(index="iteration", columns="run_id", values="gap")
        expected = table.quantile([0.25, 0.5, 0.75], axis=1).T.to_numpy()
        assert np.allclose(
            medians[config_id].get_xydata(), np.column_stack([table.index, expected[:, 1]]), rtol=1e-12, atol=0
        )
        vertices = bands[config_id].get_paths()[0].vertices
        points = {tuple(np.round(v, 12)) for v in vertices}
        for q in (0, 2):
            assert all(
                (float(i), round(float(v), 12)) in points for i, v in zip(table.index, expected[:, q], strict=True)
            )
        assert np.all(expected[:, 0] < expected[:, 2])  # the seeds do differ: a real band
    assert "median and 25–75 % band over 3 seeds" in fig.get_suptitle()


def test_repetition_quantiles_carry_a_stopped_run_forward_and_count_divergence_as_inf():
    a = (np.array([0.0, 1, 2, 3]), np.array([8.0, 4, 2, 1]))
    b = (np.array([0.0, 1]), np.array([6.0, 3]))  # stopped after iteration 1: stays at 3
    c = (np.array([0.0, 1, 2]), np.array([7.0, 9, np.nan]))  # diverged at iteration 2
    grid, (lo, mid, hi) = plot.repetition_quantiles([a, b, c])
    assert grid.tolist() == [0, 1, 2, 3]
    assert mid.tolist() == [7, 4, 3, 3]
    assert lo.tolist() == [6.5, 3.5, 2.5, 2]
    assert hi.tolist() == [7.5, 6.5, np.inf, np.inf]
    finite = [(np.arange(5.0), np.random.default_rng(i).random(5)) for i in range(4)]
    _, qs = plot.repetition_quantiles(finite)
    assert np.allclose(qs, np.quantile(np.stack([y for _, y in finite]), [0.25, 0.5, 0.75], axis=0), rtol=1e-15)


def test_a_sweep_with_a_failed_and_a_diverged_run_still_gets_its_figures(compose_cfg, tmp_path):
    jobs = [*LR_SWEEP, ["objective=shifted_quadratic", "optimizer=gd", "lr=-0.1"]]
    sweep_dir = make_sweep(compose_cfg, tmp_path, *jobs)
    traces, runs = data(sweep_dir)
    assert sorted(runs["status"]) == ["converged", "converged", "diverged", "failed"]
    written = {p.name for p in plot.draw(sweep_dir)}
    assert written == {"convergence_iteration.png", "convergence_iteration.pdf", "paths.png", "paths.pdf"}
    fig = plot.convergence_figure(traces, runs)
    assert len(artists(fig, "run:")) == 3 and len(artists(fig, "diverged:")) == 1
    assert any("not drawn, no trace" in t and "failed: lr = -0.1" in t for t in legend_texts(fig))

    paths = plot.paths_figure(traces, runs)
    (ax,) = paths.axes
    (marker,) = artists(paths, "diverged:").values()
    (x, y), (x0, x1), (y0, y1) = marker.get_xydata()[0], ax.get_xlim(), ax.get_ylim()
    assert np.isclose(x, x0) or np.isclose(x, x1) or np.isclose(y, y0) or np.isclose(y, y1)  # on the view's edge
    assert x1 - x0 < 100 and y1 - y0 < 100  # not stretched to the diverged run's 1e154


def test_paths_are_the_iterates_with_start_end_and_minimum(compose_cfg, tmp_path):
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *LR_SWEEP[:2]))
    fig = plot.paths_figure(traces, runs)
    paths, starts, ends = artists(fig, "path:"), artists(fig, "start:"), artists(fig, "end:")
    for run_id in runs["run_id"]:
        rows = traces[traces["run_id"] == run_id].sort_values("iteration")[["x_0", "x_1"]].to_numpy()
        assert np.array_equal(paths[run_id].get_xydata(), rows)
        assert np.array_equal(starts[run_id].get_xydata(), rows[:1]) and np.array_equal(
            ends[run_id].get_xydata(), rows[-1:]
        )
    assert artists(fig, "x_star")[""].get_xydata().tolist() == [[2.0, -3.0]]
    assert fig.axes[0].get_xlabel() == "$x_0$" and fig.axes[0].get_ylabel() == "$x_1$"
    assert fig.axes[0].collections  # the contours


# --------------------------------------------------------------------------- momentum and the heatmap


def test_momentum_figure_annotates_iterations_to_tol(compose_cfg, tmp_path):
    jobs = [["optimizer=momentum", "lr=0.1", f"optimizer.momentum={m}", "max_iter=3000", "tol=1e-12"] for m in (0, 0.8)]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    fig = plot.momentum_figure(traces, runs)
    by_m = runs.set_index("optimizer.momentum")
    vanilla, heavy = int(by_m.loc[0.0, "iterations"]), int(by_m.loc[0.8, "iterations"])
    assert heavy < vanilla
    texts = legend_texts(fig)
    assert f"0 (vanilla): {vanilla} iterations to tol" in texts
    assert f"0.8: {heavy} iterations to tol, {vanilla / heavy:.1f}× fewer" in texts
    assert fig.axes[0].get_legend().get_title().get_text() == "momentum"
    ends = artists(fig, "end:")
    for run_id, line in artists(fig, "run:").items():
        assert np.array_equal(line.get_xydata(), gap_rows(traces, runs, run_id))
        assert np.array_equal(ends[run_id].get_xydata(), line.get_xydata()[-1:])
    assert plot.momentum_figure(*data(make_sweep(compose_cfg, tmp_path / "gd", *LR_SWEEP[:2]))) is None


def test_heatmap_marks_diverged_cells_and_draws_the_stability_boundary(compose_cfg, tmp_path):
    jobs = [
        ["optimizer=momentum", f"lr={lr}", f"optimizer.momentum={m}", "max_iter=500", "tol=1e-12"]
        for lr in (2, 8, 16)
        for m in (0, 0.6)
    ]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    fig = plot.heatmap_figure(traces, runs)
    boundaries = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "stability"]
    assert len(boundaries) == 2  # on both panels
    for line in boundaries:
        lr, m = line.get_xydata().T
        assert np.allclose(lr, 2 * (1 + m) / L_QUADRATIC, rtol=1e-12) and m.min() < 0 and m.max() > 0.6
    cell = list(zip(runs["lr"], runs["optimizer.momentum"], strict=True))
    assert {c for c, s in zip(cell, runs["status"], strict=True) if s == "diverged"} == {
        (16.0, 0.0)
    }  # lr = 16 > 2/L = 9
    cells = {p.get_gid() for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith("diverged_cell:")}
    assert cells == {"diverged_cell:16:0"}
    # every converged cell prints its run's iterations on the right panel
    _, ax_iter = [ax for ax in fig.axes if ax.get_title()]
    # (the second, dim number theory gives a cell sits at the same centre: runner.theory's tests check it)
    texts = {
        (round(t.get_position()[0], 9), round(t.get_position()[1], 9)): t.get_text()
        for t in ax_iter.texts
        if not (t.get_gid() or "").startswith("theory_iterations:")
    }
    converged = [
        (c, its) for c, its, s in zip(cell, runs["iterations"], runs["status"], strict=True) if s == "converged"
    ]
    assert len(converged) == 4
    for c, its in converged:
        assert texts[c] == str(its)
    (legend,) = fig.legends
    assert "stability boundary lr = 2(1 + momentum)/L, L = 0.2222: unstable to its right" in [
        t.get_text() for t in legend.get_texts()
    ]
    assert plot.stability_limit("gd", {}, L_QUADRATIC)(0.5) == 9.0


def test_the_heatmap_boundary_is_the_optimizers_own_stable_lr(compose_cfg, tmp_path):
    """Nesterov's boundary lr = 2(1 + m)/((1 + 2m) L) separates its converged cells from its diverged
    ones; RMSprop, whose step adapts to the gradients, has no boundary to draw."""
    jobs = [
        ["optimizer=nesterov", f"lr={lr}", f"optimizer.momentum={m}", "max_iter=400", "tol=1e-12"]
        for lr in (4, 6, 7, 8)
        for m in (0.3, 0.9)
    ]
    traces, runs = data(make_sweep(compose_cfg, tmp_path / "nesterov", *jobs))
    fig = plot.heatmap_figure(traces, runs)
    boundaries = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "stability"]
    assert boundaries
    for line in boundaries:
        lr, m = line.get_xydata().T
        assert np.allclose(lr, 2 * (1 + m) / ((1 + 2 * m) * L_QUADRATIC), rtol=1e-12)
    limit = 2 * (1 + runs["optimizer.momentum"]) / ((1 + 2 * runs["optimizer.momentum"]) * L_QUADRATIC)
    # Above the limit (momentum 0.3: 7.3, 0.9: 6.1) f - f* ends above where it started, or overflows.
    start = traces[traces["iteration"] == 0].set_index("run_id")["f"] - runs.set_index("run_id")["f_star"]
    final = runs.set_index("run_id")["f_gap"]
    above = runs.set_index("run_id")["lr"] > limit.to_numpy()
    assert above.any() and (~above).any()
    assert all(not np.isfinite(final[r]) or final[r] > start[r] for r in above.index[above])
    assert set(runs.set_index("run_id").loc[~above, "status"]) == {"converged"}
    (legend,) = fig.legends
    assert "stability boundary lr = 2(1 + momentum)/((1 + 2 momentum) L), L = 0.2222: unstable to its right" in [
        t.get_text() for t in legend.get_texts()
    ]

    jobs = [
        ["optimizer=rmsprop", f"lr={lr}", f"optimizer.momentum={m}", "max_iter=20"] for lr in (0.1, 1) for m in (0, 0.5)
    ]
    fig = plot.heatmap_figure(*data(make_sweep(compose_cfg, tmp_path / "rmsprop", *jobs)))
    assert fig is not None and not [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "stability"]


# --------------------------------------------------------------------------- big grids

BIG_LRS = [float(i + 1) for i in range(20)]  # 1 .. 20, across the stability boundary 2(1 + m)/L = 9 .. 16.92
BIG_MOMENTA = [round(0.08 * i, 4) for i in range(12)]  # 0 .. 0.88


@pytest.fixture(scope="module")
def big_grid(compose_cfg, tmp_path_factory) -> Path:
    """A 20 x 12 lr x momentum grid, 300 iterations each, tol=0, through the batched path."""
    from runner.batched import Job, run_jobs

    root = tmp_path_factory.mktemp("big_grid")
    jobs = [
        Job(
            OmegaConf.to_container(
                compose_cfg("optimizer=momentum", f"lr={lr}", f"optimizer.momentum={m}", "max_iter=300", "tol=0"),
                resolve=True,
            ),
            f"lr={lr}/optimizer.momentum={m}",
        )
        for lr in BIG_LRS
        for m in BIG_MOMENTA
    ]
    run_jobs(jobs, root)
    write_tables(root)
    return root


def test_evenly_keeps_the_ends_and_the_order():
    assert plot._evenly(list(range(5)), 8) == list(range(5))
    assert plot._evenly(list(range(25)), 9) == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    picked = plot._evenly(list(range(40)), 8)
    assert len(picked) == 8 and picked[0] == 0 and picked[-1] == 39 and picked == sorted(picked)


def test_a_big_grid_draws_evenly_spaced_values_and_says_so(big_grid):
    traces, runs = data(big_grid)
    by_id = runs.set_index("run_id")
    lrs, momenta = plot._evenly(BIG_LRS, plot.MAX_LINES), plot._evenly(BIG_MOMENTA, plot.MAX_PANELS)
    assert len(lrs) == 8 and len(momenta) == 9 and (lrs[0], lrs[-1]) == (1.0, 20.0)
    for fig in (plot.convergence_figure(traces, runs), plot.paths_figure(traces, runs)):
        drawn = artists(fig, "run:") or artists(fig, "path:")
        assert {(by_id.loc[rid, "lr"], by_id.loc[rid, "optimizer.momentum"]) for rid in drawn} == set(
            itertools.product(lrs, momenta)
        )
        titles = [ax.get_title().split("\n")[0] for ax in fig.axes if ax.get_title()]
        assert titles == [f"momentum = {m:g}" for m in momenta]
        assert "showing 8 of 20 learning rate values and 9 of 12 momentum values, evenly spaced" in (fig.get_suptitle())
    # a dot per iterate only where there are few (a diverged path is drawn until it leaves the view)
    lines = list(artists(plot.paths_figure(traces, runs), "path:").values())
    assert {len(ln.get_xdata()) > plot.MARKED_PATH for ln in lines} == {True, False}
    assert all((ln.get_marker() == ".") == (len(ln.get_xdata()) <= plot.MARKED_PATH) for ln in lines)


def test_a_big_heatmap_colours_every_cell_and_labels_a_dozen_ticks(big_grid):
    traces, runs = data(big_grid)
    fig = plot.heatmap_figure(traces, runs)
    (ax,) = [ax for ax in fig.axes if ax.get_title()]  # tol=0: no run reached it, no iterations panel
    (mesh,) = ax.collections
    assert mesh.get_array().shape == (12, 20) and not ax.texts  # too many cells to print in
    diverged = runs[runs["status"] == "diverged"]
    assert len(diverged) and int(mesh.get_array().mask.sum()) == len(diverged)  # every other cell coloured
    cells = {p.get_gid() for p in ax.patches if (p.get_gid() or "").startswith("diverged_cell:")}
    assert cells == {
        f"diverged_cell:{lr:g}:{m:g}" for lr, m in zip(diverged["lr"], diverged["optimizer.momentum"], strict=True)
    }
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{lr:g}" for lr in BIG_LRS[::2]]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{m:g}" for m in BIG_MOMENTA]
    # f - f* = 0 (x* reached exactly) has no log colour: it takes the scale's bottom, and the colour bar says so
    zero = (runs["f_gap"] <= 0) & (runs["status"] != "diverged")
    assert zero.any() and fig.axes[-1].get_ylabel() == "final f − f*"
    coloured = mesh.get_array()[np.isfinite(mesh.get_array().filled(np.nan))]
    assert coloured.min() < mesh.norm.vmin  # drawn in the colour map's "under" colour
    # the boundary crosses the grid; where it does not, the legend says where it is
    (legend,) = fig.legends
    assert legend.get_texts()[0].get_text().replace("\n", " ").endswith("unstable to its right")
    small = runs[runs["lr"] <= 8]
    (legend,) = plot.heatmap_figure(traces[traces["run_id"].isin(small["run_id"])], small).legends
    assert "(at lr 9–16.92, right of the grid)" in legend.get_texts()[0].get_text().replace("\n", " ")


def test_draw_takes_the_tables_it_is_given_and_saves_each_figure_with_one_layout(big_grid, tmp_path, monkeypatch):
    import shutil

    from matplotlib.figure import Figure

    import runner.figures as figures
    from runner.figures._data import TRACE_COLUMNS

    read, given = shutil.copytree(big_grid, tmp_path / "read"), shutil.copytree(big_grid, tmp_path / "given")
    # Every figure drawn in this process: a forked copy's calls to savefig would not reach the list below.
    monkeypatch.setattr(figures._shared, "can_fork", lambda: False)
    engines = []  # the layout engine of each figure as it is saved: none, the layout is kept from the first pass
    save = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda fig, *a, **k: (engines.append(fig.get_layout_engine()), save(fig, *a, **k))
    )
    written = plot.draw(read)
    assert {p.stem for p in written} == PRESET_FIGURES["lr_momentum_grid"] and engines == [None] * len(written)

    runs, traces = load_runs(given), load(given, columns=TRACE_COLUMNS)

    def unread(*_, **__):
        raise AssertionError("draw read a table it was given")

    monkeypatch.setattr(figures, "load", unread)
    monkeypatch.setattr(figures, "load_runs", unread)
    again = plot.draw(given, runs=runs, traces=traces)
    assert [p.name for p in again] == [p.name for p in written]
    for ours, theirs in zip(written, again, strict=True):  # the same tables: the same pixels
        if ours.suffix == ".png":
            assert ours.read_bytes() == theirs.read_bytes(), ours.name


def test_a_kept_layout_is_the_constrained_layout_of_the_figure(big_grid):
    from runner.figures._layout import freeze_layout

    traces, runs = data(big_grid)
    kept, solved = plot.convergence_figure(traces, runs), plot.convergence_figure(traces, runs)
    freeze_layout(kept)
    solved.draw_without_rendering()  # constrained layout as a draw solves it, at the figure's final size
    assert kept.get_layout_engine() is None and solved.get_layout_engine() is not None
    assert np.allclose(
        [ax.get_position().bounds for ax in kept.axes], [ax.get_position().bounds for ax in solved.axes], atol=1e-3
    )


def test_config_columns_read_at_once_give_the_values_read_cell_by_cell():
    from runner.figures._data import _canon, _column

    runs = pd.DataFrame(
        {
            "lr": [0.1, np.nan, 2.0],
            "max_iter": [10, 20, 30],
            "trace.x": [True, False, True],
            "optimizer": pd.array(["gd", None, "momentum"], dtype="str"),
            "objective.x0": [[1.0, 2.0], None, np.array([3.0])],
        },
        index=[7, 3, 5],
    )
    for key in runs.columns:
        cells = [_canon(v) for v in runs[key]]
        column = _column(runs, key)
        assert list(column.index) == [7, 3, 5] and column.dtype == object
        assert [(type(v), v) for v in column] == [(type(v), v) for v in cells], key
    assert list(_column(runs, "seed")) == [None] * 3


# --------------------------------------------------------------------------- 1-D, evaluations, single runs


def test_objective_1d_marks_the_critical_points_and_the_iterates(compose_cfg, tmp_path):
    jobs = [["objective=quartic", "optimizer=gd", f"lr={lr}", "objective.x0=[-6]"] for lr in (0.001, 0.01)]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    fig = plot.objective_1d_figure(traces, runs)
    roots = np.sort(np.roots([4, 21, 10, -17]).real)  # f' of the quartic
    marked = artists(fig, "critical:")
    ax_f = fig.axes[0]
    xs = sorted(ln.get_xydata()[0, 0] for ln in ax_f.get_lines() if (ln.get_gid() or "").startswith("critical:"))
    assert np.allclose(xs, roots, atol=1e-9) and set(marked) == {"minimum", "maximum"}
    assert any(t.startswith("global minimum, x = -4.48") for t in legend_texts(fig))
    for run_id, line in artists(fig, "iterates:").items():
        rows = traces[traces["run_id"] == run_id].sort_values("iteration")
        assert np.array_equal(line.get_xydata(), rows[["x_0", "f"]].to_numpy())
    assert plot.paths_figure(traces, runs) is None and plot.heatmap_figure(traces, runs) is None


def test_scipy_runs_get_a_figure_against_evaluations(compose_cfg, tmp_path):
    methods = ("BFGS", "Powell", "trust-ncg")
    jobs = [["objective=shifted_quadratic", "optimizer=scipy", f"optimizer.method={m}"] for m in methods]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    fig = plot.evaluations_figure(traces, runs)
    # What a method used: function plus gradient evaluations, as the axis says.
    assert fig.axes[0].get_xlabel() == "evaluations: function + gradient (nfev + ngev)"
    assert fig.axes[0].get_legend().get_title().get_text() == "method"
    lines = artists(fig, "run:")
    assert set(lines) == set(runs["run_id"])
    for run_id, line in lines.items():
        rows = traces[traces["run_id"] == run_id].sort_values("iteration")
        assert np.array_equal(line.get_xydata(), np.column_stack([rows["nfev"] + rows["ngev"], rows["f"]]))
    trust = runs.loc[runs["optimizer.method"] == "trust-ncg", "run_id"].iloc[0]
    last = traces[traces["run_id"] == trust].sort_values("iteration").iloc[-1]
    assert lines[trust].get_xdata()[-1] == last["nfev"] + last["ngev"] > 2 * last["nfev"]  # gradients dominate
    assert plot.evaluations_figure(*data(make_sweep(compose_cfg, tmp_path / "gd", *LR_SWEEP[:1]))) is None


def test_a_single_run_folder_gets_its_figures_from_the_command_line(compose_cfg, tmp_path, capsys):
    run_dir = tmp_path / "outputs" / "2026-01-01" / "00-00-00-abc123"
    run(compose_cfg("objective=quartic", "optimizer=gd", "lr=0.01"), run_dir)
    assert plot.main([str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in printed) == [
        "convergence_iteration.pdf",
        "convergence_iteration.png",
        "objective_1d.pdf",
        "objective_1d.png",
    ]
    assert all(Path(p).parent == run_dir / "figures" and Path(p).stat().st_size > 1000 for p in printed)
    fig = plot.convergence_figure(*data(run_dir))
    trace = pd.read_parquet(run_dir / "trace.parquet")
    f_star = json.loads((run_dir / "summary.json").read_text())["f_star"]
    (line,) = artists(fig, "run:").values()
    assert np.array_equal(line.get_xydata(), np.column_stack([trace["iteration"], trace["f"] - f_star]))
    title, fixed = fig.get_suptitle().split("\n", 1)
    assert title == "quartic, gd, lr = 0.01"
    fixed = fixed.replace("\n", " ")
    assert fixed.startswith("fixed: objective=quartic, optimizer=gd, lr=0.01, max_iter=10000, tol=1e-06")

    with pytest.raises(SystemExit) as exit_info:
        plot.main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2


def test_swept_keys_leave_out_seeds_and_keys_only_one_optimizer_has():
    runs = pd.DataFrame(
        {
            "run_id": list("abcd"),
            "config_id": ["A", "A", "B", "C"],
            "seed": [0, 1, 0, 0],
            "objective.seed": [0, 1, 0, 0],
            "optimizer": ["gd", "gd", "gd", "momentum"],
            "lr": [0.1, 0.1, 0.1, 0.1],
            "optimizer.momentum": [None, None, None, 0.9],
            "max_iter": [10, 10, 20, 10],
        }
    )
    assert plot.swept_keys(runs) == ["optimizer", "max_iter"]


def test_a_key_null_for_some_runs_gets_its_own_slot_in_the_search_figure(compose_cfg, tmp_path):
    """scipy has no lr: among gd runs its lr is null, a slot named "default", not a NaN that equals nothing."""
    jobs = [["objective=quartic", "optimizer=gd", f"lr={lr}", "max_iter=50"] for lr in (0.001, 0.01)]
    jobs += [["objective=quartic", "optimizer=scipy", f"optimizer.method={m}", "max_iter=50"] for m in ("BFGS", "CG")]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    assert runs["lr"].isna().sum() == 2
    fig = plot.search_figure(traces, runs)
    by_label = {ax.get_xlabel(): ax for ax in fig.axes}
    assert [t.get_text() for t in by_label["learning rate"].get_xticklabels()] == ["default", "0.001", "0.01"]
    assert [t.get_text() for t in by_label["method"].get_xticklabels()] == ["default", "BFGS", "CG"]
    for ax in (by_label["learning rate"], by_label["method"]):
        (points,) = [ln for ln in ax.get_lines() if ln.get_gid() == "final"]
        assert sorted(points.get_xdata()) == [0, 0, 1, 2]  # every run has its slot


def test_no_heatmap_for_a_random_search_over_lr_and_momentum():
    runs = pd.DataFrame(
        {
            "run_id": list("abc"),
            "config_id": list("ABC"),
            "optimizer": "momentum",
            "status": "ok",
            "lr": [0.1, 0.2, 0.3],
            "optimizer.momentum": [0.5, 0.6, 0.7],
        }
    )
    assert plot.swept_keys(runs) == ["lr", "optimizer.momentum"]
    assert plot.heatmap_figure(pd.DataFrame({"run_id": []}), runs) is None  # 3 of 9 cells: not a grid


# --------------------------------------------------------------------------- figures that fit any sweep


def data_drawn(fig) -> list:
    """Per Axes of ``fig`` (colour bars aside), the artists that hold data: lines with a finite
    point, collections with paths or points, images."""
    found = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        lines = [ln for ln in ax.get_lines() if np.isfinite(np.asarray(ln.get_xydata(), float)).all(axis=1).any()]
        collections = [c for c in ax.collections if len(c.get_paths()) or len(c.get_offsets())]
        found.append(lines + collections + list(ax.images))
    return found


def outside(fig) -> list[str]:
    """What of ``fig`` reaches past the image once rendered: its title, its legends, or an Axes with
    what it draws around itself (its title, legend, axis labels and the tick labels it shows)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # what savefig renders with
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    parts = {"title": fig._suptitle} if fig._suptitle is not None else {}
    parts.update({f"legend {i}": legend for i, legend in enumerate(fig.legends)})
    parts.update({f"axes {i}: {ax.get_title()!r}": ax for i, ax in enumerate(fig.axes)})
    cut = []
    for name, part in parts.items():
        extent = part.get_tightbbox(renderer) if hasattr(part, "get_tightbbox") else part.get_window_extent(renderer)
        if extent.x0 < box.x0 - 0.5 or extent.x1 > box.x1 + 0.5 or extent.y0 < box.y0 - 0.5 or extent.y1 > box.y1 + 0.5:
            cut.append(name)
    return cut


def random_search_jobs(n: int, seed: int = 0) -> list[list[str]]:
    """A random search: each trial draws its own lr (log-uniform over 0.05 .. 20) and momentum."""
    rng = np.random.default_rng(seed)
    lrs, momenta = 10 ** rng.uniform(np.log10(0.05), np.log10(20), n), rng.uniform(0, 0.95, n)
    return [
        ["optimizer=momentum", f"lr={float(lr)!r}", f"optimizer.momentum={float(m)!r}", "max_iter=50", "tol=0"]
        for lr, m in zip(lrs, momenta, strict=True)
    ]


def test_is_grid_tells_a_grid_from_a_search():
    full = pd.DataFrame(list(itertools.product([0.1, 0.2, 0.3], [0, 0.5])), columns=["lr", "optimizer.momentum"])
    assert plot.is_grid(full) and plot.is_grid(full.iloc[1:])  # a grid with a cell missing still is one
    assert plot.is_grid(full.iloc[:2].assign(**{"optimizer.momentum": 0}))  # one swept key
    rng = np.random.default_rng(1)
    search = pd.DataFrame({"lr": rng.uniform(0, 1, 6), "optimizer.momentum": rng.uniform(0, 1, 6)})
    assert not plot.is_grid(search)  # 6 of 36 combinations


def test_a_random_search_gets_a_search_figure_and_no_empty_panel(compose_cfg, tmp_path, capsys):
    sweep_dir = make_sweep(compose_cfg, tmp_path, *random_search_jobs(12))
    traces, runs = data(sweep_dir)
    assert plot.swept_keys(runs) == ["lr", "optimizer.momentum"] and not plot.is_grid(runs)
    written = plot.draw(sweep_dir)
    assert "not drawn" not in capsys.readouterr().err
    assert {p.stem for p in written} == {"convergence_iteration", "paths", "search"}
    figs = plot.figures(traces, runs)
    for name, fig in figs.items():
        assert all(data_drawn(fig)), name  # every panel holds data
        assert not outside(fig), name
    # One convergence panel, a line per run shown, each named by all its swept values.
    (ax,) = figs["convergence_iteration"].axes
    shown = artists(figs["convergence_iteration"], "run:")
    assert len(shown) == plot.MAX_LINES
    by_id = runs.set_index("run_id")
    texts = legend_texts(figs["convergence_iteration"])
    for rid in shown:
        assert any(
            t.startswith(f"lr={by_id.loc[rid, 'lr']:g}, momentum={by_id.loc[rid, 'optimizer.momentum']:g}")
            for t in texts
        )

    # The search figure: a panel per swept key and the best so far, points from the runs table.
    search = figs["search"]
    assert [ax.get_xlabel() for ax in search.axes] == ["learning rate", "momentum", "trial, in start order"]
    assert search.axes[0].get_xscale() == "log"  # lr spans decades
    gap = (runs["f"] - runs["f_star"]).to_numpy()
    finite = np.isfinite(gap) & (gap > 0)
    for ax, key in zip(search.axes, ["lr", "optimizer.momentum"], strict=False):
        (points,) = [ln for ln in ax.get_lines() if ln.get_gid() == "final"]
        assert sorted(map(tuple, points.get_xydata())) == sorted(zip(runs[key][finite], gap[finite], strict=True))
    (best,) = [ln for ln in search.axes[2].get_lines() if ln.get_gid() == "best_so_far"]
    y = best.get_ydata()
    assert np.all(np.diff(y) <= 0) and y[-1] == gap[finite].min()
    diverged = set(runs.loc[~np.isfinite(gap), "run_id"])
    assert set(artists(search, "diverged:")) == diverged


def test_search_figure_marks_a_run_whose_final_f_is_not_finite():
    rng = np.random.default_rng(2)
    n = 7
    runs = pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(n)],
            "config_id": [f"c{i}" for i in range(n)],
            "status": ["max_iter"] * (n - 1) + ["diverged"],
            "objective": "shifted_quadratic",
            "optimizer": "momentum",
            "lr": rng.uniform(0.1, 1, n),
            "optimizer.momentum": rng.uniform(0, 1, n),
            "f": np.r_[rng.uniform(1e-8, 1e-2, n - 1), np.inf],
            "f_star": 0.0,
        }
    )
    fig = plot.search_figure(pd.DataFrame({"run_id": []}), runs)
    assert set(artists(fig, "diverged:")) == {"r6"}
    for line in artists(fig, "diverged:").values():
        assert line.get_ydata()[0] == line.axes.get_ylim()[1]  # on the top edge
    assert plot.search_figure(pd.DataFrame({"run_id": []}), runs.assign(lr=0.1)) is None  # one swept key: a grid


def test_list_cells_as_json_text_or_arrays_give_the_same_fixed_settings():
    base = pd.DataFrame({"run_id": ["a", "b"], "config_id": ["A", "B"], "objective": "quadratic", "lr": [0.1, 0.2]})
    as_text = base.assign(**{"objective.x0": ["[8.0, 9.0]", "[8.0, 9.0]"]})
    as_list = base.assign(**{"objective.x0": [np.array([8.0, 9.0]), np.array([8.0, 9.0])]})
    assert plot.swept_keys(as_text) == plot.swept_keys(as_list) == ["lr"]
    assert plot.fixed_settings(as_text) == "fixed: objective=quadratic, objective.x0=[8.0, 9.0]"
    assert plot.fixed_settings(as_list) == "fixed: objective=quadratic, objective.x0=[8, 9]"
    swept = base.assign(**{"objective.x0": [np.array([8.0, 9.0]), np.array([1.0, 9.0])]})
    assert plot.swept_keys(swept) == ["lr", "objective.x0"]


def test_the_fixed_hyperparameters_are_named_on_each_figure(compose_cfg, tmp_path):
    jobs = [["optimizer=gd", f"lr={lr}", "max_iter=200"] for lr in (0.1, 0.5)]
    jobs += [["optimizer=momentum", f"lr={lr}", "optimizer.momentum=0.9", "max_iter=200"] for lr in (0.1, 0.5)]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    figs = plot.figures(traces, runs)
    assert set(figs) == {"convergence_iteration", "paths"}
    for fig in figs.values():
        title = fig.get_suptitle().replace("\n", " ")
        assert "fixed: objective=shifted_quadratic, max_iter=200, tol=1e-06" in title
        assert "optimizer.momentum=0.9" in title and "lr=" not in title.partition("fixed:")[2]


def test_a_grid_with_lr_1e300_draws_its_heatmap_and_marks_the_cell(compose_cfg, tmp_path, capsys):
    jobs = [
        ["optimizer=momentum", f"lr={lr}", f"optimizer.momentum={m}", "max_iter=100"]
        for lr in (0.1, 1, 1e300)
        for m in (0, 0.5)
    ]
    sweep_dir = make_sweep(compose_cfg, tmp_path, *jobs)
    written = {p.stem for p in plot.draw(sweep_dir)}
    assert "not drawn" not in capsys.readouterr().err
    assert written == {"convergence_iteration", "paths", "heatmap_lr_momentum"}
    traces, runs = data(sweep_dir)
    assert set(runs.loc[runs["lr"] == 1e300, "status"]) == {"diverged"}
    fig = plot.heatmap_figure(traces, runs)
    cells = {p.get_gid(): p for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith("diverged_cell")}
    assert set(cells) == {"diverged_cell:1e+300:0", "diverged_cell:1e+300:0.5"}
    for patch in cells.values():
        x0, x1 = patch.get_x(), patch.get_x() + patch.get_width()
        assert np.isfinite([x0, x1]).all() and x0 < 1e300 < x1
        lo, hi = patch.axes.get_xlim()
        assert lo <= x0 and x1 <= hi
        # equal cells: the 1e300 cell is as wide on the axis as the others
        edges = patch.axes.xaxis.get_transform().transform([x0, x1])
        assert np.isclose(edges[1] - edges[0], 1.0)
    assert not outside(fig)
    # lr = inf has no place on the axis: still a heatmap, and the legend names the runs left out.
    fig = plot.heatmap_figure(traces, runs.assign(lr=runs["lr"].replace(1e300, np.inf)))
    (legend,) = fig.legends
    assert "no cell: lr = inf, momentum = 0.5: diverged; lr = inf, momentum = 0: diverged" in [
        t.get_text() for t in legend.get_texts()
    ]


def test_the_quartic_from_x0_1e300_draws_objective_1d_and_marks_the_start(compose_cfg, tmp_path):
    jobs = [["objective=quartic", "objective.x0=[1e300]", f"lr={lr}", "max_iter=20"] for lr in (0.01, 0.1)]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    assert set(runs["status"]) == {"diverged"}
    fig = plot.objective_1d_figure(traces, runs)
    assert fig is not None and all(data_drawn(fig))
    starts = artists(fig, "start:")
    assert set(starts) == set(runs["run_id"])
    for line in starts.values():  # an arrow on the right edge, pointing at x0 = 1e300
        assert line.get_marker() == ">" and line.get_xdata()[0] == line.axes.get_xlim()[1]
    assert any("start off the view: x0 = 1e+300, f = inf" in t for t in legend_texts(fig))
    critical = [ln.get_gid() for ln in fig.axes[0].get_lines() if (ln.get_gid() or "").startswith("critical:")]
    assert sorted(critical) == ["critical:maximum", "critical:minimum", "critical:minimum"]  # still found


@pytest.fixture(scope="module")
def lr20_seed5(compose_cfg, tmp_path_factory) -> Path:
    """20 learning rates with long decimals (range's floats) x 5 seeds: the batched sweep in the issue."""
    lrs = [0.05 * k for k in range(1, 21)]  # 0.15000000000000002, ...
    jobs = [[f"lr={lr!r}", f"seed={s}", "max_iter=300"] for lr in lrs for s in range(5)]
    return make_sweep(compose_cfg, tmp_path_factory.mktemp("lr20"), *jobs)


def test_titles_and_legends_fit_inside_the_image_at_20_lrs_by_5_seeds(lr20_seed5):
    traces, runs = data(lr20_seed5)
    figs = plot.figures(traces, runs)
    assert set(figs) == {"convergence_iteration", "paths"}
    for name, fig in figs.items():
        assert "showing 8 of 20 learning rate values" in fig.get_suptitle().replace("\n", " ")
        assert not outside(fig), name
        assert all(data_drawn(fig)), name


def test_the_tol_marker_follows_the_stop_rule_at_the_runs_last_row(compose_cfg, tmp_path):
    jobs = [["optimizer=momentum", "lr=0.1", f"optimizer.momentum={m}", "max_iter=3000", "tol=1e-12"] for m in (0, 0.8)]
    traces, runs = data(make_sweep(compose_cfg, tmp_path, *jobs))
    assert set(runs["status"]) == {"converged"}
    # With the stop_reason column, the marker is where |Δf| < tol fired: not on a run stopped by grad_tol.
    by_tol = runs.assign(stop_reason=np.where(runs["optimizer.momentum"] == 0, "tol", "grad_tol"))
    fig = plot.momentum_figure(traces, by_tol)
    ends = artists(fig, "end:")
    tol_run = by_tol.loc[by_tol["stop_reason"] == "tol", "run_id"].iloc[0]
    assert set(ends) == {tol_run}
    rows = gap_rows(traces, runs, tol_run)
    assert np.array_equal(ends[tol_run].get_xydata(), rows[-1:])  # the run's last row
    assert "stopped: |Δf| < tol" in legend_texts(fig)
    assert any(t.startswith("0.8: |Δf| < tol not reached") for t in legend_texts(fig))
    # Without the column (tables written before it), status converged says it.
    assert set(artists(plot.momentum_figure(traces, runs), "end:")) == set(runs["run_id"])


@pytest.mark.optuna
def test_an_optuna_search_from_the_command_line_gets_figures_that_fit(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep_dir = tmp_path / "search"
    search = ("+hparams_search=optuna", "hydra.sweeper.n_trials=6", "max_iter=50", f"hydra.sweep.dir={sweep_dir}")
    done = run_module("runner", "-m", *search, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not drawn" not in done.stdout + done.stderr
    names = {p.stem for p in (sweep_dir / "figures").iterdir()}
    assert names == {"convergence_iteration", "paths", "search"}
    traces, runs = data(sweep_dir)
    for name, fig in plot.figures(traces, runs).items():
        assert all(data_drawn(fig)), name
        assert not outside(fig), name
        assert "fixed: objective=shifted_quadratic, optimizer=momentum, max_iter=50, tol=0" in (
            fig.get_suptitle().replace("\n", " ")
        )
