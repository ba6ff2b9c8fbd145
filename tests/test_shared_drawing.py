"""Figures drawn on two cores (``runner.figures._shared``): every result whatever the forked copy does,
the same files as drawn in one process, and Ctrl-C that leaves neither a process nor a half-written file."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.figures import _shared
from runner.store import WriteError, WriteInterrupted
from tests.helpers import REPO

needs_fork = pytest.mark.skipif(not _shared.can_fork(), reason="needs os.fork, two cores and one thread")


def no_children_left() -> bool:
    """Whether this process has no child, running or unreaped (the forked copy was waited for)."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@needs_fork
def test_every_key_gets_its_result_and_both_processes_work():
    def work(k):
        time.sleep(0.05)  # long enough that the copy takes keys too
        return k * k, os.getpid()

    results = _shared.shared(list(range(10)), work)
    assert {k: v for k, (v, _) in results.items()} == {k: k * k for k in range(10)}
    workers = {pid for _, pid in results.values()}
    assert os.getpid() in workers and len(workers) == 2  # the other one was the forked copy
    assert no_children_left()


@needs_fork
def test_the_keys_of_a_copy_that_dies_are_worked_here():
    parent = os.getpid()

    def work(k):
        if os.getpid() != parent:
            os._exit(9)  # the copy dies on the first key it takes
        time.sleep(0.05)
        return k.upper(), os.getpid()

    results = _shared.shared(list("abcdef"), work)
    assert {k: v for k, (v, _) in results.items()} == {k: k.upper() for k in "abcdef"}
    assert {pid for _, pid in results.values()} == {parent}
    assert no_children_left()


@needs_fork
@pytest.mark.parametrize("raises_in", ["either", "copy"])
def test_an_error_raised_by_work_is_raised_here(raises_in):
    parent = os.getpid()

    def work(k):
        time.sleep(0.02)
        if k == 3 and (raises_in == "either" or os.getpid() != parent):
            raise ValueError(f"bad key {k}")
        return k

    with pytest.raises(ValueError, match="bad key 3") if raises_in == "either" else _maybe_raised():
        _shared.shared(list(range(8)), work)
    assert no_children_left()


class _maybe_raised:
    """Key 3 fails only in the copy: raised here when the copy took it, worked here without error otherwise."""

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        assert kind is None or (kind is ValueError and str(err) == "bad key 3")
        return True


@needs_fork
def test_a_write_error_in_the_copy_is_raised_here_as_it_was_raised():
    from runner.store import WriteError

    parent = os.getpid()

    def work(k):
        if os.getpid() != parent:
            raise WriteError(Path("figures/paths.png"), OSError(28, "No space left on device"))
        time.sleep(0.05)  # the copy takes keys meanwhile
        return k

    with pytest.raises(WriteError, match=re.escape("figures/paths.png could not be written (No space left on device)")):
        _shared.shared(list(range(6)), work)
    assert no_children_left()


def test_no_copy_is_forked_while_another_thread_runs():
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not _shared.can_fork()  # a lock it held at the fork would stay held in the copy
    finally:
        stop.set()
        other.join()


def test_without_a_fork_every_key_is_worked_here_in_order(monkeypatch):
    monkeypatch.setattr(_shared, "can_fork", lambda: False)
    order = []
    results = _shared.shared(["x", "y", "z"], lambda k: (order.append(k), os.getpid())[1])
    assert order == ["x", "y", "z"] and set(results.values()) == {os.getpid()}


@needs_fork
def test_figures_drawn_on_two_cores_are_the_files_drawn_in_one(tmp_path, monkeypatch):
    from runner import plot
    from tests.test_plot import PRESET_FIGURES

    sweep = _grid_sweep(tmp_path / "grid")
    shared_copy, alone_copy = shutil.copytree(sweep, tmp_path / "shared"), shutil.copytree(sweep, tmp_path / "alone")
    calls = []
    written = plot.draw(shared_copy)
    monkeypatch.setattr(_shared, "can_fork", lambda: (calls.append(1), False)[1])
    alone = plot.draw(alone_copy)
    assert calls  # the second draw was made in one process
    assert {p.stem for p in written} == PRESET_FIGURES["lr_momentum_grid"]
    assert [p.name for p in written] == [p.name for p in alone]  # registry order, PNG then PDF
    for ours, theirs in zip(written, alone, strict=True):
        assert ours.read_bytes() == theirs.read_bytes(), ours.name


def _grid_sweep(root: Path) -> Path:
    """A 6 x 4 lr x momentum grid through the command line's batched launcher, its figures not drawn."""
    args = [
        sys.executable, "-m", "runner", "-m", "hydra/launcher=batched", "optimizer=momentum",
        "lr=0.5,1,2,4,8,12", "optimizer.momentum=0,0.3,0.6,0.9", "max_iter=300", "tol=0",
        f"hydra.sweep.dir={root}", "hydra.callbacks.sweep_end.figures=false", "hydra.callbacks.sweep_end.report=false",
    ]  # fmt: skip
    done = subprocess.run(args, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return root


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@needs_fork
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes in /proc")
def test_ctrl_c_while_figures_are_drawn_leaves_no_process_and_no_partial_file(tmp_path):
    sweep = _grid_sweep(tmp_path / "grid")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.plot", str(sweep)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (sweep / "figures").is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the first figure is being written: both processes are drawing
    proc.send_signal(signal.SIGINT)  # the launcher's process only, as kill -INT would
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the figures were all drawn before Ctrl-C came")
    assert proc.returncode == 130, stderr.decode()
    last = stderr.decode().strip().splitlines()[-1]
    assert last == f"interrupted: the figures written so far are in {sweep / 'figures'}"
    time.sleep(0.5)
    assert _processes_naming(str(sweep)) == []  # the forked copy ended with its parent
    assert not [p.name for p in (sweep / "figures").iterdir() if p.name.endswith(".tmp")]


class Reworded(Exception):
    """An error that unpickles, but from its message: not as it was raised (a module's class, so it pickles)."""

    def __init__(self, path):
        super().__init__(f"{path} was not read")


def test_an_error_that_does_not_pickle_comes_back_named():
    """What a forked process sends back of an error: the error itself when it rebuilds, else a RuntimeError
    with its type and message (both the figures' copy and engine=fork send it so)."""
    from runner.errors import picklable

    class Unpicklable(Exception):
        def __init__(self, message):
            super().__init__(message)
            self.callback = lambda: None

    same = ValueError("bad chunk")
    assert picklable(same) is same
    sent = picklable(Unpicklable("no lambda crosses a pipe"))
    assert type(sent) is RuntimeError and str(sent) == "Unpicklable: no lambda crosses a pipe"
    sent = picklable(Reworded("a.parquet"))
    assert type(sent) is RuntimeError and str(sent) == "Reworded: a.parquet was not read"


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("lr", -1.0, "a number > 0"),
        WriteError(Path("t.parquet"), OSError(28, "No space left on device")),
        WriteInterrupted(Path("t.parquet")),
    ],
    ids=["ConfigError", "WriteError", "WriteInterrupted"],
)
def test_the_runners_own_errors_come_back_from_a_forked_process_as_raised(error):
    """The runner's errors cross a pipe as themselves, their one line and their fields intact."""
    from runner.errors import picklable

    assert picklable(error) is error
    rebuilt = pickle.loads(pickle.dumps(error))
    assert type(rebuilt) is type(error) and str(rebuilt) == str(error) and vars(rebuilt) == vars(error)
