"""Sweeps as one dataset: launchers, failure isolation, resume, repetitions, runner.load."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

import runner
from runner.best import best_table
from runner.store import atomic_write
from runner.tables import collect, write_tables

REPO = Path(__file__).resolve().parent.parent
GRID = ["optimizer=gd,momentum", "lr=0.5,2"]
TIMING = ["time_s", "run_id"]


def sweep(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "runner", "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def grid_sweeps(tmp_path_factory):
    """The same 2 x 2 grid under the basic, joblib and submitit_local launchers."""
    root = tmp_path_factory.mktemp("sweeps")
    dirs = {}
    for launcher in ("basic", "joblib", "submitit_local"):
        pytest.importorskip(
            {
                "basic": "hydra",
                "joblib": "hydra_plugins.hydra_joblib_launcher",
                "submitit_local": "hydra_plugins.hydra_submitit_launcher",
            }[launcher]
        )
        dirs[launcher] = root / launcher
        done = sweep(f"hydra/launcher={launcher}", *GRID, f"hydra.sweep.dir={dirs[launcher]}", cwd=root)
        assert done.returncode == 0, done.stderr
        assert f"sweep: 4 runs: 4 converged  ({dirs[launcher]})" in done.stdout
    return dirs


def test_a_sweep_is_one_dataset(grid_sweeps):
    sweep_dir = grid_sweeps["basic"]
    jobs = sorted(p.parent.relative_to(sweep_dir).as_posix() for p in sweep_dir.rglob("summary.json"))
    assert jobs == ["lr=0.5/optimizer=gd", "lr=0.5/optimizer=momentum", "lr=2/optimizer=gd", "lr=2/optimizer=momentum"]

    df = runner.load(sweep_dir)
    assert df["lr"].dtype == np.float64 and df["seed"].dtype == np.int64 and df["iteration"].dtype == np.int64
    assert set(df["optimizer"]) == {"gd", "momentum"} and isinstance(df["optimizer"].iloc[0], str)
    assert df.groupby("run_id").size().sum() == len(df) and df["run_id"].nunique() == 4
    # Every row is a run's own trace row: compare with each job's trace.parquet.
    for job, rows in df.groupby("job"):
        own = pd.read_parquet(sweep_dir / job / "trace.parquet")
        assert np.array_equal(rows["f"].to_numpy(), own["f"].to_numpy())
    plain = pd.read_parquet(sweep_dir / "traces.parquet")  # no project code needed
    assert plain.shape == df.shape

    runs = runner.load_runs(sweep_dir)
    assert len(runs) == 4 and set(runs["status"]) == {"converged"}
    assert {"config_id", "lr", "optimizer", "f", "f_gap", "iterations", "nfev", "ngev", "wall_time_s", "error"} <= set(
        runs.columns
    )
    momentum = runs[runs["optimizer"] == "momentum"]
    assert set(momentum["optimizer.momentum"]) == {0.9}
    assert runs["optimizer.momentum"].isna().sum() == 2  # gd has no momentum: null, not a made-up value
    last = df.sort_values("iteration").groupby("run_id").tail(1).set_index("run_id")["f"]
    assert np.array_equal(runs.set_index("run_id").loc[last.index, "f"].to_numpy(), last.to_numpy())


def test_traces_are_bitwise_identical_across_launchers(grid_sweeps):
    frames = {
        name: runner.load(d).drop(columns=TIMING).sort_values(["job", "iteration"]).reset_index(drop=True)
        for name, d in grid_sweeps.items()
    }
    basic = frames.pop("basic")
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(frame[basic.columns], basic, check_exact=True, obj=name)


def test_a_failing_and_a_diverging_job_do_not_stop_the_sweep(tmp_path):
    sweep_dir = tmp_path / "s"
    done = sweep("lr=0.1,20,-1", "tol=0", "max_iter=2000", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # one job failed; the diverged one is a result
    assert f"sweep: 3 runs: 1 max_iter, 1 diverged, 1 failed  ({sweep_dir})" in done.stdout
    runs = runner.load_runs(sweep_dir).set_index("lr")
    assert runs.loc[0.1, "status"] == "max_iter" and runs.loc[20.0, "status"] == "diverged"
    assert runs.loc[-1.0, "status"] == "failed" and runs.loc[-1.0, "error"] == "lr=-1: expected a number > 0"
    traces = pd.read_parquet(sweep_dir / "traces.parquet")
    assert set(traces["lr"]) == {0.1, 20.0}  # the failed run has no trace
    diverged = traces[traces["lr"] == 20.0]
    assert not np.isfinite(diverged["f"].iloc[-1]) and diverged["status"].iloc[0] == "diverged"


@pytest.mark.parametrize("launcher", ["basic", "batched"])
def test_a_value_of_the_wrong_type_keeps_every_run_in_the_tables(tmp_path, launcher):
    sweep_dir = tmp_path / "s"
    done = sweep(
        f"hydra/launcher={launcher}",
        "lr=0.1,0.5,abc",
        "optimizer=momentum",
        "optimizer.momentum=0,0.9",
        "max_iter=50",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr  # the failed jobs fail the command
    assert f"sweep: 6 runs: 4 max_iter, 2 failed  ({sweep_dir})" in done.stdout
    runs = runner.load_runs(sweep_dir)  # lr stays float64: the word is null there, and kept in the run's config
    assert runs["lr"].dtype == np.float64 and pq.read_schema(sweep_dir / "runs.parquet").field("lr").type == "double"
    failed = runs[runs["status"] == "failed"]
    assert sorted(runs.loc[runs["status"] == "max_iter", "lr"]) == [0.1, 0.1, 0.5, 0.5] and failed["lr"].isna().all()
    assert [json.loads(c)["lr"] for c in failed["config"]] == ["abc", "abc"]
    assert set(failed["error"]) == {"lr=abc: expected a number"}
    # The best configs name the failed ones by their value as configured, not by the null of their column.
    lines = best_table(runs, top=6).splitlines()
    assert lines[-2:] == [
        "  5. lr=abc, optimizer.momentum=0: no result",
        "  6. lr=abc, optimizer.momentum=0.9: no result",
    ]
    assert set(pd.read_parquet(sweep_dir / "traces.parquet")["lr"]) == {0.1, 0.5}  # the failed runs have no trace
    assert "not drawn" not in done.stdout and (sweep_dir / "figures" / "heatmap_lr_momentum.png").is_file()


def test_the_sweep_fails_loudly_when_its_tables_cannot_be_written(tmp_path, monkeypatch, capsys):
    from runner import app

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(app, "finish_sweep", broken)
    with pytest.raises(SystemExit) as exit_:
        app.SweepEnd().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exit_.value.code == app.EXIT_FAILED
    assert capsys.readouterr().err.strip() == (
        f"error: the sweep's tables were not written (OSError: disk full); its runs are in {tmp_path}"
    )


def test_a_crashing_job_is_recorded_with_its_traceback(tmp_path):
    sweep_dir = tmp_path / "s"
    target = "objective._target_=tests.test_sweep.exploding_objective"
    done = sweep(f"{target},objectives.shifted_quadratic", "max_iter=10", f"hydra.sweep.dir={sweep_dir}", cwd=REPO)
    assert done.returncode == 1
    runs = runner.load_runs(sweep_dir)
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: boom" and "exploding_objective" in failed["traceback"]
    assert (runs["status"] == "max_iter").sum() == 1


def exploding_objective(**kwargs):
    raise RuntimeError("boom")


def test_resume_reruns_only_what_is_missing_failed_or_interrupted(tmp_path):
    sweep_dir = tmp_path / "s"
    args = ["lr=0.5,1,2,4", f"hydra.sweep.dir={sweep_dir}"]
    assert sweep(*args, cwd=tmp_path).returncode == 0
    summaries = {p.parent.name: p for p in sweep_dir.glob("*/summary.json")}
    before = {name: json.loads(p.read_text())["run_id"] for name, p in summaries.items()}
    # As if the sweep had been killed: one run never finished, one was interrupted.
    summaries["lr=0.5"].unlink()
    interrupted = json.loads(summaries["lr=1"].read_text()) | {"status": "interrupted"}
    summaries["lr=1"].write_text(json.dumps(interrupted))

    done = sweep(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("skipped: ") == 2
    after = {p.parent.name: json.loads(p.read_text())["run_id"] for p in sweep_dir.glob("*/summary.json")}
    assert after["lr=2"] == before["lr=2"] and after["lr=4"] == before["lr=4"]
    assert after["lr=0.5"] != before["lr=0.5"] and after["lr=1"] != before["lr=1"]
    assert len(runner.load_runs(sweep_dir)) == 4 and set(runner.load_runs(sweep_dir)["status"]) == {"converged"}


def test_a_changed_config_is_not_taken_for_a_finished_run(compose_cfg, tmp_path):
    first = runner.run(compose_cfg("lr=0.1", "max_iter=50"), tmp_path)
    assert runner.run(compose_cfg("lr=0.1", "max_iter=50"), tmp_path).get("skipped")
    again = runner.run(compose_cfg("lr=0.1", "max_iter=60"), tmp_path)
    assert not again.get("skipped") and again["run_id"] != first["run_id"] and again["iterations"] == 60


def test_repetitions_share_a_config_id(tmp_path):
    sweep_dir = tmp_path / "s"
    done = sweep(
        "objective=sin_cos",
        "optimizer=adam",
        "lr=0.05,0.1",
        "seed=range(3)",
        "max_iter=50",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    runs = runner.load_runs(sweep_dir)
    assert len(runs) == 6 and runs["config_hash"].nunique() == 6
    groups = runs.groupby("config_id")
    assert groups.ngroups == 2 and sorted(groups["seed"].apply(sorted).tolist()) == [[0, 1, 2], [0, 1, 2]]
    assert groups["lr"].nunique().eq(1).all()
    x0 = runner.load(sweep_dir).query("iteration == 0").groupby("seed")["x_0"].first()
    assert x0.nunique() == 3  # the seed draws x0


def test_sigterm_saves_the_trace_as_interrupted(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "objective=sin_cos",
            "optimizer=adam",
            "max_iter=100000000",
            "tol=0",
            f"hydra.run.dir={out}",
            "hydra.callbacks.progress.show=true",  # the bar, drawn once the loop has run ~2 s, says it is running
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Signal the run only once it is in its loop: on a loaded machine start-up alone can take seconds,
    # and a SIGTERM before the loop leaves no run to save.
    shown, deadline = b"", time.time() + 120
    try:
        while b"iteration" not in shown and time.time() < deadline:
            if select.select([proc.stderr], [], [], 0.5)[0]:
                shown += os.read(proc.stderr.fileno(), 4096)
        assert b"iteration" in shown, shown.decode(errors="replace")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130
    finally:  # a run of 1e8 iterations left behind would hold a core and its trace's memory for hours
        if proc.poll() is None:
            proc.kill()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    trace = pd.read_parquet(out / "trace.parquet")
    assert len(trace) == summary["iterations"] + 1 > 100


def test_a_killed_write_leaves_no_file(tmp_path):
    target = tmp_path / "trace.parquet"

    def dies_halfway(tmp):
        Path(tmp).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_halfway)
    assert list(tmp_path.iterdir()) == []


def test_tables_are_rebuilt_when_older_than_the_runs(compose_cfg, tmp_path):
    runner.run(compose_cfg("lr=0.1", "max_iter=5"), tmp_path / "lr=0.1")
    write_tables(tmp_path)
    assert len(runner.load_runs(tmp_path)) == 1
    time.sleep(0.01)
    runner.run(compose_cfg("lr=0.2", "max_iter=5"), tmp_path / "lr=0.2")  # a run added since
    assert len(runner.load_runs(tmp_path)) == 2 and runner.load(tmp_path)["run_id"].nunique() == 2
    runs, traces = collect(tmp_path)
    assert traces.num_rows == 12 and runs.num_rows == 2
    assert pq.read_table(tmp_path / "runs.parquet").num_rows == 1  # the stale file is left alone


def test_load_reads_only_the_columns_asked_for(grid_sweeps, tmp_path):
    import shutil

    whole = runner.load(grid_sweeps["basic"])
    stale = shutil.copytree(grid_sweeps["basic"], tmp_path / "no_tables")
    (stale / "traces.parquet").unlink()  # rebuilt from the job folders
    for where in (grid_sweeps["basic"], stale):
        some = runner.load(where, columns=["run_id", "f", "x_1", "not_a_column"])
        assert list(some.columns) == ["run_id", "f", "x_1"]  # those the sweep has, in the order asked
        pd.testing.assert_frame_equal(
            some.sort_values(["run_id", "f"], ignore_index=True),
            whole[["run_id", "f", "x_1"]].sort_values(["run_id", "f"], ignore_index=True),
        )


def test_load_reads_a_single_run_folder(compose_cfg, tmp_path):
    summary = runner.run(compose_cfg("max_iter=7"), tmp_path)
    df = runner.load(tmp_path)
    assert len(df) == 8 and set(df["run_id"]) == {summary["run_id"]} and set(df["job"]) == {"."}
    assert runner.load_runs(tmp_path)["iterations"].tolist() == [7]


def test_the_presets_compose_as_multirun_sweeps(compose_cfg):
    from hydra import compose, initialize_config_dir

    from runner.app import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for name, swept in [
            ("lr_sweep", {"lr"}),
            ("momentum_sweep", {"optimizer.momentum"}),
            ("lr_momentum_grid", {"lr", "optimizer.momentum"}),
            ("optimizer_benchmark", {"objective", "optimizer", "lr", "seed"}),
        ]:
            cfg = compose(config_name="config", overrides=[f"+experiment={name}"], return_hydra_config=True)
            assert cfg.hydra.mode.name == "MULTIRUN"
            assert set(cfg.hydra.sweeper.params) == swept


@pytest.mark.ray
def test_the_ray_launcher_gives_the_same_dataset(grid_sweeps, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sweep_dir = tmp_path / "ray"
    done = sweep("hydra/launcher=ray", *GRID, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    ray_frame = runner.load(sweep_dir).drop(columns=TIMING).sort_values(["job", "iteration"]).reset_index(drop=True)
    basic = runner.load(grid_sweeps["basic"]).drop(columns=TIMING).sort_values(["job", "iteration"])
    pd.testing.assert_frame_equal(ray_frame[basic.columns], basic.reset_index(drop=True), check_exact=True)


@pytest.mark.optuna
def test_the_optuna_search_minimises_the_returned_f(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep_dir = tmp_path / "search"
    done = sweep("+hparams_search=optuna", "hydra.sweeper.n_trials=8", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = runner.load_runs(sweep_dir)
    assert len(runs) == 8 and runs["lr"].nunique() == 8
    assert runs["lr"].between(0.05, 20.0).all() and runs["optimizer.momentum"].between(0.0, 0.95).all()
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert f"best_value: {runs['f'].min()}" in best
