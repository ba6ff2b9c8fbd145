"""The batched launcher's engines (``hydra.launcher.engine``): the same tables as one process, per-chunk
failure, interruption and resume, and settings refused in one line before any work.

Each sweep runs from the command line, as a user runs it: a grid of 300 configs in chunks of 50
(6 chunks, 2 objectives), read back with polars, a reader the project did not write, and compared
bit for bit with the same grid run by ``engine=local`` (timing and run ids aside).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from runner.store import FolderBusy, folder_lock
from tests.helpers import REPO

# Columns that differ between two runs of the same config: when, how long, which run.
TIMING = {"time_s", "wall_time_s", "started_at", "run_id"}
LRS = "0.5,1,2,4,8,16"  # 16 diverges for momentum below 0.78 (stable for lr < 9 (1 + momentum))
MOMENTA = ",".join(str(round(0.04 * i, 2)) for i in range(25))
N_CONFIGS = 2 * 6 * 25
# Each objective's 150 configs in chunks of at most 50: 3 for one process (and submitit, which runs each
# chunk as a job of its own), 4 of 37 or 38 for an engine that runs 2 at once (an even cut in a multiple of 2).
N_CHUNKS = {"local": 6, "fork": 8, "joblib": 8, "submitit": 6, "ray": 8}
SUBMITIT = ["hydra.launcher.submitit.cluster=local", "hydra.launcher.submitit.poll_s=0.2"]
ENGINES = [
    pytest.param("fork", ["hydra.launcher.n_jobs=2"], id="fork"),
    pytest.param("joblib", ["hydra.launcher.n_jobs=2"], id="joblib"),
    pytest.param("submitit", SUBMITIT, id="submitit"),
    pytest.param(
        "ray",
        ["+hydra.launcher.ray.init.num_cpus=2"],
        id="ray",
        marks=[pytest.mark.ray, pytest.mark.skipif(find_spec("ray") is None, reason="needs the ray extra")],
    ),
]


@pytest.fixture(scope="module")
def poison(tmp_path_factory) -> Path:
    """Where the grid's objective looks for its poison file: one path for every sweep of the module,
    as it is part of the jobs' configs."""
    return tmp_path_factory.mktemp("poison") / "kill"


@pytest.fixture(scope="module")
def grid(tmp_path_factory, poison) -> list[str]:
    """The grid, its objective an option of a config folder of its own (so that Hydra composes the
    jobs fast: ``+key`` overrides would compose each job in full)."""
    conf = tmp_path_factory.mktemp("conf")
    (conf / "objective").mkdir()
    (conf / "objective" / "fragile.yaml").write_text(
        f"_target_: tests.fragile.fragile_quadratic\na: 2.0\nb: -3.0\nx0: null\npoison: {poison}\n"
    )
    return [
        f"--config-dir={conf}",
        "hydra/launcher=batched",
        "objective=fragile",
        "objective.a=2,3",
        "optimizer=momentum",
        f"lr={LRS}",
        f"optimizer.momentum={MOMENTA}",
        "max_iter=200",
        "tol=1e-10",
        "hydra.launcher.chunk_size=50",
        "hydra.callbacks.sweep_end.figures=false",
    ]


def command(*args: str) -> list[str]:
    config_dir = [a for a in args if a.startswith("--config-dir")]  # Hydra's flags before the overrides
    return [sys.executable, "-m", "runner", *config_dir, "-m", *[a for a in args if a not in config_dir]]


def environment(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def sweep(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command(*args), cwd=cwd, env=environment(**env), capture_output=True, text=True, timeout=600, check=False
    )
    return done


@pytest.fixture(scope="module")
def reference(tmp_path_factory, grid) -> Path:
    """The grid run by one process, ``engine=local``."""
    sweep_dir = tmp_path_factory.mktemp("local") / "sweep"
    done = sweep(*grid, "hydra.launcher.engine=local", f"hydra.sweep.dir={sweep_dir}", cwd=sweep_dir.parent)
    assert done.returncode == 0, done.stderr
    assert f"batched: {N_CONFIGS} of {N_CONFIGS} runs" in done.stdout
    assert len(parts(sweep_dir)) == N_CHUNKS["local"]
    return sweep_dir


def tables(sweep_dir: Path, *, sort: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``runs.parquet`` and ``traces.parquet`` as polars reads them, timing and run ids aside
    (``sort``: by job, then iteration, for sweeps whose launches wrote them in another order)."""
    runs = pl.read_parquet(sweep_dir / "runs.parquet")
    traces = pl.read_parquet(sweep_dir / "traces.parquet")
    runs, traces = (t.drop([c for c in t.columns if c in TIMING]) for t in (runs, traces))
    if sort:
        runs, traces = runs.sort("job"), traces.sort(["job", "iteration"])
    return runs, traces


def assert_bitwise_equal(a: pl.DataFrame, b: pl.DataFrame) -> None:
    """Same columns, types and rows; every float the same 64 bits (NaN and -0.0 included)."""
    assert a.columns == b.columns and a.dtypes == b.dtypes and a.height == b.height
    for name in a.columns:
        x, y = a[name], b[name]
        if x.dtype == pl.Float64:
            assert np.array_equal(x.to_numpy().view(np.uint64), y.to_numpy().view(np.uint64)), name
        else:
            assert x.equals(y), name


def assert_same_tables(sweep_dir: Path, reference: Path, *, sort: bool = False) -> None:
    for got, expected in zip(tables(sweep_dir, sort=sort), tables(reference, sort=sort), strict=True):
        assert_bitwise_equal(got, expected)


def parts(sweep_dir: Path) -> list[Path]:
    return sorted((sweep_dir / "parts").glob("*.runs.parquet"))


@pytest.mark.parametrize("engine, options", ENGINES)
def test_an_engine_writes_the_tables_of_one_process(tmp_path, grid, reference, engine, options):
    sweep_dir = tmp_path / "sweep"
    args = [*grid, f"hydra.launcher.engine={engine}", *options, f"hydra.sweep.dir={sweep_dir}"]
    done = sweep(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"batched: {N_CONFIGS} of {N_CONFIGS} runs" in done.stdout
    assert len(parts(sweep_dir)) == N_CHUNKS[engine]  # each chunk its own files, written where it ran
    assert not list(sweep_dir.rglob("summary.json"))  # nothing fell back to a job folder
    # The same rows in the same order (chunk files in name order), whatever the cut: 8 chunks or 6.
    assert_same_tables(sweep_dir, reference)


@pytest.mark.parametrize("engine, options", ENGINES)
def test_a_dying_worker_fails_its_chunk_alone_and_resume_reruns_it(tmp_path, grid, poison, reference, engine, options):
    sweep_dir = tmp_path / "sweep"
    args = [*grid, f"hydra.launcher.engine={engine}", *options, f"hydra.sweep.dir={sweep_dir}"]
    poisoned = Path(f"{poison}.3")
    poisoned.touch()  # the worker of every chunk of objective.a=3 dies
    try:
        done = sweep(*args, cwd=tmp_path)
    finally:
        poisoned.unlink()
    assert done.returncode == 1, done.stderr  # the sweep says it has failed runs
    failed_lines = [line for line in done.stderr.splitlines() if line.startswith("failed: chunk ")]
    assert len(failed_lines) == N_CHUNKS[engine] // 2, done.stderr
    counts = [re.fullmatch(r".*: its (\d+) runs run again on resume", line) for line in failed_lines]
    assert all(counts) and sum(int(c[1]) for c in counts) == N_CONFIGS // 2
    assert f"sweep: {N_CONFIGS} runs:" in done.stdout and f"{N_CONFIGS // 2} failed" in done.stdout
    runs = pl.read_parquet(sweep_dir / "runs.parquet")
    assert len(parts(sweep_dir)) == N_CHUNKS[engine] // 2  # the other objective's chunks landed
    a3 = runs.filter(pl.col("objective.a") == 3.0)
    assert a3.height == N_CONFIGS // 2 and (a3["status"] == "failed").all()
    assert a3["error"].str.starts_with("chunk jobs000000-").all()
    assert (runs.filter(pl.col("objective.a") == 2.0)["status"] != "failed").all()

    done = sweep(*args, cwd=tmp_path)  # the poison gone: resume runs the failed chunks' runs only
    assert done.returncode == 0, done.stderr
    half = N_CONFIGS // 2
    assert f"batched: {half} of {N_CONFIGS} runs" in done.stdout and f"{half} done already (skipped)" in done.stdout
    assert not list(sweep_dir.rglob("summary.json"))  # the failed records were replaced by the chunks' runs
    assert_same_tables(sweep_dir, reference, sort=True)


def test_an_interrupted_sweep_keeps_the_chunks_that_landed_and_resumes(tmp_path, grid, reference):
    sweep_dir = tmp_path / "sweep"
    args = [*grid, "hydra.launcher.engine=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}"]
    # 200 iterations at 5 ms each: about a second a chunk, so that Ctrl-C comes with chunks still to run.
    env = environment(RUNNER_TEST_DELAY_S="0.005")
    proc = subprocess.Popen(command(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not parts(sweep_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # the launcher's process only, as a kill -INT would
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    assert "interrupted: the runs so far are in" in stderr.decode()
    landed = parts(sweep_dir)
    assert 1 <= len(landed) < N_CHUNKS["joblib"]
    kept = pl.concat([pl.read_parquet(p) for p in landed])
    assert (kept["status"] != "interrupted").all()  # the chunks that landed ran to their end; the others are gone

    done = sweep(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{kept.height} done already (skipped)" in done.stdout
    runs = pl.read_parquet(sweep_dir / "runs.parquet")
    assert runs.filter(pl.col("job").is_in(kept["job"].implode()))["run_id"].sort().equals(kept["run_id"].sort())
    assert_same_tables(sweep_dir, reference, sort=True)


def test_ctrl_c_stops_forked_copies_once_and_they_write_their_chunks(tmp_path, grid, reference):
    """Ctrl-C on a terminal reaches the whole process group: the copies ignore it and are interrupted once, by
    the launcher, so each writes its chunk with its running configs ``interrupted`` (as one process does), no
    copy outlives the launcher, and a resume runs the rest to the tables of one process."""
    sweep_dir = tmp_path / "sweep"
    args = [*grid, "hydra.launcher.engine=fork", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}"]
    env = environment(RUNNER_TEST_DELAY_S="0.005")  # about a second a chunk
    proc = subprocess.Popen(
        command(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not parts(sweep_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the next two chunks are under way
    # A copy that ended released nothing: the launcher still holds the folder.
    with pytest.raises(FolderBusy), folder_lock(sweep_dir, timeout=0):
        pass
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    assert "interrupted: the runs so far are in" in stderr.decode() and "Traceback" not in stderr.decode()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no copy left running in the group
    landed = parts(sweep_dir)
    assert 2 <= len(landed) < N_CHUNKS["fork"]
    kept = pl.concat([pl.read_parquet(p) for p in landed])
    assert (kept["status"] == "interrupted").any()  # the chunks under way were written, interrupted, not lost
    assert not list(sweep_dir.glob("parts/*.tmp"))

    done = sweep(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    finished = kept.filter(pl.col("status") != "interrupted")
    assert f"{finished.height} done already (skipped)" in done.stdout
    assert_same_tables(sweep_dir, reference, sort=True)


def test_the_fork_engine_sends_back_results_errors_and_deaths():
    """Each chunk runs in a copy of its own and sends back what it returned or raised; a copy that dies
    fails its chunk alone, saying how it ended. With another thread running, nothing is forked."""
    from hydra_plugins.runner_batched_launcher import _engines
    from hydra_plugins.runner_batched_launcher.config import BatchedLauncherConf

    def work(chunk):
        if chunk == "raise":
            raise ValueError("bad chunk")
        if chunk == "die":
            os._exit(3)
        return chunk, os.getpid()

    settings = BatchedLauncherConf(engine="fork", n_jobs=2)
    ended = dict(_engines.forked_processes(work, ["a", "raise", "die", "b"], settings))
    assert sorted(ended) == [0, 1, 2, 3]
    assert ended[0][0] == "a" and ended[3][0] == "b" and os.getpid() not in (ended[0][1], ended[3][1])
    assert isinstance(ended[1], ValueError) and str(ended[1]) == "bad chunk"
    assert isinstance(ended[2], ChildProcessError) and "exit code 3" in str(ended[2])

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        here = dict(_engines.forked_processes(work, ["a", "b"], settings))
    finally:
        stop.set()
        other.join()
    assert here == {0: ("a", os.getpid()), 1: ("b", os.getpid())}


def _stop_chunk(chunk):
    """A chunk that takes a second, and ends early (but returns) when its copy is interrupted."""
    try:
        time.sleep(1.0)
    except KeyboardInterrupt:
        return chunk, "stopped"
    return chunk, "ran"


def test_after_ctrl_c_the_fork_engine_starts_no_chunk_and_ends():
    """Ctrl-C while two copies run: each is interrupted once and sends what it returned, the chunks not yet
    started never start, and the engine then raises KeyboardInterrupt (it does not wait for them)."""
    from hydra_plugins.runner_batched_launcher import _engines
    from hydra_plugins.runner_batched_launcher.config import BatchedLauncherConf

    def ctrl_c(signum, frame):
        signal.signal(signal.SIGALRM, hung)
        signal.setitimer(signal.ITIMER_REAL, 20.0)
        raise KeyboardInterrupt

    def hung(signum, frame):
        raise TimeoutError("the engine went on waiting after Ctrl-C")

    previous = signal.signal(signal.SIGALRM, ctrl_c)
    ended = []
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            for k, done in _engines.forked_processes(_stop_chunk, ["a", "b", "c", "d"], BatchedLauncherConf(n_jobs=2)):
                ended.append((k, done))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert sorted(ended) == [(0, ("a", "stopped")), (1, ("b", "stopped"))]


def test_the_fork_engine_needs_a_fork(monkeypatch):
    from hydra_plugins.runner_batched_launcher.batched_launcher import BatchedLauncher

    monkeypatch.delattr(os, "fork")
    with pytest.raises(ValueError) as err:
        BatchedLauncher(engine="fork")
    assert str(err.value).startswith("hydra.launcher.engine=fork: needs os.fork")


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("hydra.launcher.engine=dask", "expected one of local, fork, joblib, ray, submitit"),
        ("hydra.launcher.n_jobs=0", "expected a non-zero integer (-1: every core)"),
        ("hydra.launcher.submitit.cluster=pbs", "expected one of local, slurm"),
        ("hydra.launcher.submitit.timeout_min=0", "expected an integer >= 1"),
    ],
)
def test_a_bad_engine_setting_is_one_line_before_any_work(tmp_path, setting, expected):
    done = sweep("hydra/launcher=batched", setting, "lr=0.1,0.2", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"error: {setting}: {expected}"
    assert not (tmp_path / "s").exists()


def test_an_engine_whose_library_is_missing_names_the_extra(monkeypatch):
    from hydra_plugins.runner_batched_launcher import _engines
    from hydra_plugins.runner_batched_launcher.batched_launcher import BatchedLauncher

    monkeypatch.setattr(_engines, "find_spec", lambda name: None if name == "ray" else object())
    with pytest.raises(ValueError) as err:
        BatchedLauncher(engine="ray")
    assert str(err.value) == (
        "hydra.launcher.engine=ray: needs the ray package; install the project's ray extra "
        "(pip install 'optim-runner[ray]')"
    )
    BatchedLauncher(engine="joblib")  # found: no error
