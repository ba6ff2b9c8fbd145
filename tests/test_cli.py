"""End to end: ``python -m runner`` writes the trace and summary contract; bad input fails clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from runner import run

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_end_line_names_the_folder_as_the_user_gave_it(tmp_path):
    relative = cli("max_iter=3", cwd=tmp_path)  # the default hydra.run.dir, outputs/<date>/<time>-<id>
    where = relative.stdout.strip().rpartition("  (")[2].rstrip(")")
    assert where.startswith("outputs/") and (tmp_path / where / "summary.json").is_file(), relative.stdout
    absolute = cli("max_iter=3", f"hydra.run.dir={tmp_path / 'abs'}", cwd=tmp_path)
    assert absolute.stdout.strip().endswith(f"  ({tmp_path / 'abs'})"), absolute.stdout


def test_cli_writes_trace_and_summary(tmp_path):
    out = tmp_path / "run"
    done = cli("optimizer=momentum", "lr=0.01", f"hydra.run.dir={out}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "converged" and summary["stop_reason"] == "tol"
    assert done.stdout.strip().splitlines()[-1].startswith(f"converged (tol): f = {summary['f']:.6g} after")
    assert str(out) in done.stdout
    for key in ("f", "x", "iterations", "nfev", "ngev", "wall_time_s", "config", "versions", "run_id"):
        assert key in summary
    assert summary["config"]["optimizer"]["momentum"] == 0.9 and summary["config"]["lr"] == 0.01
    assert summary["versions"]["numpy"] == np.__version__

    trace = pd.read_parquet(out / "trace.parquet")
    assert list(trace.columns[:5]) == ["iteration", "f", "grad_norm", "x_0", "x_1"]
    assert trace["iteration"].dtype == np.int64 and trace["f"].dtype == np.float64
    assert list(trace["iteration"]) == list(range(summary["iterations"] + 1))
    for column in ("time_s", "nfev", "ngev", "run_id", "objective", "optimizer", "lr", "optimizer.momentum", "seed"):
        assert column in trace.columns
    assert set(trace["optimizer"]) == {"momentum"} and set(trace["objective"]) == {"shifted_quadratic"}
    assert set(trace["run_id"]) == {summary["run_id"]}
    assert trace["f"].iloc[-1] == summary["f"]
    assert [trace["x_0"].iloc[0], trace["x_1"].iloc[0]] == [8.0, 9.0]
    assert not (out / "runner.log").exists() or "__main__" not in str(list(out.iterdir()))


def test_two_runs_in_the_same_second_get_their_own_folders(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "runner", "max_iter=5"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    folders = sorted(p.parent for p in (tmp_path / "outputs").glob("*/*/summary.json"))
    assert len(folders) == 2 and folders[0] != folders[1]
    assert all((f / "runner.log").exists() for f in folders)  # the job is named, not __main__


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["lr=-0.1"], "lr=-0.1: expected a number > 0"),
        (["optimizer=scipy", "optimizer.method=Adamax"], "optimizer.method=Adamax: expected one of Nelder-Mead"),
        (["objective.x0=[1,2,3]"], "objective.x0=[1, 2, 3]: expected a list of 2 numbers (got 3)"),
        (
            ["max_iter=100000000000000000000"],
            "max_iter=100000000000000000000: expected an integer >= 0 (an integer must fit int64)",
        ),
        (["+max_iters=5"], "max_iters=5: expected a known key: did you mean max_iter? (keys: objective, optimizer"),
        (["optimizer=scipy", "optimizer.options=abc"], "optimizer.options=abc: expected a mapping (name: value)"),
    ],
)
def test_bad_input_exits_with_one_line(tmp_path, overrides, message):
    out = tmp_path / "run"
    done = cli(*overrides, f"hydra.run.dir={out}", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stdout + done.stderr
    assert lines[0].startswith("failed: ") and done.stdout == ""
    assert not (out / "trace.parquet").exists()
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "optimizer=adamw",
            "error: optimizer=adamw: expected one of adagrad, adam, gd, momentum, nesterov, rmsprop, scipy, sgd",
        ),
        ("optimizer.momentum=0.9", "error: optimizer.momentum: not a key of optimizer; its keys are lr, weight_decay"),
        ("lrr=0.1", "error: lrr: not a key of the top level; its keys are lr, max_iter, tol, grad_tol, seed, trace"),
    ],
)
def test_hydra_composition_errors_are_one_line_too(tmp_path, override, message):
    done = cli(override, cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.strip().startswith(message)
    assert not (tmp_path / "outputs").exists()


def test_a_value_of_the_wrong_type_is_named_with_what_the_key_takes(tmp_path):
    """A typed key (the batched launcher's settings) given text: the key, the value and the type it takes,
    not "not a key" (it is one)."""
    done = cli("-m", "hydra/launcher=batched", "hydra.launcher.n_jobs=two", "lr=0.1,0.2", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: hydra.launcher.n_jobs=two: Value 'two' of type 'str' could not be converted to Integer"
    )
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()


TOP_KEYS = "lr, max_iter, tol, grad_tol, seed, trace, objective, optimizer"


@pytest.mark.parametrize(
    "overrides, line",
    [
        (
            ["optimizer=momentum", "momentum=0.5"],
            f"momentum: not a key of the top level; its keys are {TOP_KEYS}; did you mean optimizer.momentum?",
        ),
        (["momentum=0.5"], f"momentum: not a key of the top level; its keys are {TOP_KEYS}"),  # gd has none
        (["lrr=0.1"], f"lrr: not a key of the top level; its keys are {TOP_KEYS}; did you mean lr?"),
        (
            ["optimizer=adam", "optimizer.beta=[0.9,0.99]"],
            "optimizer.beta: not a key of optimizer; its keys are lr, betas, eps, weight_decay, amsgrad; "
            "did you mean optimizer.betas?",
        ),
    ],
)
def test_an_unknown_key_names_the_key_it_may_mean(tmp_path, overrides, line):
    """A key one level down of the same name, else the closest key of the node; none where neither is."""
    done = cli(*overrides, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"error: {line}"


@pytest.mark.parametrize(
    "overrides, line",
    [
        (
            ["optimizer=adam", "optimizer.betas.x=1"],
            "optimizer.betas.x=1: x is not an index of the list there (expected 0, 1, ...)",
        ),
        (
            ["-m", "optimizer=adam", "optimizer.betas.x=1,2"],
            "optimizer.betas.x=1: x is not an index of the list there (expected 0, 1, ...)",
        ),
        (["objective.x0.0=1"], "objective.x0.0: not a key of objective.x0, which has none"),  # x0 is null
        (["hydra.launcher.foo=1"], "hydra.launcher.foo: not a key of hydra.launcher, which has none"),  # basic's
    ],
)
def test_a_key_below_a_list_or_a_value_is_one_line(tmp_path, overrides, line):
    """Keys that walk into a list by a word, or below a value: one line naming the override, exit code 2, no
    folder (a word under a list was a ValueError that Hydra left to a traceback)."""
    done = cli(*overrides, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"error: {line}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("launcher", ["basic", "batched"])
def test_a_bad_swept_key_leaves_the_sweep_folder_as_it_was(tmp_path, launcher):
    """A swept key that does not exist is found when the first job is composed, after Hydra's sweeper has
    written ``multirun.yaml``: a new folder is removed again, an existing sweep's record put back."""
    bad = ("-m", f"hydra/launcher={launcher}", "momentum=0.1,0.2")
    done = cli(*bad, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: momentum: not a key of the top level")
    assert list(tmp_path.iterdir()) == []  # not even multirun/<date>/
    sweep_dir = tmp_path / "s"
    assert (
        cli("-m", f"hydra/launcher={launcher}", "lr=0.1,0.2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path).returncode
        == 0
    )
    before = {p.name: p.read_bytes() for p in sweep_dir.iterdir() if p.is_file()}
    done = cli(*bad, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in sweep_dir.iterdir() if p.is_file()} == before
    assert b"lr=0.1,0.2" in before["multirun.yaml"]


# --------------------------------------------------------------------------- in-process bad input


BAD_INPUT = [
    (["objective=nope"], "objective"),
    (["lr=0"], "lr=0: expected a number > 0"),
    (["optimizer=momentum", "optimizer.momentum=1.0"], "optimizer.momentum=1.0: expected a number in [0, 1)"),
    (["optimizer=momentum", "optimizer.momentum=-0.5"], "optimizer.momentum=-0.5: expected a number in [0, 1)"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.0]"], "optimizer.betas[1]=1.0: expected a number in [0, 1)"),
    (["objective.x0=[1]"], "objective.x0=[1]: expected a list of 2 numbers (got 1)"),
    (
        ["objective=sin_cos", "objective.n=12", "objective.x0=[2,0,0,0,0,0,0,0,0,0,0,0]"],
        "objective.x0=x0[0]=2: expected values within the bounds [-inf, 1] for coordinate 0",
    ),
    (
        ["objective=least_squares", "optimizer=sgd", "optimizer.batch_size=0"],
        "optimizer.batch_size=0: expected an integer >= 1",
    ),
    (
        ["objective=least_squares", "optimizer=sgd", "optimizer.batch_size=1000"],
        "optimizer.batch_size=1000: expected an integer in [1, 100]",
    ),
    (["optimizer=scipy", "optimizer.method=newton"], "optimizer.method=newton: expected one of"),
    (["optimizer=gd", "+optimizer.momentum=0.9"], "optimizer.momentum=0.9: expected a key gd takes: lr, weight_decay"),
    (["optimizer=scipy", "lr=0.1"], "lr=0.1: expected null: optimizer scipy takes no learning rate"),
    (["max_iter=-1"], "max_iter=-1: expected an integer >= 0"),
    (["objective=least_squares", "objective.data=missing.csv"], "objective.data=missing.csv"),
]


@pytest.mark.parametrize("overrides, message", BAD_INPUT)
def test_bad_input_is_a_failed_run_with_a_one_line_error(compose_cfg, tmp_path, overrides, message):
    if overrides == ["objective=nope"]:
        from hydra.errors import MissingConfigException

        with pytest.raises(MissingConfigException, match="Available options in 'objective'"):
            compose_cfg(*overrides)
        return
    summary = run(compose_cfg(*overrides), tmp_path)
    assert summary["status"] == "failed"
    assert message in summary["error"] and "\n" not in summary["error"]
    assert summary["traceback"] is None
    assert not (tmp_path / "trace.parquet").exists()


# Values that looked fine until the run (an overflow after the optimisation, a numpy TypeError, a
# key silently ignored, true/false read as 1/0): each is refused before any work.
BAD_VALUES = [
    (
        ["max_iter=100000000000000000000"],
        "max_iter=100000000000000000000: expected an integer >= 0 (an integer must fit int64)",
    ),
    (
        ["objective.a=100000000000000000000"],
        "objective.a=100000000000000000000: expected a number (an integer must fit int64)",
    ),
    (["lr=[0.1]"], "lr=[0.1]: expected a number"),
    (["optimizer=momentum", "optimizer.momentum=[0.5]"], "optimizer.momentum=[0.5]: expected a number"),
    (["optimizer=adam", "optimizer.betas=0.9"], "optimizer.betas=0.9: expected a list of 2 numbers"),
    (["optimizer=rmsprop", "optimizer.centered=1"], "optimizer.centered=1: expected true or false"),
    (["+foo=1"], "foo=1: expected a known key (keys: objective, optimizer, lr, max_iter, tol, grad_tol, seed, trace)"),
    (
        ["+max_iters=5"],
        "max_iters=5: expected a known key: did you mean max_iter? (keys: objective, optimizer, lr, "
        "max_iter, tol, grad_tol, seed, trace)",
    ),
    (["objective.x0=[true,false]"], "objective.x0=[True, False]: expected a list of numbers, a number or null"),
    (["optimizer=scipy", "optimizer.options=abc"], "optimizer.options=abc: expected a mapping (name: value) or null"),
]


@pytest.mark.parametrize("overrides, message", BAD_VALUES)
def test_a_bad_value_is_refused_before_any_work(compose_cfg, tmp_path, monkeypatch, overrides, message):
    import importlib

    module = importlib.import_module("runner.run")  # the module: ``runner.run`` is the function

    def no_work(*args, **kwargs):
        raise AssertionError("built or ran a config with a bad value")

    for name in ("build", "build_optimizer", "minimize"):
        monkeypatch.setattr(module, name, no_work)
    monkeypatch.setattr(importlib.import_module("runner.scipy_driver"), "minimize_scipy", no_work)
    summary = run(compose_cfg(*overrides), tmp_path)
    assert summary["status"] == "failed" and summary["error"] == message
    assert summary["traceback"] is None and not (tmp_path / "trace.parquet").exists()


@pytest.mark.parametrize("problem", ["nan", "text", "empty"])
def test_bad_data_files(compose_cfg, tmp_path, problem):
    data = tmp_path / "data.csv"
    rows = {"nan": "a,b,y\n1,2,3\n4,nan,6\n", "text": "a,b,y\n1,x,3\n4,5,6\n", "empty": ""}[problem]
    data.write_text(rows)
    summary = run(compose_cfg("objective=least_squares", f"objective.data={data}"), tmp_path / "out")
    assert summary["status"] == "failed" and "objective.data=" in summary["error"]
    assert "\n" not in summary["error"]


def test_a_crashing_objective_is_recorded_with_its_traceback(compose_cfg, tmp_path):
    cfg = compose_cfg()
    cfg["objective"] = {"_target_": "tests.test_cli.exploding_objective"}
    summary = run(cfg, tmp_path)
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: boom"
    assert "exploding_objective" in summary["traceback"]


def exploding_objective():
    raise RuntimeError("boom")


def test_user_data_file_runs(compose_cfg, tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 3))
    frame = pd.DataFrame(a, columns=["u", "v", "w"]).assign(y=a @ [1.0, -2.0, 0.5])
    frame.to_csv(tmp_path / "my.csv", index=False)
    cfg = compose_cfg(
        "objective=least_squares",
        "optimizer=adam",
        "lr=0.05",
        f"objective.data={tmp_path / 'my.csv'}",
        "max_iter=3000",
        "tol=0",
    )
    summary = run(cfg, tmp_path / "out")
    assert summary["status"] == "max_iter"
    assert np.allclose(summary["x"], [1.0, -2.0, 0.5], atol=1e-3)
    trace = pq.read_table(tmp_path / "out" / "trace.parquet").to_pandas()
    assert {"x_0", "x_1", "x_2"} <= set(trace.columns) and "x_3" not in trace.columns


def test_an_objective_from_the_users_own_package_and_config_folder(tmp_path):
    """The README's recipe: a factory in the user's package, a yaml in the user's folder, --config-dir."""
    import re

    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n# my_pkg/rosenbrock.py\n(.*?)```", readme, re.S).group(1)
    yaml = re.search(r"```yaml\n# my_conf/objective/rosenbrock.yaml\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_pkg" / "rosenbrock.py").write_text(code)
    (tmp_path / "my_conf" / "objective").mkdir(parents=True)
    (tmp_path / "my_conf" / "objective" / "rosenbrock.yaml").write_text(yaml)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "--config-dir",
            "my_conf",
            "objective=rosenbrock",
            "optimizer=scipy",
            "optimizer.method=BFGS",
            "hydra.run.dir=run",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "converged" and summary["objective"] == "rosenbrock"
    assert np.allclose(summary["x"], [1.0, 1.0], atol=1e-4)
