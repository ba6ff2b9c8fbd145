"""A search kept in a database: killed midway and started again, it continues; two processes share it.

The database is read with the standard library's sqlite3 (Optuna's own tables), not through Optuna.
Needs the optuna extra (marked ``optuna``).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import runner

REPO = Path(__file__).resolve().parent.parent
N_TRIALS = 8


def search_command(db: Path, sweep_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner",
        "-m",
        "+hparams_search=optuna",
        f"hydra.sweeper.n_trials={N_TRIALS}",
        f"hydra.sweeper.storage=sqlite:///{db}",
        "hydra.sweeper.study_name=kept",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.callbacks.sweep_end.figures=false",
        *extra,
    ]


def start(command: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trials(db: Path) -> list[tuple[int, str, float | None]]:
    """``(trial_id, state, value)`` of every trial of the study, in the order they were created."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            return con.execute(
                "SELECT t.trial_id, t.state, v.value FROM trials t LEFT JOIN trial_values v USING (trial_id)"
                " ORDER BY t.trial_id"
            ).fetchall()
        except sqlite3.OperationalError:  # the tables are not created yet
            return []


def completed(db: Path) -> list[tuple[int, str, float | None]]:
    return [t for t in trials(db) if t[1] == "COMPLETE"]


@pytest.fixture
def optuna_sweeper():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    pytest.importorskip("optuna")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    if int(sqlalchemy.__version__.split(".")[0]) >= 2:  # an environment the optuna extra did not install
        pytest.skip(f"optuna 2 storage needs SQLAlchemy < 2 (the optuna extra's pin), not {sqlalchemy.__version__}")


@pytest.mark.optuna
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_search_started_again_continues_its_study(optuna_sweeper, tmp_path, how):
    db, sweep_dir = tmp_path / "study.db", tmp_path / "search"
    command = search_command(db, sweep_dir)
    first = start(command, tmp_path)
    deadline = time.monotonic() + 240
    while len(completed(db)) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(how)
    first.communicate(timeout=60)
    before = completed(db)
    assert 2 <= len(before) < N_TRIALS, "killed midway"

    again = subprocess.run(
        command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    after = completed(db)
    assert len(after) == N_TRIALS  # n_trials is the study's total: only the missing ones ran
    assert set(before) <= set(after)  # the first process's trials, their values unchanged
    assert f"holds {len(before)} completed trials: {N_TRIALS - len(before)} to run" in again.stdout + again.stderr
    # Every completed trial is a run of the sweep folder, with the value it returned.
    runs = runner.load_runs(sweep_dir)
    assert {round(v, 12) for _, _, v in after} <= {round(f, 12) for f in runs["f"]}


@pytest.mark.optuna
def test_two_processes_add_trials_to_one_study(optuna_sweeper, tmp_path):
    db = tmp_path / "study.db"
    # The study and its tables exist before the two start together (each would create them).
    first = subprocess.run(
        search_command(db, tmp_path / "a0", "hydra.sweeper.n_trials=1"),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    workers = [
        start(search_command(db, tmp_path / name, f"hydra.sweeper.sampler.seed={seed}"), tmp_path)
        for name, seed in (("a", 1), ("b", 2))
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    done = completed(db)
    runs = [runner.load_runs(tmp_path / name) for name in ("a0", "a", "b")]
    assert all(len(r) for r in runs[1:])  # both added trials
    assert len(done) == sum(len(r) for r in runs) >= N_TRIALS
    assert {t[0] for t in trials(db)} == {t[0] for t in done}  # none left running or failed
