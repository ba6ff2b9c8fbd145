"""Loading finds every run (a sweep, a run, a folder of sweeps, a list) and rebuilds stale tables by streaming."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import runner
import runner.tables as tables
from runner.store import RUNS_FILE, SUMMARY_FILE, TRACE_FILE, TRACES_FILE

REPO = Path(__file__).resolve().parent.parent
GRID = ["optimizer=gd", "lr=0.1,0.2", "max_iter=20", "tol=0", "hydra.callbacks.sweep_end.figures=false"]
COLUMNS = ["run_id", "iteration", "f"]


def sweep(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "-m", *GRID, *args, f"hydra.sweep.dir={out}"],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A day's folder of sweeps: one per-job (basic launcher), one batched (chunk files)."""
    root = tmp_path_factory.mktemp("multirun") / "2026-11-30"
    root.mkdir()
    sweep(root / "10-00-00", "hydra/launcher=basic")
    sweep(root / "11-00-00", "hydra/launcher=batched", "optimizer=momentum")
    assert list((root / "11-00-00" / "parts").glob("*.runs.parquet"))
    return root


def stale_copy(src: Path, dst: Path) -> Path:
    """A copy of a folder of sweeps without any sweep table: as after a kill, mid-sweep."""
    shutil.copytree(src, dst)
    for table in [*dst.rglob(RUNS_FILE), *dst.rglob(TRACES_FILE)]:
        if table.parent.name != "parts":
            table.unlink()
    return dst


def by_run(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["run_id", *(["iteration"] if "iteration" in df else [])]).reset_index(drop=True)


def test_a_folder_of_sweeps_holds_every_run_of_both_layouts(day, tmp_path):
    for folder in (day, stale_copy(day, tmp_path / "stale")):
        runs = runner.load_runs(folder)
        assert sorted(runs["sweep"]) == ["10-00-00", "10-00-00", "11-00-00", "11-00-00"]
        assert set(runs.groupby("sweep")["optimizer"].first()) == {"gd", "momentum"}
        traces = runner.load(folder)
        assert traces.groupby("sweep")["run_id"].nunique().to_dict() == {"10-00-00": 2, "11-00-00": 2}
        # Each sweep's rows are those of its own files, read by polars.
        for name in ("10-00-00", "11-00-00"):
            alone = by_run(runner.load(folder / name, columns=COLUMNS))
            assert "sweep" not in alone
            mine = by_run(traces.loc[traces["sweep"] == name, COLUMNS])
            pd.testing.assert_frame_equal(mine, alone)
        reference = pl.read_parquet(day / "11-00-00" / "parts" / "*.traces.parquet").select(COLUMNS).to_pandas()
        pd.testing.assert_frame_equal(
            by_run(traces.loc[traces["sweep"] == "11-00-00", COLUMNS]), by_run(reference), check_dtype=False
        )


def test_the_sweep_column_is_only_there_for_several_sweeps(day):
    for path in (day / "10-00-00", [day / "11-00-00"], [day / "11-00-00", day / "11-00-00"]):
        assert "sweep" not in runner.load_runs(path) and len(runner.load_runs(path)) == 2
    assert list(runner.load(day, columns=COLUMNS).columns) == COLUMNS  # the columns asked for, only
    assert list(runner.load(day, columns=["sweep", "f"]).columns) == ["sweep", "f"]


def test_a_list_of_folders_names_each_sweep_as_given(day, tmp_path):
    runs = runner.load_runs([str(day / "10-00-00"), day / "11-00-00"])
    assert sorted(set(runs["sweep"])) == [(day / "10-00-00").as_posix(), (day / "11-00-00").as_posix()]
    # A run folder and a folder of sweeps, together: each run once.
    job = next((day / "10-00-00").rglob(SUMMARY_FILE)).parent
    runs = runner.load_runs([day, job])
    assert len(runs) == 4 and runs["run_id"].is_unique
    with pytest.raises(ValueError, match=r"^path=\[\]: expected"):
        runner.load_runs([])
    with pytest.raises(FileNotFoundError, match=r"path=.*nothing: expected"):
        runner.load([tmp_path / "nothing"])


def test_a_run_folder(day):
    job = next((day / "10-00-00").rglob(SUMMARY_FILE)).parent
    runs = runner.load_runs(job)
    assert len(runs) == 1 and runs["job"].tolist() == ["."]
    reference = pl.read_parquet(job / TRACE_FILE).select(COLUMNS).to_pandas()
    pd.testing.assert_frame_equal(runner.load(job, columns=COLUMNS), reference, check_dtype=False)


def test_a_job_folder_below_a_dot_folder_is_a_job(tmp_path):
    # A job folder named by an override whose value is a path with a hidden folder in it.
    out = tmp_path / "dotted"
    done = sweep(out, "hydra/launcher=basic", "hydra.sweep.subdir=data/.hidden/${hydra.job.num}")
    assert "sweep: 2 runs" in done.stdout
    assert sorted(runner.load_runs(out)["job"]) == ["data/.hidden/0", "data/.hidden/1"]
    for table in (RUNS_FILE, TRACES_FILE):
        (out / table).unlink()
    assert sorted(runner.load_runs(out)["job"]) == ["data/.hidden/0", "data/.hidden/1"]
    assert runner.load(out)["job"].nunique() == 2


def test_stale_tables_are_rebuilt_the_same(day, tmp_path):
    """Without its tables a sweep loads as with them: same rows, columns and types."""
    for name in ("10-00-00", "11-00-00"):
        stale = stale_copy(day / name, tmp_path / name)
        for load in (runner.load_runs, runner.load, lambda p: runner.load(p, columns=[*COLUMNS, "job", "nope"])):
            fresh, rebuilt = by_run(load(day / name)), by_run(load(stale))
            pd.testing.assert_frame_equal(rebuilt, fresh)


def test_load_runs_reads_no_trace(day, tmp_path, monkeypatch):
    stale = stale_copy(day, tmp_path / "stale")
    read_table = tables.read_table

    def runs_only(path, *args, **kwargs):
        assert Path(path).name not in (TRACE_FILE, TRACES_FILE) and not Path(path).name.endswith(TRACES_FILE), path
        return read_table(path, *args, **kwargs)

    def no_schema(path):
        raise AssertionError(f"read the schema of {path}")

    monkeypatch.setattr(tables, "read_table", runs_only)
    monkeypatch.setattr(tables, "read_schema", no_schema)
    assert len(runner.load_runs(stale)) == 4
    with pytest.raises(AssertionError):
        runner.load(stale)  # the check can fail


def test_load_reads_only_the_columns_asked_for(day, tmp_path, monkeypatch):
    stale = stale_copy(day, tmp_path / "stale")
    read_table, asked = tables.read_table, []

    def recording(path, columns=None, **kwargs):
        if Path(path).name.endswith(TRACE_FILE) or Path(path).name.endswith(TRACES_FILE):
            asked.append(columns)
        return read_table(path, columns=columns, **kwargs)

    monkeypatch.setattr(tables, "read_table", recording)
    df = runner.load(stale, columns=["f", "status"])
    assert list(df.columns) == ["f", "status"] and len(df) == 4 * 21
    sources = [*stale.rglob(TRACE_FILE), *stale.rglob(f"parts/*.{TRACES_FILE}")]
    assert len(asked) == len(sources) >= 3  # each trace file once
    assert all(columns is not None and set(columns) <= {"f", "status"} for columns in asked), asked
