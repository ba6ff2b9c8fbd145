"""Trace sampling (trace.every, trace.schedule, trace.points): fewer rows, the same run.

Each sampled trace is compared with the full trace of the same config, read back from its
files with polars (not the runner's own reader): its rows are exactly the full trace's rows at
the iterations kept, bitwise, and its summary is the full run's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import runner
from runner.batched import Job, minimize_batch, plan_jobs, run_jobs
from runner.config import check_settings
from runner.loop import minimize
from runner.run import run
from runner.store import PARTS_DIR
from runner.trace import Sampling, log_iterations
from tests.test_batched import config

SAMPLINGS = [
    {"every": 7},
    {"every": 1000},  # keeps only the first and the last row
    {"schedule": "log", "points": 12},
]
# What sampling must not change: how the run ended.
OUTCOME = ("status", "stop_reason", "message", "f", "f_gap", "iterations", "nfev", "ngev", "x")


def sampled(cfg: dict, trace: dict) -> dict:
    return {**cfg, "trace": {**cfg["trace"], **trace}}


def kept_iterations(sampling: dict, max_iter: int, last: int) -> np.ndarray:
    """The iterations a sampled trace must hold, from the rule as the README states it: the
    schedule's (every N-th, or log-spaced), and the last row, the one where the run stopped."""
    every, points = sampling.get("every", 1), sampling.get("points", 100)
    if sampling.get("schedule", "all") == "log":
        if max_iter + 1 <= points:
            schedule = np.arange(max_iter + 1)
        else:
            schedule = np.concatenate([[0], log_iterations(max_iter, points)[1:]])
    else:
        schedule = np.arange(0, max_iter + 1, every)
    return np.union1d(schedule[schedule <= last], [last])


def read(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def outcome(folder: Path, keys=OUTCOME) -> dict:
    """How the run in ``folder`` ended, as its summary.json says."""
    summary = json.loads((folder / "summary.json").read_text())
    return {k: summary.get(k) for k in keys}


@pytest.mark.parametrize("trace", SAMPLINGS)
@pytest.mark.parametrize(
    "values",
    [
        {"max_iter": 150, "tol": 0.0},  # ends at max_iter
        {"max_iter": 5000, "tol": 1e-9, "optimizer.momentum": 0.9},  # tol fires between kept rows
        {"lr": 1.2, "max_iter": 500},  # diverges
    ],
)
def test_a_sampled_run_keeps_the_full_traces_rows_and_the_same_summary(tmp_path, trace, values):
    cfg = config("sin_cos", "momentum", **values)
    full = run(cfg, tmp_path / "full")
    part = run(sampled(cfg, trace), tmp_path / "sampled")
    assert outcome(tmp_path / "sampled") == outcome(tmp_path / "full")
    assert part["status"] in ("max_iter", "converged", "diverged")
    full_rows, rows = read(tmp_path / "full/trace.parquet"), read(tmp_path / "sampled/trace.parquet")
    expected = kept_iterations(trace, cfg["max_iter"], full["iterations"])
    assert rows["iteration"].to_list() == expected.tolist()
    assert part["trace_rows"] == len(expected)
    assert len(expected) < full["trace_rows"] or full["iterations"] < 12  # a run diverging at once keeps all
    kept = full_rows.filter(pl.col("iteration").is_in(expected.tolist()))
    per_iterate = [c for c in full_rows.columns if c == "f" or c == "grad_norm" or c.startswith(("x_", "n"))]
    assert rows.select(per_iterate).equals(kept.select(per_iterate))  # bitwise, NaN and inf alike


def test_the_log_schedule_keeps_about_points_rows_log_spaced():
    for max_iter, points in [(1000, 100), (10_000, 200), (10**9, 50), (150, 100), (99, 100), (0, 2)]:
        kept = log_iterations(max_iter, points)
        assert kept[0] == 0 and kept[-1] == max_iter and np.all(np.diff(kept) > 0)
        assert len(kept) == min(max_iter + 1, points) or points <= len(kept) <= points + 2
        if len(kept) < 4:
            continue
        ratios = kept[2:] / kept[1:-1]
        assert ratios[-1] <= ratios[0] and ratios.max() <= max(2.0, max_iter ** (2 / points))
    sampling = Sampling(schedule="log", points=100)
    iterations = np.arange(1001)
    np.testing.assert_array_equal(iterations[sampling.kept(iterations, 1000)], log_iterations(1000, 100))
    assert [Sampling(every=5).next_kept(k, 100) for k in (0, 1, 5, 6)] == [0, 5, 5, 10]
    assert sampling.next_kept(1001, 1000) == 1001  # none left


def test_the_defaults_keep_every_iteration(compose_cfg):
    settings = check_settings(compose_cfg())
    assert settings["sampling"] == Sampling(every=1, schedule="all", points=100) and settings["sampling"].keeps_all


def test_the_scipy_driver_samples_its_rows_and_keeps_its_result(tmp_path):
    cfg = config("sin_cos", "scipy", **{"optimizer.method": "Nelder-Mead", "max_iter": 200, "tol": 0.0})
    full = run(cfg, tmp_path / "full")
    part = run(sampled(cfg, {"every": 3}), tmp_path / "sampled")
    assert outcome(tmp_path / "sampled", (*OUTCOME, "details")) == outcome(tmp_path / "full", (*OUTCOME, "details"))
    assert part["status"] == full["status"] != "failed"
    full_rows, rows = read(tmp_path / "full/trace.parquet"), read(tmp_path / "sampled/trace.parquet")
    last = full_rows["iteration"].max()
    assert last >= 6  # enough rows for sampling to drop some
    expected = kept_iterations({"every": 3}, cfg["max_iter"], last)
    assert rows["iteration"].to_list() == expected.tolist()
    per_iterate = [
        c for c in full_rows.columns if c in ("iteration", "f", "grad_norm", "nfev", "ngev") or c[:2] == "x_"
    ]
    kept = full_rows.filter(pl.col("iteration").is_in(expected.tolist()))
    assert rows.select(per_iterate).equals(kept.select(per_iterate))


def test_an_interrupted_run_keeps_its_last_row():
    from objectives import sin_cos
    from runner.optimizers import adam

    objective = sin_cos(n=4, seed=1)
    calls = {"n": 0}
    value_and_grad = objective.value_and_grad

    def interrupted(x):
        calls["n"] += 1
        if calls["n"] == 24:  # iterate 23 is the last one evaluated
            raise KeyboardInterrupt
        return value_and_grad(x)

    full = minimize(objective, adam(lr=0.01), max_iter=100)
    object.__setattr__(objective, "value_and_grad", interrupted)
    result = minimize(objective, adam(lr=0.01), max_iter=100, sampling=Sampling(every=10))
    assert result.status == "interrupted" and result.message == "interrupted after iteration 22"
    np.testing.assert_array_equal(result.trace.iteration, [0, 10, 20, 22])
    np.testing.assert_array_equal(result.trace.x, full.trace.x[[0, 10, 20, 22]])


def batched_configs(n: int = 12) -> list[dict]:
    lrs = np.geomspace(1e-4, 0.3, n)  # the first few reach max_iter, the others converge
    return [config("sin_cos", "adam", lr=float(lr), max_iter=300 + 100 * (i % 3), tol=1e-9) for i, lr in enumerate(lrs)]


@pytest.mark.parametrize("trace", SAMPLINGS)
def test_a_sampled_batched_sweep_keeps_the_full_sweeps_rows_and_runs(tmp_path, trace):
    """Three max_iter in one chunk: each config keeps its own schedule's rows, as it would alone."""
    configs = batched_configs()
    full_jobs = [Job(cfg, f"job={i:02d}") for i, cfg in enumerate(configs)]
    part_jobs = [Job(sampled(cfg, trace), f"job={i:02d}") for i, cfg in enumerate(configs)]
    full_out = run_jobs(full_jobs, tmp_path / "full")
    part_out = run_jobs(part_jobs, tmp_path / "sampled")
    assert all(o["batched"] for o in part_out) and len({o["status"] for o in full_out}) > 1
    assert [{k: o[k] for k in ("status", "message", "f")} for o in part_out] == [
        {k: o[k] for k in ("status", "message", "f")} for o in full_out
    ]
    full_rows = pl.read_parquet(tmp_path / "full" / PARTS_DIR / "*.traces.parquet")
    rows = pl.read_parquet(tmp_path / "sampled" / PARTS_DIR / "*.traces.parquet")
    full_runs = pl.read_parquet(tmp_path / "full" / PARTS_DIR / "*.runs.parquet")
    runs = pl.read_parquet(tmp_path / "sampled" / PARTS_DIR / "*.runs.parquet")
    same = ["job", "status", "stop_reason", "message", "f", "iterations", "nfev", "ngev"]
    assert runs.select(same).equals(full_runs.select(same))
    per_iterate = ["job", "iteration", "f", "grad_norm", "nfev", "ngev"] + [c for c in rows.columns if c[:2] == "x_"]
    for i, cfg in enumerate(configs):
        job = f"job={i:02d}"
        last = full_runs.filter(pl.col("job") == job)["iterations"].item()
        expected = kept_iterations(trace, cfg["max_iter"], last).tolist()
        mine = rows.filter(pl.col("job") == job)
        assert mine["iteration"].to_list() == expected
        assert runs.filter(pl.col("job") == job)["trace_rows"].item() == len(expected)
        kept = full_rows.filter((pl.col("job") == job) & pl.col("iteration").is_in(expected))
        assert mine.select(per_iterate).equals(kept.select(per_iterate))
    # Each batched config equals its lone run, sampled alike.
    run(part_jobs[4].config, tmp_path / "alone")
    alone_rows = pl.read_parquet(tmp_path / "alone/trace.parquet")
    mine = rows.filter(pl.col("job") == "job=04")
    assert mine.select(per_iterate[1:]).equals(alone_rows.select(per_iterate[1:]))
    # load() and load_runs() read the sampled sweep; a rerun finds every run finished.
    assert len(runner.load(tmp_path / "sampled")) == len(rows)
    assert runner.load_runs(tmp_path / "sampled")["trace_rows"].tolist() == runs["trace_rows"].to_list()
    # a dry run reads the sampled chunks as whole (their trace_rows, not iterations + 1): all done
    assert plan_jobs(part_jobs, tmp_path / "sampled") == ["done"] * len(part_jobs)
    again = run_jobs(part_jobs, tmp_path / "sampled")
    assert all(o.get("skipped") for o in again)


def test_the_batch_holds_only_the_rows_it_keeps():
    from objectives import sin_cos
    from runner.optimizers import adam

    objective = sin_cos(n=50, seed=0)
    lrs = np.geomspace(1e-3, 0.1, 64)
    result = minimize_batch(
        objective, adam(lr=lrs), np.tile(objective.x0, (64, 1)), max_iter=1000, sampling=Sampling("all", "log", 50)
    )
    assert result.x.shape == (50, 64, 50)  # not (1001, 64, 50)
    np.testing.assert_array_equal(result.kept, log_iterations(1000, 50))
    full = minimize(objective, adam(lr=lrs[7]), max_iter=1000)
    iteration, f, _, x = result.trace(7)
    np.testing.assert_array_equal(iteration, log_iterations(1000, 50))
    np.testing.assert_array_equal(f, full.trace.f[iteration])
    np.testing.assert_array_equal(x, full.trace.x[iteration])


def test_figures_draw_a_sampled_sweep_from_its_iteration_column(tmp_path):
    from runner.figures import convergence

    jobs = [
        Job(sampled(cfg, {"schedule": "log", "points": 20}), f"job={i:02d}") for i, cfg in enumerate(batched_configs(4))
    ]
    run_jobs(jobs, tmp_path)
    traces, runs = runner.load(tmp_path), runner.load_runs(tmp_path)
    fig = convergence.figure(traces, runs)
    lines = [line for ax in fig.axes for line in ax.get_lines() if len(line.get_xdata()) > 2]
    drawn = sorted(tuple(line.get_xdata()) for line in lines)
    expected = sorted(tuple(rows["iteration"].astype(float)) for _, rows in traces.groupby("run_id"))
    assert drawn == expected
