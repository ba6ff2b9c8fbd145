"""The batched path: a sweep run as array computations equals the same sweep run job by job."""

from __future__ import annotations

import copy
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import runner
import runner.batched as batched
from runner.batched import BatchSamplers, Job, minimize_batch, run_jobs
from runner.config import run_rng
from runner.loop import EpochSampler, minimize
from runner.run import run
from runner.splice import CannotSplice
from runner.store import PARTS_DIR
from runner.tables import collect, write_tables

REPO = Path(__file__).resolve().parent.parent
# Columns that differ between two runs of the same config: when, how long, which run.
TIMING = {"time_s", "wall_time_s", "started_at", "run_id"}

OBJECTIVES = {
    "shifted_quadratic": {"_target_": "objectives.shifted_quadratic", "a": 2.0, "b": -3.0, "x0": None},
    "sin_cos": {"_target_": "objectives.sin_cos", "n": 6, "x0": None, "seed": 1},
    "least_squares": {
        "_target_": "objectives.least_squares",
        "m": 40,
        "n": 3,
        "noise": 0.1,
        "data": None,
        "target": "y",
        "x0": None,
        "seed": 0,
    },
    "two_layer_net": {
        "_target_": "objectives.two_layer_net",
        "m": 30,
        "n": 2,
        "p": 3,
        "noise": 0.1,
        "data": None,
        "target": "y",
        "x0": None,
        "seed": 0,
    },
}
OPTIMIZERS = {
    "gd": {"_target_": "runner.optimizers.gd", "weight_decay": 0.0},
    "momentum": {"_target_": "runner.optimizers.momentum", "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0},
    "nesterov": {"_target_": "runner.optimizers.nesterov", "momentum": 0.9, "weight_decay": 0.0},
    "sgd": {
        "_target_": "runner.optimizers.sgd",
        "batch_size": 8,
        "momentum": 0.0,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
    },
    "adagrad": {
        "_target_": "runner.optimizers.adagrad",
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    },
    "rmsprop": {
        "_target_": "runner.optimizers.rmsprop",
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    },
    "adam": {
        "_target_": "runner.optimizers.adam",
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
    },
    "scipy": {"_target_": "runner.scipy_driver.scipy", "method": None, "options": {}},
}


def config(objective="shifted_quadratic", optimizer="momentum", **values) -> dict:
    """A resolved config as Hydra composes it; ``values`` by override key (``optimizer.momentum=0.5``)."""
    cfg = {
        "objective": copy.deepcopy(OBJECTIVES[objective]),
        "optimizer": copy.deepcopy(OPTIMIZERS[optimizer]),
        "lr": 0.1,
        "max_iter": 200,
        "tol": 1e-9,
        "grad_tol": 0.0,
        "seed": 0,
        "trace": {"x": True},
    }
    if optimizer == "scipy":
        cfg["lr"] = None
    for key, value in values.items():
        node, *path = key.split(".")
        if path:
            cfg[node][path[0]] = value
        else:
            cfg[node] = value
    if "lr" in cfg["optimizer"] or optimizer != "scipy":
        cfg["optimizer"]["lr"] = cfg["lr"]
    return cfg


def jobs_of(configs: list[dict]) -> list[Job]:
    return [Job(cfg, f"job={i:03d}") for i, cfg in enumerate(configs)]


def per_job(jobs: list[Job], sweep_dir: Path) -> None:
    for job in jobs:
        run(job.config, sweep_dir / job.name)


def assert_same_sweep(batched_dir: Path, alone_dir: Path, *, ignore=TIMING, mixed=False) -> None:
    """The two sweeps' runs and traces tables equal column by column (timing aside).

    ``mixed``: some jobs ran alone, so collect() met the two layouts in another order
    and the union of the optimizers' columns comes out in another order.
    """
    (runs_a, traces_a), (runs_b, traces_b) = collect(batched_dir), collect(alone_dir)
    for a, b, order in ((runs_a, runs_b, ["job"]), (traces_a, traces_b, ["job", "iteration"])):
        a = a.to_pandas().sort_values(order).reset_index(drop=True)
        b = b.to_pandas().sort_values(order).reset_index(drop=True)
        assert (sorted(a.columns) == sorted(b.columns)) if mixed else (list(a.columns) == list(b.columns))
        assert len(a) == len(b)
        for column in a.columns:
            if column in ignore:
                continue
            assert a[column].dtype == b[column].dtype, column
            pd.testing.assert_series_equal(a[column], b[column], check_exact=True, obj=column)


# ----------------------------------------------------------------------------- equality with the per-job path


GRIDS = {
    # converge, hit max_iter and diverge (lr > 2(1 + momentum)/L) at different iterations
    "momentum": [
        config(lr=lr, max_iter=400, **{"optimizer.momentum": m})
        for lr in (0.5, 4.0, 12.0, 40.0, 100.0)
        for m in (0, 0.5, 0.9)
    ],
    "gd_x0_and_stopping": [
        config(optimizer="gd", lr=1.0, max_iter=50),
        config(optimizer="gd", lr=3.0, tol=0.0),
        config(optimizer="gd", lr=2.0, tol=0.0, grad_tol=1e-5),
        config(optimizer="gd", lr=2.0, **{"objective.x0": [-3.0, 1.5]}),
        config(optimizer="gd", lr=2.0, max_iter=0),
        config(optimizer="gd", lr=10.0, tol=0.0),
    ],
    "nesterov_bounded": [
        config("sin_cos", "nesterov", lr=lr, **{"optimizer.momentum": m}) for lr in (0.01, 0.2, 3.0) for m in (0.5, 0.9)
    ],
    "adam": [
        config("sin_cos", "adam", lr=lr, **{"optimizer.betas": [b1, 0.999]}) for lr in (0.01, 0.3) for b1 in (0.0, 0.9)
    ],
    # every run to max_iter: the same shared rows for all, laid out by a transposed copy
    "adam_to_max_iter": [config("sin_cos", "adam", lr=lr, tol=0.0, max_iter=30) for lr in (0.01, 0.1, 0.3)],
    "rmsprop_adagrad": [
        config("sin_cos", "rmsprop", lr=lr, **{"optimizer.alpha": a}) for lr in (0.01, 0.1) for a in (0.9, 0.99)
    ]
    + [config("sin_cos", "adagrad", lr=lr) for lr in (0.05, 0.5)],
    # minibatches: the seed draws them; objective.seed pinned keeps the data shared
    "sgd": [
        config("least_squares", "sgd", lr=lr, seed=seed, **{"optimizer.momentum": m}, max_iter=60)
        for lr in (1e-3, 5e-3)
        for seed in (0, 1, 2)
        for m in (0.0, 0.5)
    ]
    + [config("two_layer_net", "sgd", lr=1e-3, seed=s, max_iter=40, **{"optimizer.batch_size": 4}) for s in (0, 3)],
}


@pytest.mark.parametrize("grid", list(GRIDS))
def test_batched_sweep_equals_the_same_jobs_run_alone(tmp_path, grid):
    jobs = jobs_of(GRIDS[grid])
    outcomes = run_jobs(jobs, tmp_path / "batched")
    per_job(jobs, tmp_path / "alone")
    assert all(o["batched"] for o in outcomes)
    assert not any(p.name == "summary.json" for p in (tmp_path / "batched").rglob("*"))  # no per-job folders
    assert_same_sweep(tmp_path / "batched", tmp_path / "alone")


def test_a_sweep_of_one_chunk_takes_its_files_as_the_tables(tmp_path, monkeypatch):
    from runner import tables as sweep

    run_jobs(jobs_of(GRIDS["momentum"]), tmp_path)
    (part,) = (tmp_path / PARTS_DIR).glob("*.traces.parquet")
    returned = sweep.write_tables(tmp_path).to_pandas()
    assert (tmp_path / "traces.parquet").read_bytes() == part.read_bytes()  # copied, not encoded again
    copied = runner.load(tmp_path), runner.load_runs(tmp_path)
    sweep.write_tables(tmp_path)
    assert (tmp_path / "traces.parquet").read_bytes() == part.read_bytes()  # one chunk file joined alone: itself

    def refuse(sources, path):
        raise CannotSplice("encode them")

    monkeypatch.setattr(sweep, "join_parquet", refuse)
    monkeypatch.setattr(sweep, "joined_already", lambda sweep_dir: False)  # as if the launcher had joined nothing
    sweep.write_tables(tmp_path)
    assert (tmp_path / "traces.parquet").read_bytes() != part.read_bytes()
    encoded = runner.load(tmp_path), runner.load_runs(tmp_path)
    for a, b in zip(copied, encoded, strict=False):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(returned, encoded[1], check_exact=True)


def test_a_sweep_with_runs_beside_its_one_chunk_encodes_the_tables(tmp_path):
    jobs = jobs_of([*GRIDS["momentum"][:4], config(optimizer="scipy", **{"optimizer.method": "BFGS"})])
    run_jobs(jobs, tmp_path)  # four batched, the scipy job in its own folder
    write_tables(tmp_path)
    assert sorted(runner.load(tmp_path)["job"].unique()) == [job.name for job in jobs]
    assert len(runner.load_runs(tmp_path)) == 5


def test_a_grid_stops_each_config_by_its_own_rule(tmp_path):
    jobs = jobs_of(GRIDS["momentum"] + GRIDS["gd_x0_and_stopping"])
    outcomes = run_jobs(jobs, tmp_path)
    runs = collect(tmp_path)[0].to_pandas()
    assert set(runs["status"]) == {"converged", "max_iter", "diverged"}
    assert runs.loc[runs["status"] == "diverged", "iterations"].nunique() > 1
    assert runs.loc[runs["status"] == "converged", "iterations"].nunique() > 1
    assert [o["status"] for o in outcomes] == runs.set_index("job").loc[[j.name for j in jobs], "status"].tolist()


def test_minimize_batch_traces_equal_minimize_row_by_row():
    from objectives import shifted_quadratic
    from runner.optimizers import momentum

    lrs, moms = np.array([0.5, 2.0, 30.0]), np.array([0.0, 0.9, 0.5])
    objective = shifted_quadratic()
    result = minimize_batch(
        objective, momentum(lr=lrs, momentum=moms), np.tile(objective.x0, (3, 1)), max_iter=[100, 300, 300], tol=1e-10
    )
    for b in range(3):
        alone = minimize(objective, momentum(lr=lrs[b], momentum=moms[b]), max_iter=[100, 300, 300][b], tol=1e-10)
        last = result.iterations[b]
        assert last == alone.iterations and result.statuses[b] == alone.status
        assert result.messages[b] == alone.message
        np.testing.assert_array_equal(result.f[: last + 1, b], alone.trace.f)
        np.testing.assert_array_equal(result.x[: last + 1, b], alone.trace.x)
        np.testing.assert_array_equal(result.grad_norm[: last + 1, b], alone.trace.grad_norm)
        np.testing.assert_array_equal(result.x_final[b], alone.x)  # frozen where it stopped
    assert result.statuses == ["max_iter", "converged", "diverged"]


def test_batch_samplers_draw_what_each_epoch_sampler_draws():
    seeds = [0, 1, 7]
    batch = BatchSamplers(10, 3, [run_rng(s) for s in seeds])
    alone = [EpochSampler(10, 3, run_rng(s)) for s in seeds]
    active = np.ones(3, dtype=bool)
    for _ in range(10):  # three full epochs and a bit, tails dropped
        drawn = batch.next(active)
        assert drawn.shape == (3, 3)
        for b, sampler in enumerate(alone):
            np.testing.assert_array_equal(drawn[b], sampler.next())


# ----------------------------------------------------------------------------- what runs alone


def test_scipy_and_failing_configs_run_alone_in_the_same_sweep(tmp_path):
    configs = [
        config(lr=0.5),
        config(lr=1.0, **{"optimizer.momentum": 0.5}),
        config(optimizer="scipy", max_iter=50),
        config(optimizer="scipy", max_iter=50, **{"optimizer.method": "CG"}),
        config(lr=-1.0),  # a bad value: failed, with its message, as a lone run records it
        config(optimizer="sgd", lr=0.1),
    ]  # sgd on an objective without samples: failed
    jobs = jobs_of(configs)
    outcomes = run_jobs(jobs, tmp_path / "batched")
    per_job(jobs, tmp_path / "alone")
    assert [o.get("batched", False) for o in outcomes] == [True, True, False, False, False, False]
    alone_dirs = sorted(p.parent.name for p in (tmp_path / "batched").rglob("summary.json"))
    assert alone_dirs == ["job=002", "job=003", "job=004", "job=005"]
    assert_same_sweep(tmp_path / "batched", tmp_path / "alone", mixed=True)
    runs = runner.load_runs(tmp_path / "batched").set_index("job")
    assert runs.loc["job=004", "status"] == "failed"
    assert runs.loc["job=004", "error"] == "lr=-1.0: expected a number > 0"


def test_a_chunk_whose_objective_raises_runs_alone(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise FloatingPointError("boom")

    monkeypatch.setattr(batched, "minimize_batch", crash)
    jobs = jobs_of([config(lr=0.5), config(lr=1.0)])
    outcomes = run_jobs(jobs, tmp_path)
    assert [o["status"] for o in outcomes] == ["converged", "converged"]
    assert not (tmp_path / PARTS_DIR).exists() and len(list(tmp_path.rglob("summary.json"))) == 2


# ----------------------------------------------------------------------------- bounded memory


def _chunk_tables_of_a_small_grid(tmp_path) -> tuple[list[pa.Table], list[pa.Table]]:
    """The runs and traces tables a real chunk wrote (two batches: two optimizers)."""
    configs = [config(lr=lr, max_iter=20) for lr in (0.1, 0.5)] + [config("sin_cos", "adam", lr=0.01, max_iter=20)]
    run_jobs(jobs_of(configs), tmp_path / "sweep")
    [runs_part] = sorted((tmp_path / "sweep" / PARTS_DIR).glob("*.runs.parquet"))
    traces_part = runs_part.with_name(runs_part.name.replace(".runs.", ".traces."))
    return [pq.read_table(runs_part)], [pq.read_table(traces_part)]


def test_runs_built_while_the_traces_are_written_give_the_same_files(tmp_path):
    """write_part with the function that builds the runs tables (called while another thread writes the
    traces file) writes the very bytes it writes given the tables."""
    from runner.store import write_part

    runs, traces = _chunk_tables_of_a_small_grid(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return runs

    write_part(tmp_path / "given", "c", runs, traces)
    write_part(tmp_path / "built", "c", build, traces)
    assert calls == [1]
    for name in ("c.runs.parquet", "c.traces.parquet"):
        given, built = tmp_path / "given" / PARTS_DIR / name, tmp_path / "built" / PARTS_DIR / name
        assert given.read_bytes() == built.read_bytes()


def test_a_traces_file_written_by_several_threads_holds_the_rows_one_thread_writes(tmp_path, monkeypatch):
    import polars as pl

    import runner.store as store

    _, traces = _chunk_tables_of_a_small_grid(tmp_path)
    table = pa.concat_tables(traces)
    monkeypatch.setattr(store, "SPLIT_WRITE_ROWS", table.num_rows // 4)  # this small table in shares
    one, three = tmp_path / "one.parquet", tmp_path / "three.parquet"
    store.write_chunk_traces(one, table)
    store.write_chunk_traces(three, table, threads=3)
    assert pq.ParquetFile(one).num_row_groups == 1 and pq.ParquetFile(three).num_row_groups == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == []  # the shares are gone
    assert pq.read_table(three).equals(pq.read_table(one))
    a, b = pl.read_parquet(three), pl.read_parquet(one)  # a reader the project did not write
    assert a.columns == b.columns and a.dtypes == b.dtypes
    for name in a.columns:
        if a[name].dtype == pl.Float64:
            assert np.array_equal(a[name].to_numpy().view(np.int64), b[name].to_numpy().view(np.int64)), name
        else:
            assert a[name].equals(b[name]), name

    def coding(path, group):  # each column's codec and encodings in one row group
        columns = pq.ParquetFile(path).metadata.row_group(group)
        return [(c.path_in_schema, c.compression, c.encodings) for c in map(columns.column, range(columns.num_columns))]

    assert all(coding(three, group) == coding(one, 0) for group in range(3))  # every share written alike
    assert ("f", "LZ4", ("RLE", "BYTE_STREAM_SPLIT")) in coding(three, 2)


def test_shares_that_cannot_be_joined_are_written_again_by_one_thread(tmp_path, monkeypatch):
    import runner.store as store

    _, traces = _chunk_tables_of_a_small_grid(tmp_path)
    table = pa.concat_tables(traces)
    monkeypatch.setattr(store, "SPLIT_WRITE_ROWS", table.num_rows // 4)

    def refuse(sources, out):
        raise CannotSplice("not joined")

    monkeypatch.setattr(store, "splice", refuse)
    path = tmp_path / "out" / "c.traces.parquet"
    path.parent.mkdir()
    store.write_chunk_traces(path, table, threads=3)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the shares are gone
    assert pq.ParquetFile(path).num_row_groups == 1 and pq.read_table(path).equals(table.cast(pq.read_schema(path)))


@pytest.mark.parametrize("fault", ["a share's write fails", "ctrl-c while the shares are written"])
def test_a_fault_while_the_shares_are_written_leaves_no_file(tmp_path, monkeypatch, fault):
    import runner.store as store

    _, traces = _chunk_tables_of_a_small_grid(tmp_path)
    table = pa.concat_tables(traces)
    monkeypatch.setattr(store, "SPLIT_WRITE_ROWS", table.num_rows // 4)
    real_write = store.pq.write_table

    def failing_write(part, where, **kwargs):
        real_write(part, where, **kwargs)  # the share is on disk: the fault must remove it
        if ".1." in Path(where).name:
            raise OSError(28, "No space left on device") if fault == "a share's write fails" else KeyboardInterrupt

    monkeypatch.setattr(store.pq, "write_table", failing_write)
    path = tmp_path / "out" / "c.traces.parquet"
    path.parent.mkdir()
    expected = (store.WriteError, "c.traces.parquet could not be written (No space left on device)")
    if fault != "a share's write fails":
        expected = (store.WriteInterrupted, "c.traces.parquet was not written (interrupted")
    with pytest.raises(expected[0], match=re.escape(expected[1])):
        store.write_chunk_traces(path, table, threads=3)
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize("fault", ["build raises", "ctrl-c while building", "the traces write fails"])
def test_a_fault_while_the_runs_are_built_leaves_neither_file(tmp_path, monkeypatch, fault):
    """Whatever ends a chunk's writing early, its traces file is not left without its runs file, no
    temporary file is left, and the error raised is the one that happened (the write's first)."""
    import runner.store as store

    runs, traces = _chunk_tables_of_a_small_grid(tmp_path)
    real_write = store.pq.write_table

    def build():
        if fault == "build raises":
            raise ValueError("no runs")
        if fault == "ctrl-c while building":
            raise KeyboardInterrupt
        return runs

    def failing_write(table, where, **kwargs):
        if fault == "the traces write fails" and "traces" in str(where):
            raise OSError(28, "No space left on device")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(store.pq, "write_table", failing_write)
    expected = {
        "build raises": (ValueError, "no runs"),
        "ctrl-c while building": (store.WriteInterrupted, "c.runs.parquet was not written (interrupted"),
        "the traces write fails": (store.WriteError, "No space left on device"),
    }[fault]
    with pytest.raises(expected[0], match=expected[1].replace("(", r"\(")):
        store.write_part(tmp_path / "out", "c", build, traces)
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == [PARTS_DIR]


def test_a_large_grid_runs_in_chunks_of_at_most_chunk_size(tmp_path, monkeypatch):
    held = []
    minimize = batched.minimize_batch
    write = batched.write_part

    def counting_minimize(objective, optimizer, x0, **kwargs):
        held.append(len(x0))
        return minimize(objective, optimizer, x0, **kwargs)

    written = []

    def counting_write(sweep_dir, name, runs, traces, threads=1):
        runs = runs() if callable(runs) else runs  # the runs tables, or the function that builds them
        written.append(sum(t.num_rows for t in runs))
        write(sweep_dir, name, runs, traces, threads)

    monkeypatch.setattr(batched, "minimize_batch", counting_minimize)
    monkeypatch.setattr(batched, "write_part", counting_write)
    configs = [
        config(lr=lr, max_iter=30, tol=0.0, **{"optimizer.momentum": m})
        for lr in np.linspace(0.1, 3, 10).round(3).tolist()
        for m in (0.0, 0.3, 0.6, 0.9)
    ]
    configs += [config("sin_cos", "adam", lr=0.01, max_iter=30, seed=s) for s in range(5)]  # other data: own groups
    run_jobs(jobs_of(configs), tmp_path, chunk_size=8)
    assert max(held) <= 8 and max(written) <= 8 and sum(written) == len(configs) == 45
    parts = sorted((tmp_path / PARTS_DIR).glob("*.runs.parquet"))
    assert len(parts) == len(written) >= 6
    assert len(list((tmp_path / PARTS_DIR).glob("*.traces.parquet"))) == len(parts)
    traces = pq.read_table(tmp_path / PARTS_DIR / parts[0].name.replace("runs", "traces")).to_pandas()
    assert traces.groupby("job").size().eq(31).all()
    assert len(runner.load_runs(tmp_path)) == 45 and len(runner.load(tmp_path)) == 45 * 31

    held.clear()
    run_jobs(jobs_of(configs[:40]), tmp_path / "bytes", max_chunk_bytes=5 * 31 * 8 * 8)  # 5 configs' traces
    assert max(held) == 5


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40, 599, 1000, 10_000])
@pytest.mark.parametrize("size", [1, 8, 599, 1024])
@pytest.mark.parametrize("workers", [1, 2, 3, 64])
def test_a_group_is_cut_evenly_in_a_multiple_of_the_workers(n, size, workers):
    bounds = batched._even_cuts(n, size, workers)
    sizes = np.diff(bounds)
    fewest = -(-n // size)  # the fewest batches of at most size
    assert bounds[0] == 0 and bounds[-1] == n and sizes.min() >= 1 and sizes.max() <= size
    assert sizes.max() - sizes.min() <= 1  # even
    assert len(sizes) % workers == 0 or len(sizes) == n  # every worker has as many, unless a config each
    assert len(sizes) - workers < fewest <= len(sizes)  # no more than that takes


def test_chunks_cut_for_two_workers_hold_the_same_runs(tmp_path, monkeypatch):
    held = []
    minimize = batched.minimize_batch

    def counting_minimize(objective, optimizer, x0, **kwargs):
        held.append(len(x0))
        return minimize(objective, optimizer, x0, **kwargs)

    monkeypatch.setattr(batched, "minimize_batch", counting_minimize)
    configs = [
        config(lr=lr, max_iter=60, **{"optimizer.momentum": m})
        for lr in np.linspace(0.1, 3, 10).round(3).tolist()
        for m in (0.0, 0.3, 0.6, 0.9)
    ]
    cuts = {"one": (8, 1), "two": (8, 2), "whole": (64, 1), "halves": (64, 2)}
    batches = {}
    for name, (chunk_size, workers) in cuts.items():
        held.clear()
        run_jobs(jobs_of(configs), tmp_path / name, chunk_size=chunk_size, workers=workers)
        batches[name] = list(held)
        assert len(list((tmp_path / name / PARTS_DIR).glob("*.runs.parquet"))) == len(held)
    assert batches == {"one": [8] * 5, "two": [6, 7, 7, 6, 7, 7], "whole": [40], "halves": [20, 20]}
    for name in ("two", "whole", "halves"):
        assert_same_sweep(tmp_path / name, tmp_path / "one")


def test_the_sweep_tables_are_written_a_file_at_a_time(tmp_path, monkeypatch):
    import pyarrow as pa

    from runner import tables as sweep

    configs = [
        config(lr=lr, max_iter=30, tol=0.0, **{"optimizer.momentum": m}) for lr in (0.5, 1, 2, 3) for m in (0.0, 0.5)
    ]
    configs += [config("sin_cos", "adam", lr=0.01, max_iter=30, seed=s) for s in range(3)]  # 50 x_i columns more
    configs += [config(optimizer="scipy", **{"optimizer.method": "BFGS"})]  # a job folder: status and job as constants
    run_jobs(jobs_of(configs), tmp_path, chunk_size=4)
    expected = collect(tmp_path)[1]  # the whole sweep at once, as load() rebuilds it
    held, rows, pending = [], [], [0]
    read = sweep._TraceSource.read

    def counting_read(source):
        table = read(source)
        pending[0] += table.num_rows
        rows.append(table.num_rows)
        held.append(pending[0])
        return table

    write = pq.ParquetWriter.write_table

    def counting_write(writer, table, *args, **kwargs):
        if "iteration" in table.column_names:  # not runs.parquet
            pending[0] -= table.num_rows
        return write(writer, table, *args, **kwargs)

    monkeypatch.setattr(sweep._TraceSource, "read", counting_read)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", counting_write)
    monkeypatch.setattr(sweep, "ROW_GROUP_ROWS", 50)
    sweep.write_tables(tmp_path)
    assert len(rows) == 4 and pending == [0]  # a job folder and three chunk files; every row written
    assert max(held) < 50 + max(rows) < sum(rows)  # at most a row group and one file in memory
    written = pq.ParquetFile(tmp_path / "traces.parquet")
    assert written.metadata.num_row_groups >= 3
    table = written.read()
    assert table.equals(expected.cast(table.schema)) and table.schema.equals(expected.schema)
    assert pa.types.is_float64(table.schema.field("lr").type)  # lr=1 beside lr=0.5: promoted as in load()


# ----------------------------------------------------------------------------- resume


def test_a_sweep_run_again_into_its_folder_resumes_it(tmp_path):
    import pyarrow as pa

    first = jobs_of([config(lr=lr, max_iter=40) for lr in (0.5, 1.0, 2.0)])
    run_jobs(first, tmp_path)
    (runs_part,) = (tmp_path / PARTS_DIR).glob("*.runs.parquet")
    # the run of lr=1.0 left unfinished, as Ctrl-C leaves it
    runs = pq.read_table(runs_part)
    status = pa.array(
        [
            "interrupted" if job == "job=001" else s
            for job, s in zip(runs["job"].to_pylist(), runs["status"].to_pylist(), strict=False)
        ]
    )
    pq.write_table(runs.set_column(runs.column_names.index("status"), "status", status), runs_part)
    before = {p.name: p.read_bytes() for p in (tmp_path / PARTS_DIR).iterdir()}
    kept = collect(tmp_path)[0].to_pandas().set_index("job")

    # the same sweep with job=002's config changed, and one config more
    again = [*first[:2], Job(config(lr=2.0, max_iter=20), "job=002"), Job(config(lr=3.0, max_iter=40), "job=003")]
    outcomes = run_jobs(again, tmp_path)
    assert [bool(o.get("skipped")) for o in outcomes] == [True, False, False, False]
    assert outcomes[0]["status"] == kept.loc["job=000", "status"] and outcomes[0]["f"] == kept.loc["job=000", "f"]
    runs, traces = (t.to_pandas() for t in collect(tmp_path))
    assert sorted(runs["job"]) == ["job=000", "job=001", "job=002", "job=003"]  # each once
    assert "interrupted" not in set(runs["status"])
    finished = runs.set_index("job")
    assert finished.loc["job=000", "run_id"] == kept.loc["job=000", "run_id"]  # not run again: the same run
    for job in ("job=001", "job=002"):  # run again, the new run in place of the old
        assert finished.loc[job, "run_id"] != kept.loc[job, "run_id"]
    assert finished.loc["job=002", "iterations"] == 20
    assert traces.groupby("job")["run_id"].nunique().eq(1).all() and traces["job"].nunique() == 4
    # the earlier chunk files: the runs done again taken out; the new chunk beside them
    after = {p.name: p for p in (tmp_path / PARTS_DIR).iterdir()}
    assert set(before) < set(after) and len(after) == 4
    earlier_traces = runs_part.with_name(runs_part.name.replace("runs", "traces"))
    assert pq.read_table(runs_part)["job"].to_pylist() == ["job=000"]
    assert set(pq.read_table(earlier_traces)["job"].to_pylist()) == {"job=000"}

    assert all(o.get("skipped") for o in run_jobs(again, tmp_path))  # all done: nothing runs, nothing is written
    assert {p.name for p in (tmp_path / PARTS_DIR).iterdir()} == set(after)


def test_cli_batched_sweeps_into_one_folder_add_up(tmp_path):
    out = tmp_path / "s"
    for grid, line in (("lr=0.1,0.2", "batched: 2 of 2 runs"), ("lr=0.2,0.3", "batched: 1 of 2 runs")):
        done = cli(
            "hydra/launcher=batched",
            grid,
            f"hydra.sweep.dir={out}",
            "hydra.callbacks.sweep_end.figures=false",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert line in done.stdout
    assert "1 done already (skipped)" in done.stdout
    assert sorted(runner.load_runs(out)["lr"]) == [0.1, 0.2, 0.3]  # the first sweep's runs are kept


# ----------------------------------------------------------------------------- the Hydra launcher


def _plugin():
    try:
        from hydra_plugins.runner_batched_launcher import compose
    except ImportError:  # the source tree, not installed: the plugin package sits beside runner/
        sys.path.insert(0, str(REPO))
        from hydra_plugins.runner_batched_launcher import compose
    return compose


@pytest.fixture(scope="module")
def composer():
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.utils import setup_globals
    from hydra.types import RunMode

    from runner.app import config_dir

    compose = _plugin()
    setup_globals()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(config_dir()))
    master = loader.load_configuration(
        "config", overrides=["hydra.sweep.dir=/tmp/unused", "hydra/launcher=batched"], run_mode=RunMode.MULTIRUN
    )
    return compose.SweepComposer(loader, master)


@pytest.mark.parametrize(
    "overrides",
    [
        ["lr=0.1", "optimizer=momentum", "optimizer.momentum=0.5"],
        ["optimizer=momentum", "lr=0.2", "optimizer.momentum=0"],  # same shape, other values
        ["objective=sin_cos", "optimizer=adam", "seed=3", "optimizer.betas=[0.5,0.9]", "lr=1"],
        ["objective.x0=[1,2]", "max_iter=10", "trace.x=false"],
        ["+experiment=lr_sweep", "lr=4"],
        ["+tag=abc", "lr=0.1"],  # an added key: composed in full
        ["optimizer=scipy", "+optimizer.options.ftol=1e-8"],
        ["hydra.job.chdir=false", "lr=0.3"],
        ["lr=${max_iter}", "max_iter=3"],  # an interpolation to an interpolated key: resolved by OmegaConf
        ["optimizer=adam", "optimizer.betas.0=0.5", "lr=0.1"],  # an element of a list
        ["objective=two_layer_net", "seed=4", "lr=0.1"],  # objective.seed: ${seed}, resolved from the job's seed
        ["max_iter=1", "lr=1"],  # the same value again (int, float), the shapes' values read back from Hydra
        ["optimizer.lr=0.5", "lr=0.1"],  # a value in place of the template's ${lr}
        ["objective.x0=[${lr},1]", "lr=2"],  # an interpolation inside a job's value
    ],
)
def test_fast_composition_equals_load_sweep_config(composer, overrides):
    exact = composer.exact(overrides, 0)
    for checked in (False, True, False):  # the shape is composed once, then reused
        if checked:  # the sweeper's check composes the job, the launcher takes it from there
            composer.check(overrides)
        fast = composer.job(overrides, 0)
        assert (fast.resolved, fast.unresolved, fast.name) == (exact.resolved, exact.unresolved, exact.name)
    assert not composer._checked


def test_a_grid_applies_each_distinct_value_once(composer, monkeypatch):
    compose = _plugin()
    fresh = compose.SweepComposer(composer.loader, composer.master)
    calls = []
    apply = type(composer.loader)._apply_overrides_to_config
    monkeypatch.setattr(
        type(composer.loader),
        "_apply_overrides_to_config",
        staticmethod(lambda overrides, cfg: calls.append(len(overrides)) or apply(overrides, cfg)),
    )
    grid = [
        ["optimizer=momentum", f"lr={lr}", f"optimizer.momentum={m}"]
        for lr in (0.1, 0.2, 0.3, 0.4)
        for m in (0, 0.5, 0.9)
    ]
    for overrides in grid:
        fresh.check(overrides)
    jobs = [fresh.job(overrides, i) for i, overrides in enumerate(grid)]
    # One composition of the shape (Hydra applies its own overrides once), then the 4 + 3 distinct values.
    assert calls == [1] + [1] * 7
    assert [(j.resolved["lr"], j.resolved["optimizer"]["lr"], j.resolved["optimizer"]["momentum"]) for j in jobs] == [
        (lr, lr, m) for lr in (0.1, 0.2, 0.3, 0.4) for m in (0, 0.5, 0.9)
    ]


@pytest.mark.parametrize(
    "command, jobs, compositions",
    [
        # the master config holds the jobs' option choices: no composition of its own
        (
            ["optimizer=momentum", "lr=0.1,0.2", "optimizer.momentum=0,0.9", "tol=0"],
            [
                ["optimizer=momentum", f"lr={lr}", f"optimizer.momentum={m}", "tol=0"]
                for lr in (0.1, 0.2)
                for m in (0, 0.9)
            ],
            0,
        ),
        # a swept option: the master config has the default one, each option is composed once
        (
            ["optimizer=gd,momentum", "lr=0.1,0.2"],
            [[f"optimizer={o}", f"lr={lr}"] for o in ("gd", "momentum") for lr in (0.1, 0.2)],
            2,
        ),
    ],
)
def test_fast_composition_from_the_master_config(composer, monkeypatch, command, jobs, compositions):
    from hydra.types import RunMode

    compose = _plugin()
    master = composer.loader.load_configuration("config", overrides=command, run_mode=RunMode.MULTIRUN)
    fast = compose.SweepComposer(composer.loader, master)
    exact = [fast.exact(overrides, i) for i, overrides in enumerate(jobs)]
    calls = []
    load = composer.loader.load_sweep_config
    monkeypatch.setattr(composer.loader, "load_sweep_config", lambda *args: calls.append(args) or load(*args))
    for i, overrides in enumerate(jobs):
        job = fast.job(overrides, i)
        assert (job.resolved, job.unresolved, job.name) == (exact[i].resolved, exact[i].unresolved, exact[i].name)
    assert len(calls) == compositions


def test_fast_composition_with_a_custom_job_folder(composer):
    from hydra.types import RunMode

    compose = _plugin()
    master = composer.loader.load_configuration(
        "config", overrides=["hydra.sweep.subdir=run${hydra.job.num}_lr${lr}"], run_mode=RunMode.MULTIRUN
    )
    custom = compose.SweepComposer(composer.loader, master)
    for idx, overrides in enumerate([["lr=0.5", "seed=1"], ["lr=0.7", "seed=2"], ["lr=0.5", "optimizer=adam"]]):
        fast, exact = custom.job(overrides, idx), custom.exact(overrides, idx)
        assert (fast.resolved, fast.unresolved, fast.name) == (exact.resolved, exact.unresolved, exact.name)
        assert fast.name == f"run{idx}_lr{overrides[0][3:]}"


def test_fast_composition_raises_what_composition_raises(composer):
    from hydra.errors import ConfigCompositionException

    for bad in (["optimizer.nope=1"], ["optimizer=momentum", "optimizer.weight_decay=1", "lr.x=2"]):
        with pytest.raises(ConfigCompositionException):
            composer.exact(bad, 0)
        with pytest.raises(ConfigCompositionException):
            composer.check(bad)
    assert composer.check(["+tag=1"]) is None  # not fast-pathed: the sweeper composes it in full


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "runner", "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize(
    "setting, allowed",
    [("hydra.launcher.chunk_size=0", "an integer >= 1"), ("hydra.launcher.compose=slow", "fast or exact")],
)
def test_a_bad_launcher_setting_is_one_line(tmp_path, setting, allowed):
    done = cli("hydra/launcher=batched", setting, "lr=0.1,0.2", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"error: {setting}: expected {allowed}"
    assert not (tmp_path / "s").exists()  # nothing ran, nothing half-written


def test_cli_batched_launcher_equals_basic_launcher(tmp_path):
    grid = ["lr=0.1,0.2", "optimizer=momentum", "optimizer.momentum=0,0.5"]
    for launcher in ("batched", "basic"):
        done = cli(f"hydra/launcher={launcher}", *grid, f"hydra.sweep.dir={tmp_path / launcher}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"sweep: 4 runs: 4 converged  ({tmp_path / launcher})" in done.stdout
        assert ("batched: 4 of 4 runs" in done.stdout) == (launcher == "batched")
    assert len(list((tmp_path / "batched" / PARTS_DIR).glob("*.parquet"))) == 2
    assert not list((tmp_path / "batched").rglob("summary.json"))
    for load, order in ((runner.load, ["job", "iteration"]), (runner.load_runs, ["job"])):
        a = load(tmp_path / "batched").sort_values(order).reset_index(drop=True)
        b = load(tmp_path / "basic").sort_values(order).reset_index(drop=True)
        assert list(a.columns) == list(b.columns)
        columns = [c for c in a.columns if c not in TIMING]
        pd.testing.assert_frame_equal(a[columns], b[columns], check_exact=True)
    assert set(runner.load_runs(tmp_path / "batched")["job"]) == {
        f"lr={lr}/optimizer.momentum={m}/optimizer=momentum" for lr in ("0.1", "0.2") for m in ("0", "0.5")
    }


# ----------------------------------------------------------------------------- bad values


def test_bad_values_fail_alone_and_cost_no_other_job(tmp_path):
    """Each bad value fails with the line its lone run gives; the batch around it runs (lr=[0.1] was run as a
    batch of one before, and failed alone)."""
    good = [config(lr=0.5), config(lr=1.0, **{"optimizer.momentum": 0.5})]
    bad = {
        "lr=[0.1]: expected a number": config(lr=[0.1]),
        "optimizer.momentum=[0.5]: expected a number": config(**{"optimizer.momentum": [0.5]}),
        "optimizer.momentum=True: expected a number": config(**{"optimizer.momentum": True}),
        "objective.x0=[True, False]: expected a list of numbers, a number or null": config(
            **{"objective.x0": [True, False]}
        ),
        "max_iters=5: expected a known key: did you mean max_iter? (keys: objective, optimizer, lr, max_iter, tol, "
        "grad_tol, seed, trace)": config(max_iters=5),
        "optimizer.options=abc: expected a mapping (name: value) or null": config(
            optimizer="scipy", **{"optimizer.options": "abc"}
        ),
    }
    jobs = jobs_of(good + list(bad.values()))
    outcomes = run_jobs(jobs, tmp_path / "batched")
    per_job(jobs, tmp_path / "alone")
    assert [o.get("batched", False) for o in outcomes] == [True, True] + [False] * len(bad)
    for where in ("batched", "alone"):
        runs = runner.load_runs(tmp_path / where).set_index("job").sort_index()
        assert list(runs["status"]) == ["converged", "converged"] + ["failed"] * len(bad)
        assert list(runs["error"].iloc[2:]) == list(bad)
    assert_same_sweep(tmp_path / "batched", tmp_path / "alone", mixed=True)


def test_integers_past_int64_fail_before_any_work(tmp_path, monkeypatch):
    jobs = jobs_of([config(lr=0.5), config(max_iter=10**20), config(**{"objective.a": 10**20}), config(lr=10**20)])
    outcomes = run_jobs(jobs, tmp_path)
    assert [o["status"] for o in outcomes] == ["converged", "failed", "failed", "failed"]
    assert [o["error"] for o in outcomes[1:]] == [
        "max_iter=100000000000000000000: expected an integer >= 0 (an integer must fit int64)",
        "objective.a=100000000000000000000: expected a number (an integer must fit int64)",
        "lr=100000000000000000000: expected a number (an integer must fit int64)",
    ]
    assert [o["traceback"] for o in outcomes[1:]] == [None] * 3
    assert not list(tmp_path.glob("job=00[123]/trace.parquet"))
    # The sweep's tables take every run, the refused values kept in each run's config text.
    runs = write_tables(tmp_path)
    assert runs.schema.field("max_iter").type == pa.int64()
    by_job = {row["job"]: row for row in runs.to_pylist()}
    assert [by_job[job.name]["status"] for job in jobs] == ["converged", "failed", "failed", "failed"]
    assert by_job[jobs[1].name]["max_iter"] is None
    assert '"max_iter": 100000000000000000000' in by_job[jobs[1].name]["config"]


def test_cli_bad_values_in_a_sweep_give_the_same_statuses_under_both_launchers(tmp_path):
    grid = ["lr=[0.1],0.2,0.3", "objective.x0=[8,9],[true,false]"]
    runs = {}
    for launcher in ("batched", "basic"):
        done = cli(f"hydra/launcher={launcher}", *grid, f"hydra.sweep.dir={tmp_path / launcher}", cwd=tmp_path)
        assert done.returncode == 1, done.stderr  # a failed job fails the command, after the tables
        assert f"sweep: 6 runs: 2 converged, 4 failed  ({tmp_path / launcher})" in done.stdout, done.stderr
        assert (tmp_path / launcher / "runs.parquet").is_file() and list((tmp_path / launcher / "figures").iterdir())
        runs[launcher] = pq.read_table(tmp_path / launcher / "runs.parquet").to_pandas().set_index("job").sort_index()
    for launcher in runs:
        assert runs[launcher]["status"].to_dict() == runs["basic"]["status"].to_dict()
        assert runs[launcher]["error"].fillna("").to_dict() == runs["basic"]["error"].fillna("").to_dict()
    errors = runs["batched"]["error"]
    assert errors.isna().sum() == 2 and pd.isna(errors["lr=0.2/objective.x0=[8,9]"])
    assert errors["lr=[0.1]/objective.x0=[8,9]"] == "lr=[0.1]: expected a number"
    assert errors["lr=0.3/objective.x0=[True,False]"] == (
        "objective.x0=[True, False]: expected a list of numbers, a number or null"
    )


@pytest.mark.parametrize(
    "values",
    [
        pa.array([0.5, -0.0, 0.0, None, float("nan"), 0.5, float("nan")]),
        pa.array(["adam", None, "adam", "sgd"]),
        pa.array([True, False, None, True]),
        pa.array([3, 3, None, -2], pa.int64()),
        pa.array([None, None], pa.float64()),
        pa.array([[0.9, 0.999], None, [], [1.0]], pa.list_(pa.float64())),
        pa.array([None, None], pa.list_(pa.float64())),
    ],
    ids=["floats", "text", "bools", "ints", "all-null", "lists", "null-lists"],
)
def test_a_runs_constants_over_its_rows_are_arrows_take(values):
    """Each run's constant over its rows, dictionary-encoded in numpy: what Arrow's own take gives, value for
    value and bit for bit (-0.0 stays -0.0, NaN stays NaN), nulls where the run's value is null."""
    counts = np.arange(len(values)) % 3 + 1
    owner = np.repeat(np.arange(len(values)), counts)
    repeated = batched._repeat(values, counts)
    plain = repeated.cast(values.type) if pa.types.is_dictionary(repeated.type) else repeated
    expected = values.take(pa.array(owner))
    assert plain.type == expected.type and plain.null_count == expected.null_count
    if pa.types.is_floating(values.type):
        got, want = plain.to_numpy(zero_copy_only=False), expected.to_numpy(zero_copy_only=False)
        assert np.array_equal(got.view(np.int64), want.view(np.int64))  # NaN and -0.0 by their bits
    else:
        assert plain.to_pylist() == expected.to_pylist()
    if pa.types.is_dictionary(repeated.type):  # each distinct value once: 0.0 and -0.0 twice, NaN once
        present = [v for v in values.to_pylist() if v is not None]
        distinct = {struct.pack("<d", v) for v in present} if pa.types.is_floating(values.type) else set(present)
        assert len(repeated.dictionary) == len(distinct)


def test_columns_spread_alike_share_their_row_indices():
    """Columns whose runs map to their values alike (one value for all, one per run) share the row indices
    built for the first of them, and each still equals its own repetition."""
    counts = np.array([2, 1, 3])
    spread: dict = {}
    columns = [pa.array([0.5, 0.5, 0.5]), pa.array(["a", "a", "a"]), pa.array([1, 2, None]), pa.array(["u", "v", "w"])]
    shared = [batched._repeat(values, counts, spread) for values in columns]
    for values, got in zip(columns, shared, strict=True):
        alone = batched._repeat(values, counts)
        assert got.equals(alone) and got.cast(values.type).to_pylist() == alone.cast(values.type).to_pylist()
    assert len(spread) == 3  # all-equal, one per run, and one per run with a null
    first, second = (column.indices.buffers()[1].address for column in shared[:2])
    assert first == second
