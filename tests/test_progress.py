"""Progress and logs: a bar on a terminal, one line per event elsewhere, nothing when turned off; runner.log.

The counts are checked against the sweep's own tables read with pandas, the iterations against
the trace rows, and the terminal is a real pseudo-terminal (``os.openpty``).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from runner import progress
from tests.helpers import REPO, run_module

WARNING_OBJECTIVE = """
import warnings

from objectives import shifted_quadratic


def noisy(a=2.0, b=-3.0, x0=None):
    warnings.warn("the data are noisy (a test warning)", UserWarning, stacklevel=2)
    return shifted_quadratic(a=a, b=b, x0=x0)
"""


def cli(*args: str, cwd: Path, path=()) -> subprocess.CompletedProcess:
    return run_module("runner", *args, cwd=cwd, path=path)


def event_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("sweep: ")]


def jobs_done(line: str) -> tuple[int, int]:
    done, total = re.match(r"sweep: (\d+)/(\d+) jobs", line).groups()
    return int(done), int(total)


def counts_in(line: str) -> dict:
    inside = re.search(r"jobs \(([^)]*)\)", line).group(1)
    return {status: int(n) for n, status in (part.split(" ") for part in inside.split(", "))}


def runs_table(sweep_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(sweep_dir / "runs.parquet")


# ----------------------------------------------------------------------------- the setting


class Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("show", "tty", "expected"),
    [
        ("auto", True, "bar"),
        ("auto", False, "lines"),
        ("true", False, "bar"),
        ("false", True, None),
        (True, False, "bar"),  # hydra.callbacks.progress.show=true on the command line is a YAML bool
        (False, True, None),
    ],
)
def test_the_setting_picks_a_bar_lines_or_nothing(show, tty, expected, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress.display(show, Stream(tty)) == expected


def test_tqdm_disable_turns_progress_off(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress.display("auto", Stream(True)) is None
    assert progress.display("true", Stream(False)) is None


def test_a_bad_setting_is_one_line_naming_the_key(tmp_path):
    result = cli("hydra.callbacks.progress.show=sometimes", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: hydra.callbacks.progress.show=sometimes: expected auto, true or false"


# ----------------------------------------------------------------------------- a run's bar


def read_all(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other end closed
            return
        if not chunk:
            return
        into.append(chunk)


def test_a_run_bar_on_a_terminal_counts_to_max_iter(monkeypatch):
    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    master, slave = os.openpty()  # a terminal nobody sized: 0 columns and rows, the bar still shows
    out: list[bytes] = []
    reader = threading.Thread(target=read_all, args=(master, out))
    reader.start()
    with os.fdopen(slave, "w", encoding="utf-8", closefd=True) as stream:
        assert progress.display("auto", stream) == "bar"
        bar = progress.RunBar(200, stream=stream)
        for k in (50, 100, 150):
            time.sleep(0.15)  # tqdm redraws at most every 0.1 s
            bar(k, 1.0 / k)
        bar.close()
    reader.join(5)
    os.close(master)
    text = b"".join(out).decode()
    assert "\r" in text
    draws = [part for part in text.split("\r") if "iteration" in part]
    assert any("150/200" in d and "f = 0.00666667" in d and "it/s" in d for d in draws), text
    assert text.split("\r")[-1].strip() == ""  # cleared, for the run's end line


def run_in_terminal(args: list[str], cwd: Path, env: dict | None = None) -> tuple[str, str, int]:
    """``python -m runner args`` with stderr on a pseudo-terminal: (stdout, what the terminal got, exit code)."""
    master, slave = os.openpty()
    full_env = {**os.environ, "PYTHONPATH": str(REPO)}
    full_env.pop("TQDM_DISABLE", None)
    full_env.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=slave, text=True
    )
    os.close(slave)
    out: list[bytes] = []
    reader = threading.Thread(target=read_all, args=(master, out))
    reader.start()
    stdout, _ = process.communicate(timeout=300)
    reader.join(10)
    os.close(master)
    return stdout, b"".join(out).decode(errors="replace"), process.returncode


# Long enough to pass SHOW_AFTER_S on a fast, quiet machine too (Adam on sin_cos: 30-80 us an iteration here).
LONG_ITERATIONS = 100_000
LONG_RUN = ["objective=sin_cos", "optimizer=adam", f"max_iter={LONG_ITERATIONS}", "tol=0", "trace.every=100"]


def test_a_long_run_shows_a_bar_on_a_terminal_and_clears_it(tmp_path):
    stdout, terminal, code = run_in_terminal([*LONG_RUN, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert code == 0, terminal
    draws = [part for part in terminal.split("\r") if part.startswith("iteration:")]
    assert draws, terminal
    assert all(re.search(rf"\d+/{LONG_ITERATIONS} \[", d) and "f = " in d and "it/s" in d for d in draws), draws
    assert stdout.startswith("max_iter: f = ")  # the end line, on stdout as before


@pytest.mark.parametrize("off", [["hydra.callbacks.progress.show=false"], []])
def test_progress_turned_off_shows_no_bar(tmp_path, off):
    env = None if off else {"TQDM_DISABLE": "1"}
    stdout, terminal, code = run_in_terminal([*LONG_RUN, *off, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env)
    assert code == 0, terminal
    assert "iteration" not in terminal and "\r" not in terminal.replace("\r\n", "\n")
    assert stdout.startswith("max_iter: f = ")


# ----------------------------------------------------------------------------- lines, when not a terminal


def write_summary(folder: Path, status: str) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"status": status}))


def test_lines_one_per_job_with_counts_and_the_sweep_log(tmp_path):
    stream = Stream(False)
    sweep = progress.SweepProgress(tmp_path, 3, "auto", stream=stream)
    for name, status in [("lr=0.1", "converged"), ("lr=1", "diverged"), ("lr=0.01", "converged")]:
        write_summary(tmp_path / name, status)
        sweep.job_ended(tmp_path / name)
    sweep.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [jobs_done(line) for line in lines] == [(1, 3), (2, 3), (3, 3)]
    assert counts_in(lines[-1]) == {"converged": 2, "diverged": 1}
    assert lines[1].endswith("lr=1: diverged") and "left" in lines[1] and "left" not in lines[2]
    log = (tmp_path / "sweep.log").read_text().splitlines()
    assert [line.partition("] ")[2] for line in log[1:4]] == lines


def test_jobs_in_other_processes_are_found_by_their_summaries(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "WATCH_EVERY_S", 0.05)
    write_summary(tmp_path / "earlier", "converged")  # an earlier launch's job: not this sweep's
    stream = Stream(False)
    sweep = progress.SweepProgress(tmp_path, 2, "auto", stream=stream)
    write_summary(tmp_path / "a", "max_iter")
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jobs_done(stream.getvalue().splitlines()[0]) == (1, 2)
    write_summary(tmp_path / "b", "converged")
    sweep.close()  # counts what the watcher has not seen yet
    lines = stream.getvalue().splitlines()
    assert [jobs_done(line) for line in lines] == [(1, 2), (2, 2)]
    assert counts_in(lines[-1]) == {"converged": 1, "max_iter": 1}


def check_sweep_lines(result: subprocess.CompletedProcess, sweep_dir: Path, total: int) -> list[str]:
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    lines = event_lines(result.stderr)
    done = [jobs_done(line) for line in lines]
    assert done[-1] == (total, total) and all(t == total for _, t in done)
    assert [d for d, _ in done] == sorted(d for d, _ in done)
    statuses = runs_table(sweep_dir)["status"].value_counts().to_dict()
    assert counts_in(lines[-1]) == statuses
    return lines


def check_job_logs(result: subprocess.CompletedProcess, sweep_dir: Path) -> None:
    """Every job folder's runner.log: its overrides (as Hydra saved them), its end line as printed, the wall time."""
    runs = runs_table(sweep_dir)
    folders = [sweep_dir / job for job in runs["job"] if (sweep_dir / job / "summary.json").is_file()]
    assert folders
    for folder in folders:
        log = (folder / "runner.log").read_text()
        overrides = re.search(r"overrides: (.*)", log).group(1).split(" ")
        saved = (folder / ".hydra" / "overrides.yaml").read_text().splitlines()
        assert sorted(overrides) == sorted(line[2:].strip() for line in saved if line.startswith("- "))
        printed = [line for line in result.stdout.splitlines() if line.endswith(f"  ({folder})")]
        assert len(printed) == 1 and f" - {printed[0]}\n" in log
        assert re.search(r"wall time: \d+\.\d{3} s", log)


def noisy_objective(tmp_path: Path) -> list[str]:
    """An objective whose factory warns, from the user's own module and config folder: the arguments naming it."""
    (tmp_path / "warny.py").write_text(WARNING_OBJECTIVE)
    (tmp_path / "conf" / "objective").mkdir(parents=True)
    (tmp_path / "conf" / "objective" / "noisy.yaml").write_text("_target_: warny.noisy\na: 2.0\nb: -3.0\nx0: null\n")
    return ["--config-dir", str(tmp_path / "conf"), "objective=noisy"]


def test_a_basic_sweep_counts_every_job_by_status(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = cli(
        "-m", *noisy_objective(tmp_path), "optimizer=gd,momentum", "lr=0.01,30", "max_iter=200",
        f"hydra.sweep.dir={sweep_dir}", "hydra.callbacks.sweep_end.figures=false", cwd=tmp_path, path=[tmp_path],
    )  # fmt: skip
    lines = check_sweep_lines(result, sweep_dir, 4)
    assert len(lines) == 4  # one per job
    check_job_logs(result, sweep_dir)
    for log in sweep_dir.rglob("runner.log"):  # each job its own warning, though they share a process
        assert "[py.warnings][WARNING]" in log.read_text() and "the data are noisy" in log.read_text()
    assert len((sweep_dir / "sweep.log").read_text().splitlines()) == 6  # start, 4 jobs, end


def test_a_joblib_sweep_counts_jobs_that_end_in_other_processes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep_dir = tmp_path / "sweep"
    result = cli(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "lr=0.001,0.01,0.1", "max_iter=300",
        f"hydra.sweep.dir={sweep_dir}", "hydra.callbacks.sweep_end.figures=false", cwd=tmp_path,
    )  # fmt: skip
    lines = check_sweep_lines(result, sweep_dir, 3)
    assert len(lines) == 3
    check_job_logs(result, sweep_dir)


def test_a_batched_sweep_counts_chunks_iterations_and_the_jobs_run_alone(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = cli(
        "-m", "hydra/launcher=batched", "hydra.launcher.chunk_size=2", "optimizer=gd,scipy", "seed=0,1,2",
        "max_iter=50", f"hydra.sweep.dir={sweep_dir}", "hydra.callbacks.sweep_end.figures=false", cwd=tmp_path,
    )  # fmt: skip
    lines = check_sweep_lines(result, sweep_dir, 6)
    chunks = [line for line in lines if "chunk" in line]
    assert [re.search(r"chunk (\d+/\d+)", line).group(1) for line in chunks] == ["1/2", "2/2"]
    runs = runs_table(sweep_dir)
    batched = runs[runs["optimizer"] == "gd"]
    iterations = int(re.search(r"([\d,]+)/([\d,]+) it", chunks[-1]).group(1).replace(",", ""))
    budget = int(re.search(r"([\d,]+)/([\d,]+) it", chunks[-1]).group(2).replace(",", ""))
    assert iterations == batched["iterations"].sum() and budget == 3 * 50
    assert len(lines) == 2 + 3  # two chunks, then the three scipy jobs one by one
    log = (sweep_dir / "sweep.log").read_text()
    assert all(line in log for line in lines)
    check_job_logs(result, sweep_dir)  # the scipy jobs' folders


def test_progress_off_writes_no_lines_but_the_sweep_log(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = cli(
        "-m", "lr=0.01,0.1", "max_iter=20", "hydra.callbacks.progress.show=false",
        f"hydra.sweep.dir={sweep_dir}", "hydra.callbacks.sweep_end.figures=false", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert event_lines(result.stderr) == []
    assert "sweep: 2/2 jobs" in (sweep_dir / "sweep.log").read_text()


# ----------------------------------------------------------------------------- runner.log


def test_runner_log_of_a_run_holds_overrides_end_line_wall_time_and_warnings(tmp_path):
    run_dir = tmp_path / "run"
    args = [*noisy_objective(tmp_path), "max_iter=5000", f"hydra.run.dir={run_dir}"]
    result = cli(*args, cwd=tmp_path, path=[tmp_path])
    assert result.returncode == 0, result.stderr
    end_line = result.stdout.strip()
    log = (run_dir / "runner.log").read_text()
    lines = log.splitlines()
    assert lines[0].endswith("[runner][INFO] - overrides: objective=noisy max_iter=5000")  # the task's, not Hydra's
    assert f"[runner][INFO] - {end_line}" in log and "converged (tol)" in end_line
    wall = float(re.search(r"wall time: (\d+\.\d+) s \(the run itself (\d+\.\d+) s\)", log).group(1))
    assert wall >= json.loads((run_dir / "summary.json").read_text())["wall_time_s"]
    assert "[py.warnings][WARNING]" in log and "the data are noisy (a test warning)" in log
    # The terminal as before: the warning once, on stderr; the end line once, on stdout; no log lines.
    assert result.stderr.count("the data are noisy") == 1 and "the data are noisy" not in result.stdout
    assert result.stdout.count(end_line) == 1 and "[runner]" not in result.stdout + result.stderr


def test_runner_log_of_a_failed_run_has_its_error_line(tmp_path):
    run_dir = tmp_path / "run"
    result = cli("objective=shifted_quadratic", "+objective.wrong=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    log = (run_dir / "runner.log").read_text()
    assert f"[runner][ERROR] - {result.stderr.strip()}" in log


def test_a_bar_starts_no_thread():
    """tqdm's monitor thread, left running, would keep a sweep's figures from being drawn on two cores."""
    import io
    import threading

    from runner.progress import RunBar

    before = threading.active_count()
    bar = RunBar(100, stream=io.StringIO())
    assert threading.active_count() == before
    bar.bar.close()


def test_a_sweep_counted_here_stops_its_watcher_at_once(tmp_path):
    """The batched launcher counts its chunks itself: the watcher of job folders ends before the chunks start,
    so that the process runs one thread again (engine=fork forks only then), and the count is still right."""
    stream = io.StringIO()
    sweep = progress.SweepProgress(tmp_path, 2, "auto", stream=stream)
    assert sweep._watcher.is_alive()
    threads = threading.active_count()
    started = time.monotonic()
    sweep.counted_here()
    assert not sweep._watcher.is_alive() and time.monotonic() - started < progress.WATCH_EVERY_S / 2
    assert threading.active_count() == threads - 1
    sweep.chunk_ended(["converged", "max_iter"], 200, 1, 1, 200)
    sweep.close()
    assert counts_in(stream.getvalue().splitlines()[-1]) == {"converged": 1, "max_iter": 1}
