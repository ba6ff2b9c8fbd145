"""Faults: kill -9 at random points, damaged or missing files, two writers at once.

After each fault the sweep is resumed, and then, read by DuckDB (not by the runner):
every job is in ``runs.parquet`` exactly once, each run has ``iterations + 1`` trace rows,
no trace row lacks its run, and the tables hold exactly what the job folders and chunk
files hold. Every fault is counted (``LEDGER``), and the module ends with the line
``faults: N injected, M survived`` (shown with ``pytest -rA`` or ``-s``).

The default run is quick (one killed CLI sweep per launcher, a few seeded kill points);
``RUNNER_FAULT_TRIALS=N`` runs N seeded trials of each randomised fault.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from runner.app import config_dir
from runner.batched import Job, run_jobs
from runner.run import run
from runner.store import LOCK_NOTE, PARTS_DIR, FolderBusy, folder_lock
from runner.tables import write_tables

REPO = Path(__file__).resolve().parent.parent
TRIALS = int(os.environ.get("RUNNER_FAULT_TRIALS", "1"))
LEDGER: Counter = Counter()  # faults injected, and faults after which the invariants held


@pytest.fixture(scope="module", autouse=True)
def fault_count():
    yield
    print(f"\nfaults: {LEDGER['injected']} injected, {LEDGER['survived']} survived")


def trials(n_default: int) -> list[int]:
    return list(range(max(n_default, TRIALS)))


# ----------------------------------------------------------------------------- the invariants


def parquet_rows_by_run(files: list[Path]) -> Counter:
    if not files:
        return Counter()
    query = "SELECT run_id, count(*) FROM read_parquet(?, union_by_name = true) GROUP BY run_id"
    return Counter(dict(duckdb.execute(query, [[str(f) for f in files]]).fetchall()))


def held(sweep_dir: Path) -> tuple[dict, Counter]:
    """What the job folders and chunk files hold: ``{run_id: (job, iterations)}`` and trace rows by run_id."""
    runs = {}
    for path in sweep_dir.rglob("summary.json"):
        summary = json.loads(path.read_text())
        runs[summary["run_id"]] = (path.parent.relative_to(sweep_dir).as_posix(), summary.get("iterations"))
    chunks = sorted((sweep_dir / PARTS_DIR).glob("*.runs.parquet"))
    if chunks:
        query = "SELECT run_id, job, iterations FROM read_parquet(?, union_by_name = true)"
        for run_id, job, iterations in duckdb.execute(query, [[str(f) for f in chunks]]).fetchall():
            assert run_id not in runs, f"run {run_id} held twice"
            runs[run_id] = (job, iterations)
    traces = list(sweep_dir.rglob("trace.parquet")) + sorted((sweep_dir / PARTS_DIR).glob("*.traces.parquet"))
    return runs, parquet_rows_by_run(traces)


def check_sweep(sweep_dir: Path, jobs: set[str] | int) -> None:
    """The invariants, over runs.parquet and traces.parquet and over the files they are built from.

    ``jobs``: the sweep's job names, or their count (where Hydra names the folders).
    """
    runs = duckdb.execute(
        "SELECT run_id, job, iterations FROM read_parquet(?)", [str(sweep_dir / "runs.parquet")]
    ).fetchall()
    names = [job for _, job, _ in runs]
    assert len(names) == len(set(names))  # no job twice
    assert (len(names) if isinstance(jobs, int) else set(names)) == jobs  # every job
    rows = parquet_rows_by_run([sweep_dir / "traces.parquet"])
    assert rows == {run_id: iterations + 1 for run_id, _, iterations in runs}  # whole traces, no orphan rows
    source_runs, source_rows = held(sweep_dir)
    assert source_runs == {run_id: (job, iterations) for run_id, job, iterations in runs}
    assert source_rows == rows


def survived(sweep_dir: Path, jobs: set[str] | int) -> None:
    LEDGER["injected"] += 1
    check_sweep(sweep_dir, jobs)
    LEDGER["survived"] += 1


# ----------------------------------------------------------------------------- sweeps


def cli(*args: str, cwd: Path, single: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "runner", *([] if single else ["-m"]), *args]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return out, err


GRID = ["lr=0.05,0.1", "optimizer=gd,momentum", "max_iter=30", "hydra.callbacks.sweep_end.figures=false"]
GRID_JOBS = 4
LAUNCHERS = {"basic": [], "batched": ["hydra/launcher=batched", "hydra.launcher.chunk_size=1"]}


@pytest.mark.parametrize("trial", trials(1))
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_a_sweep_killed_at_a_random_moment_resumes_whole(tmp_path, launcher, trial):
    sweep_dir = tmp_path / "s"
    args = [*LAUNCHERS[launcher], *GRID, f"hydra.sweep.dir={sweep_dir}"]
    delay = random.Random(f"{launcher}-{trial}").uniform(1.0, 5.0)  # Hydra starts in about 1.5 s here
    proc = cli(*args, cwd=tmp_path)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished(cli(*args, cwd=tmp_path))
    survived(sweep_dir, GRID_JOBS)


def test_two_sweeps_into_one_folder_at_once_run_each_job_once(tmp_path):
    procs = {}
    for launcher, extra in LAUNCHERS.items():  # all four at once
        args = [*extra, *GRID, f"hydra.sweep.dir={tmp_path / launcher}"]
        procs[launcher] = [cli(*args, cwd=tmp_path), cli(*args, cwd=tmp_path)]
    for launcher, (first, second) in procs.items():
        outputs = [finished(first), finished(second)]
        survived(tmp_path / launcher, GRID_JOBS)
        if launcher == "batched":  # one launch ran all; the other waited for it, then found them done
            lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith("batched: ")]
            assert sorted(line.split(" in ")[0] for line in lines) == ["batched: 0 of 4 runs", "batched: 4 of 4 runs"]


def test_single_runs_into_one_folder_at_once_leave_one_whole_run(tmp_path):
    run_dir = tmp_path / "r"
    procs = [cli("max_iter=30", f"hydra.run.dir={run_dir}", cwd=tmp_path, single=True) for _ in range(4)]
    outputs = [finished(p)[0] for p in procs]
    assert sum("skipped: " in out for out in outputs) == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = parquet_rows_by_run([run_dir / "trace.parquet"])
    assert rows == {summary["run_id"]: summary["iterations"] + 1}


# ----------------------------------------------------------------------------- a kill at each write

# Run in a fresh interpreter: run_jobs of the jobs in argv[2] into argv[1], killed (SIGKILL, by
# itself) at its argv[3]-th file rename, before it (argv[4] == "before") or after it.
KILLED_AT_A_WRITE = """
import json, os, signal, sys
from pathlib import Path
from runner.app import config_dir
from runner.batched import Job, run_jobs

sweep_dir, jobs, at, when = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
real, calls = os.replace, [0]

def replace(src, dst):
    calls[0] += 1
    if calls[0] == at and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
    if calls[0] == at and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace
run_jobs([Job(config, name) for name, config in jobs], sweep_dir, chunk_size=2)
"""


@functools.cache
def composed(lr: float, optimizer: str) -> dict:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"lr={lr}", f"optimizer={optimizer}"])
    return OmegaConf.to_container(cfg, resolve=True)


def configs(max_iter: int = 20) -> list[Job]:
    """Six jobs: lr and optimizer vary, each run to ``max_iter``."""
    return [
        Job({**composed(lr, opt), "max_iter": max_iter}, f"lr={lr}/optimizer={opt}")
        for lr in (0.05, 0.1, 0.2)
        for opt in ("gd", "momentum")
    ]


@pytest.mark.parametrize("trial", trials(3))
def test_a_batched_resume_killed_at_any_write_leaves_no_orphan_or_duplicate(tmp_path, trial):
    """A resume that replaces runs (another max_iter for half the jobs: drop_runs, then new chunks), killed
    at a seeded file rename, then resumed again: each job once, its rows whole, no rows of a dropped run."""
    rng = random.Random(3 * trial + 1)  # the first three: before, after and within drop_runs' rewrites
    sweep_dir = tmp_path / "s"
    first = configs(20)
    run_jobs(first, sweep_dir, chunk_size=2)
    # Chunks (gd: jobs 0 2 | 4, momentum: 1 3 | 5): three rewritten by drop_runs, jobs 2 and 3 kept,
    # two renames each, then two new chunks, two renames each: 10 renames.
    replaced = configs(12)
    again = [replaced[i] if i in (0, 1, 4) else job for i, job in enumerate(first)]
    at, when = rng.randint(1, 10), rng.choice(["before", "after"])
    argv = [str(sweep_dir), json.dumps([[job.name, job.config] for job in again]), str(at), when]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_A_WRITE, *argv], env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_jobs(again, sweep_dir, chunk_size=2)
    write_tables(sweep_dir)
    survived(sweep_dir, {job.name for job in again})
    iterations = dict(duckdb.execute(f"SELECT job, iterations FROM '{sweep_dir / 'runs.parquet'}'").fetchall())
    assert iterations == {job.name: job.config["max_iter"] for job in again}  # the replaced runs are the new ones


# ----------------------------------------------------------------------------- damaged and missing files


def mixed_sweep(sweep_dir: Path, jobs: list[Job]) -> tuple[list[Job], list[Job]]:
    """Half the jobs in job folders (as Hydra's launchers run them), half in chunks of two; the tables written."""
    alone, batched = jobs[:3], jobs[3:]
    for job in alone:
        run(job.config, sweep_dir / job.name)
    run_jobs(batched, sweep_dir, chunk_size=2)
    write_tables(sweep_dir)
    return alone, batched


def resume(sweep_dir: Path, alone: list[Job], batched: list[Job]) -> None:
    for job in alone:
        run(job.config, sweep_dir / job.name)
    run_jobs(batched, sweep_dir, chunk_size=2)
    write_tables(sweep_dir)


FILES = {
    "job summary": lambda d: sorted(d.rglob("summary.json"))[1],
    "job trace": lambda d: sorted(d.rglob("trace.parquet"))[1],
    "chunk runs": lambda d: sorted((d / PARTS_DIR).glob("*.runs.parquet"))[0],
    "chunk traces": lambda d: sorted((d / PARTS_DIR).glob("*.traces.parquet"))[0],
    "runs table": lambda d: d / "runs.parquet",
    "traces table": lambda d: d / "traces.parquet",
}


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def as_a_list(path: Path) -> None:
    path.write_text("[1, 2]\n")


DAMAGES = {"truncated": truncate, "deleted": Path.unlink, "a JSON list": as_a_list}
CASES = [(f, d) for f in FILES for d in ("truncated", "deleted")] + [("job summary", "a JSON list")]


@pytest.mark.parametrize("kind, damage", CASES)
def test_a_damaged_or_missing_file_is_read_rerun_and_named(tmp_path, capsys, kind, damage):
    sweep_dir = tmp_path / "s"
    jobs = configs()
    alone, batched = mixed_sweep(sweep_dir, jobs)
    path = FILES[kind](sweep_dir)
    DAMAGES[damage](path)
    capsys.readouterr()
    resume(sweep_dir, alone, batched)
    err = capsys.readouterr().err
    survived(sweep_dir, {job.name for job in jobs})
    named = path.relative_to(sweep_dir).as_posix()
    if kind.endswith("table") or (kind == "job summary" and damage == "deleted"):
        assert "rerun: " not in err  # rebuilt from the runs / a run never finished: nothing to say
    elif kind == "chunk runs" and damage == "deleted":  # its traces are left without runs
        assert f"rerun: {named.replace('.runs.', '.traces.')} holds no runs" in err
    else:
        line = next(line for line in err.splitlines() if line.startswith("rerun: "))
        assert named in line and any(word in line for word in DAMAGE_WORDS[damage]), line


DAMAGE_WORDS = {
    "truncated": ["is not readable (", "has "],
    "deleted": ["is missing"],
    "a JSON list": ["is not a run's summary (a JSON list)"],
}


def test_a_resume_never_trusts_a_trace_of_the_wrong_length(tmp_path, capsys):
    import pyarrow.parquet as pq

    sweep_dir = tmp_path / "s"
    (job,) = configs()[:1]
    run(job.config, sweep_dir)
    trace = sweep_dir / "trace.parquet"
    pq.write_table(pq.read_table(trace).slice(0, 5), trace)
    capsys.readouterr()
    assert not run(job.config, sweep_dir).get("skipped")
    assert "trace.parquet has 5 rows, expected 21" in capsys.readouterr().err


def test_the_tables_skip_a_file_that_does_not_read(tmp_path, capsys):
    sweep_dir = tmp_path / "s"
    mixed_sweep(sweep_dir, configs())
    truncate(sorted(sweep_dir.rglob("trace.parquet"))[0])
    truncate(sorted((sweep_dir / PARTS_DIR).glob("*.runs.parquet"))[0])
    as_a_list(sorted(sweep_dir.rglob("summary.json"))[1])
    capsys.readouterr()
    runs = write_tables(sweep_dir)
    err = capsys.readouterr().err
    assert err.count("tables: skipped ") == 3, err
    assert runs.num_rows == 6 - 1 - 2  # the list summary's run and the two runs of the unreadable chunk
    traced = parquet_rows_by_run([sweep_dir / "traces.parquet"])
    assert set(traced) < set(runs["run_id"].to_pylist())  # no row without its run; the truncated trace's run has none


# ----------------------------------------------------------------------------- the lock

HOLD = """
import os, signal, sys, time
from runner.store import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
"""


def holder(folder: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), mode], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n" or mode == "die"
    return proc


def test_a_second_writer_is_told_who_holds_the_folder(tmp_path):
    proc = holder(tmp_path, "hold")
    try:
        with pytest.raises(FolderBusy) as busy, folder_lock(tmp_path, timeout=0):
            pass
        note = json.loads((tmp_path / LOCK_NOTE).read_text())
        assert str(busy.value) == f"another sweep is writing to {tmp_path} (pid {proc.pid}, since {note['since']})"
        said = []
        start = time.perf_counter()
        with pytest.raises(FolderBusy), folder_lock(tmp_path, "run", timeout=0.3, say=said.append):
            pass
        assert time.perf_counter() - start >= 0.3  # it waited
        assert said == [f"another run is writing to {tmp_path} (pid {proc.pid}, since {note['since']}); waiting"]
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_writers_lock_is_taken_over_and_its_note_not_trusted(tmp_path):
    proc = holder(tmp_path, "die")
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / LOCK_NOTE).read_text())["pid"] == proc.pid  # the dead writer's note is left
    with folder_lock(tmp_path, timeout=0):  # taken at once: the OS released the killed writer's lock
        assert json.loads((tmp_path / LOCK_NOTE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NOTE).exists()


def test_a_note_left_by_a_dead_writer_is_not_named(tmp_path):
    dead = holder(tmp_path / "dead", "die")
    dead.wait()
    proc = holder(tmp_path, "hold")
    try:  # the live holder's note replaced by one of a process that is gone
        (tmp_path / LOCK_NOTE).write_text(json.dumps({"pid": dead.pid, "since": "2026-01-01T00:00:00Z"}))
        with pytest.raises(FolderBusy) as busy, folder_lock(tmp_path, timeout=0):
            pass
        assert str(busy.value) == f"another sweep is writing to {tmp_path} (holder unknown)"
    finally:
        proc.kill()
        proc.wait()
