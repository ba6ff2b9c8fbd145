"""The command line a person uses: tab completion, ``--list``, ``--dry-run``, and one-line hints.

Completion is driven the way the shell drives it: the script that ``-sc install=bash`` prints is
sourced in bash, and its function is called with ``COMP_LINE`` / ``COMP_POINT`` set, as bash's
``complete -F`` calls it. The command ``runner`` is a small wrapper on PATH here (the suite runs
from a source tree too); the installed console script is checked where it is on PATH.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.helpers import REPO, run_module

CONF = REPO / "conf"
OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
OBJECTIVES = sorted(p.stem for p in (CONF / "objective").glob("*.yaml"))


def env_with_repo(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def runner(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_module("runner", *args, cwd=cwd, **kwargs)


def yaml_keys(path: Path) -> dict:
    """An option file's own keys, read as plain YAML (not through the project or Hydra)."""
    return {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "defaults"}


# ----------------------------------------------------------------------------- completion


@pytest.fixture(scope="module")
def runner_on_path(tmp_path_factory) -> Path:
    """A folder holding ``runner``, a wrapper for ``python -m runner`` from this source tree."""
    folder = tmp_path_factory.mktemp("bin")
    wrapper = folder / "runner"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m runner "$@"\n')
    wrapper.chmod(0o755)
    return folder


def bash_complete(script: str, line: str, path_dir: Path, cwd: Path) -> list[str]:
    """What bash offers at the end of ``line``: the script's function called as ``complete -F`` calls it."""
    driver = textwrap.dedent(
        """\
        eval "$RUNNER_SCRIPT"
        COMP_LINE=$RUNNER_LINE
        COMP_POINT=${#COMP_LINE}
        read -ra COMP_WORDS <<< "$COMP_LINE"
        COMP_CWORD=${#COMP_WORDS[@]}
        _runner_complete
        printf '%s\\n' "${COMPREPLY[@]}"
        complete -p runner
        """
    )
    env = env_with_repo(RUNNER_SCRIPT=script, RUNNER_LINE=line, PATH=f"{path_dir}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "-c", driver], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *choices, registered = done.stdout.splitlines()
    assert registered.endswith("-F _runner_complete runner" + registered.partition(" runner")[2]), registered
    return sorted(c for c in choices if c)


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory) -> str:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    done = runner("-sc", "install=bash", cwd=tmp_path_factory.mktemp("install"))
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("app", ["runner", f"{sys.executable} -m runner"])
def test_bash_completes_options_and_keys(bash_script, runner_on_path, tmp_path, app):
    # optimizer=<TAB>: bash breaks words at '=', so readline is handed the option names alone
    assert bash_complete(bash_script, f"{app} optimizer=", runner_on_path, tmp_path) == OPTIMIZERS
    assert bash_complete(bash_script, f"{app} optimizer=ad", runner_on_path, tmp_path) == [
        o for o in OPTIMIZERS if o.startswith("ad")
    ]
    # optimizer.<TAB>: the keys of the chosen optimizer's file (a key holding a list continues with '.')
    adam = yaml_keys(CONF / "optimizer" / "adam.yaml")
    expected = sorted(f"optimizer.{k}{'.' if isinstance(v, list) else '='}" for k, v in adam.items())
    assert bash_complete(bash_script, f"{app} -m optimizer=adam optimizer.", runner_on_path, tmp_path) == expected
    # a group in a folder, and a preset added with +
    assert bash_complete(bash_script, f"{app} hydra/la", runner_on_path, tmp_path) == ["hydra/launcher="]
    assert bash_complete(bash_script, f"{app} +exp", runner_on_path, tmp_path) == ["+experiment="]


def test_bash_completion_leaves_other_python_commands_alone(bash_script, runner_on_path, tmp_path):
    assert bash_complete(bash_script, f"{sys.executable} other.py optimizer=", runner_on_path, tmp_path) == []


def test_the_installed_console_script_completes(tmp_path):
    installed = shutil.which("runner")
    if installed is None:
        pytest.skip("the console script runner is not on PATH (the project is not installed)")
    script = subprocess.run([installed, "-sc", "install=bash"], capture_output=True, text=True, timeout=120)
    assert script.returncode == 0, script.stderr
    folder = Path(installed).parent
    assert bash_complete(script.stdout, "runner optimizer=", folder, tmp_path) == OPTIMIZERS


def test_zsh_completes_options_and_keys(runner_on_path, tmp_path):
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    script = runner("-sc", "install=zsh", cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    # compadd and compdef exist inside zsh's completion system only: stand-ins print what they are given
    driver = textwrap.dedent(
        """\
        compdef() { print -r -- "compdef $*" }
        compadd() { print -rl -- "$@" }
        eval "$RUNNER_SCRIPT"
        BUFFER=$RUNNER_LINE
        CURSOR=${#BUFFER}
        _runner_complete
        """
    )

    def offered(line: str) -> list[str]:
        env = env_with_repo(
            RUNNER_SCRIPT=script.stdout, RUNNER_LINE=line, PATH=f"{runner_on_path}{os.pathsep}{os.environ['PATH']}"
        )
        done = subprocess.run(["zsh", "-f", "-c", driver], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("compdef _runner_complete runner"), lines[0]
        return sorted(lines[lines.index("--") + 1 :])

    assert offered("runner optimizer=") == [f"optimizer={o}" for o in OPTIMIZERS]
    gd = yaml_keys(CONF / "optimizer" / "gd.yaml")
    assert offered(f"{sys.executable} -m runner optimizer.") == sorted(f"optimizer.{k}=" for k in gd)


def test_the_query_reads_python_dash_m_runner_as_runner_up_to_the_cursor():
    from runner.cli import query_line

    assert query_line("python3 -m runner -m lr=0.1 opt") == "runner -m lr=0.1 opt"
    line = "/venv/bin/python3.11 -m runner optimizer= lr=1"
    assert query_line(line, str(line.index(" lr=1"))) == "runner optimizer="
    assert query_line("runner optimizer=") == "runner optimizer="
    assert query_line("python -m runnerx a=") == "python -m runnerx a="  # another module is left as it is


# ----------------------------------------------------------------------------- --list


@pytest.fixture(scope="module")
def listing(tmp_path_factory) -> str:
    done = runner("--list", cwd=tmp_path_factory.mktemp("list"))
    assert done.returncode == 0, done.stderr
    return done.stdout


def block(listing: str, name: str) -> str:
    """The lines about one option: its own line and the indented ones below it."""
    found = re.search(rf"^  {re.escape(name)}\b.*\n(?:    .*\n?)*", listing, re.MULTILINE)
    assert found, f"{name} not listed:\n{listing}"
    return found.group(0)


def test_list_shows_each_objective_with_its_dimension_bounds_and_optimum(listing):
    for name in OBJECTIVES:
        text = block(listing, name)
        for key in yaml_keys(CONF / "objective" / f"{name}.yaml"):
            if key != "_target_":
                assert f"{key}=" in text, (name, key, text)
    # the quartic's minimum from numpy's roots of f' (4x^3 + 21x^2 + 10x - 17), not from the project
    roots = np.roots([4, 21, 10, -17])
    real = roots[np.abs(roots.imag) < 1e-9].real
    f = np.polyval([1, 7, 5, -17, 3], real)
    assert f"x* ({real[np.argmin(f)]:g}); f* {f.min():g}" in block(listing, "quartic")
    quad = yaml_keys(CONF / "objective" / "shifted_quadratic.yaml")
    assert f"dimension 2; bounds: none; x* ({quad['a']:g}, {quad['b']:g}); f* 0" in block(listing, "shifted_quadratic")
    sin_cos = yaml_keys(CONF / "objective" / "sin_cos.yaml")
    assert f"dimension {sin_cos['n']}; bounds: [-inf, 1] for x_0..x_9, [-inf, 20] for x_10..x_{sin_cos['n'] - 1}" in (
        block(listing, "sin_cos")
    )
    for name in ("least_squares", "two_layer_net"):
        m = yaml_keys(CONF / "objective" / f"{name}.yaml")["m"]
        assert f"data: {m} samples (synthetic, from the seed); objective.data and objective.target" in block(
            listing, name
        )


def test_list_shows_each_optimizer_with_its_keys_and_the_class_it_follows(listing):
    for name in OPTIMIZERS:
        text = block(listing, name)
        node = yaml_keys(CONF / "optimizer" / f"{name}.yaml")
        node = node.get("optimizer", node)  # scipy's file is a global package
        for key in node:
            if key != "_target_":
                assert re.search(rf"\b{key}=", text), (name, key, text)
        assert re.search(r"follows (torch\.optim\.(SGD|Adagrad|RMSprop|Adam)|scipy\.optimize\.minimize)\b", text)
    assert "lr=0.01 (${lr})" in block(listing, "adam")  # the value a run gets, and where it comes from
    assert "betas=[0.9,0.999]" in block(listing, "adam")
    assert "sets lr=null" in block(listing, "scipy")


def test_list_shows_the_presets_with_their_swept_keys(listing):
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        params = yaml.safe_load(path.read_text())["hydra"]["sweeper"]["params"]
        # the count by Hydra's own override parser (range(3) is 3 values, a list 1 per comma)
        parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        jobs = math.prod(len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in parsed)
        text = block(listing, f"+experiment={path.stem}")
        assert all(f"{k}: {v}" in text for k, v in params.items()) and f"({jobs} jobs)" in text, text


def test_list_shows_the_launchers_and_marks_extras_not_installed(listing):
    from importlib.util import find_spec

    launchers = listing[listing.index("launchers (hydra/launcher=NAME):") :]
    assert block(launchers, "basic") and block(launchers, "batched")
    for extra, module in (("joblib", "hydra_joblib_launcher"), ("ray", "hydra_ray_launcher")):
        if find_spec(f"hydra_plugins.{module}") is None:
            assert f"(not installed)     extra {extra} (hydra-{extra}-launcher): pip install" in launchers
        else:
            assert re.search(rf"^  {extra}\s+extra {extra} \(hydra-{extra}-launcher \d", launchers, re.MULTILINE)


def test_list_refuses_an_unknown_section_in_one_line(tmp_path):
    done = runner("--list", "solvers", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--list: invalid choice: 'solvers'" in done.stderr


# ----------------------------------------------------------------------------- --dry-run


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def dry_lines(stdout: str) -> dict:
    """``#i overrides -> how`` lines of a dry run, by job number."""
    found = re.findall(r"^  #(\d+)\s+(.*?)\s+-> (.+)$", stdout, re.MULTILINE)
    return {int(i): (shown, how) for i, shown, how in found}


def test_dry_run_lists_the_jobs_and_writes_nothing(tmp_path):
    done = runner("-m", "lr=0.1,0.2,0.3,0.4,0.5", "optimizer=gd,momentum", "seed=0,1", "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []  # no outputs/, no .hydra, no log
    jobs = list(itertools.product(["0.1", "0.2", "0.3", "0.4", "0.5"], ["gd", "momentum"], ["0", "1"]))
    assert done.stdout.startswith(f"dry run: {len(jobs)} jobs, basic sweeper, basic launcher, into outputs/multirun/")
    shown = dry_lines(done.stdout)
    assert sorted(shown) == [0, 1, 2, len(jobs) - 3, len(jobs) - 2, len(jobs) - 1]
    for i, (text, how) in shown.items():
        lr, optimizer, seed = jobs[i]
        assert text == f"lr={lr} optimizer={optimizer} seed={seed}" and how == "per job"
    assert f"  ... {len(jobs) - 6} more" in done.stdout
    assert f"{len(jobs)} jobs: {len(jobs)} per job" in done.stdout


def test_dry_run_of_a_single_run_and_of_a_preset(tmp_path):
    single = runner("max_iter=5", "--dry-run", cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    assert single.stdout.startswith("dry run: 1 run into outputs/") and "max_iter=5: would run" in single.stdout
    preset = runner("+experiment=lr_sweep", "--dry-run", cwd=tmp_path)  # multirun by the preset's hydra.mode
    params = yaml.safe_load((CONF / "experiment" / "lr_sweep.yaml").read_text())["hydra"]["sweeper"]["params"]
    assert f"dry run: {len(str(params['lr']).split(','))} jobs" in preset.stdout, preset.stderr
    assert list(tmp_path.iterdir()) == []


def test_dry_run_tells_resume_and_batched_as_the_batched_launcher_then_does(tmp_path):
    sweep = tmp_path / "sweep"
    common = [
        "hydra/launcher=batched",
        "max_iter=5",
        f"hydra.sweep.dir={sweep}",
        "hydra.callbacks.sweep_end.figures=false",
    ]
    first = runner("-m", *common, "lr=0.1,0.2", "optimizer=gd,scipy", cwd=tmp_path)
    assert first.returncode in (0, 1), first.stderr  # scipy with an lr fails: a failed job is a result
    runs = pd.read_parquet(sweep / "runs.parquet")
    finished = set(runs.loc[runs["status"] != "failed", "job"])
    before = tree(sweep)

    grid = [*common, "lr=0.1,0.2,0.3", "optimizer=gd,momentum,scipy"]
    dry = runner("-m", *grid, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert tree(sweep) == before  # nothing repaired, rewritten or added
    summary = re.search(r"^9 jobs: (.*)$", dry.stdout, re.MULTILINE).group(1)
    counts = {how: int(n) for n, how in re.findall(r"(\d+) ([a-z]+)", summary)}
    assert counts.get("done") == len(finished) == 2, dry.stdout
    alone = counts.get("alone", 0)
    assert alone == 3 and counts.get("batched") == 9 - 2 - alone, dry.stdout  # scipy jobs run alone

    real = runner("-m", *grid, cwd=tmp_path)
    line = re.search(r"^batched: (\d+) of (\d+) runs in [\d.]+ s, (\d+) done already", real.stdout, re.MULTILINE)
    assert line, real.stdout + real.stderr
    assert (int(line.group(1)), int(line.group(2)), int(line.group(3))) == (counts["batched"], 9, counts["done"])


def test_dry_run_tells_resume_as_the_basic_launcher_then_does(tmp_path):
    sweep = tmp_path / "sweep"
    common = ["max_iter=5", f"hydra.sweep.dir={sweep}", "hydra.callbacks.sweep_end.figures=false"]
    assert runner("-m", *common, "lr=0.1,0.2", cwd=tmp_path).returncode == 0
    dry = runner("-m", *common, "lr=0.1,0.2,0.3", "--dry-run", cwd=tmp_path)
    assert {i: how for i, (_, how) in dry_lines(dry.stdout).items()} == {
        0: "done (skipped)",
        1: "done (skipped)",
        2: "per job",
    }, dry.stdout
    real = runner("-m", *common, "lr=0.1,0.2,0.3", cwd=tmp_path)
    assert real.stdout.count("skipped: ") == 2, real.stdout


@pytest.mark.optuna
def test_dry_run_of_a_sweeper_that_cannot_list_its_jobs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    done = runner("-m", "+hparams_search=optuna", "--dry-run", cwd=tmp_path)
    trials = yaml.safe_load((CONF / "hparams_search" / "optuna.yaml").read_text())["hydra"]["sweeper"]["n_trials"]
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("dry run: the optuna_study sweeper chooses each job")
    assert f"n_trials={trials}" in done.stdout and list(tmp_path.iterdir()) == []


def test_dry_run_says_a_bad_override_in_one_line(tmp_path):
    done = runner("-m", "optimizer=gd", "optimizer.momentum=0.5,0.9", "--dry-run", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "optimizer.momentum" in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- hints


def without_plugin(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command line in a process where the plugin ``hydra_plugins.<module>`` cannot be imported,
    as where its extra is not installed."""
    code = f"import sys; sys.modules['hydra_plugins.{module}'] = None; from runner.cli import main; main()"
    command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=cwd, env=env_with_repo(), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("module", "args", "line"),
    [
        (
            "hydra_joblib_launcher",
            ["-m", "hydra/launcher=joblib", "lr=0.1,0.2"],
            "hydra/launcher=joblib: not installed; the joblib extra brings it (hydra-joblib-launcher): pip install",
        ),
        (
            "hydra_optuna_sweeper",
            ["-m", "+hparams_search=optuna"],
            "hydra/sweeper=optuna_study: not installed; the optuna extra brings it (hydra-optuna-sweeper): pip install",
        ),
    ],
)
def test_a_missing_plugin_names_its_extra(tmp_path, module, args, line):
    done = without_plugin(module, *args, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {line}"), done.stderr
    extra = line.split(" the ")[1].split()[0]
    assert f"'.[{extra}]'" in done.stderr  # a source tree: pip install -e '.[extra]'


def test_a_missing_extra_of_the_installed_distribution_comes_from_its_metadata(monkeypatch):
    """Installed from a wheel (no pyproject.toml beside the package), the extras are the metadata's."""
    import importlib.metadata

    from runner import hints

    requires = ["hydra-core>=1.3.8", 'hydra-ray-launcher>=1.2.2; extra == "ray"', 'pytest>=7; extra == "test"']

    class Meta:
        def get_all(self, key):
            return ["ray", "test"] if key == "Provides-Extra" else None

    monkeypatch.setattr(hints, "PYPROJECT", Path("/nonexistent/pyproject.toml"))
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: requires if name == hints.DISTRIBUTION else None)
    monkeypatch.setattr(importlib.metadata, "metadata", lambda name: Meta())
    hints._pyproject.cache_clear()
    hints.extras.cache_clear()
    try:
        assert hints.extras() == {"ray": ("hydra-ray-launcher",), "test": ("pytest",)}
        assert hints.plugin_extra("hydra/launcher", "ray") == ("ray", "hydra-ray-launcher")
        assert hints.install_command("ray") == "pip install 'optim-runner[ray]'"
    finally:
        hints._pyproject.cache_clear()
        hints.extras.cache_clear()


def test_no_slurm_is_one_line(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    bare = tmp_path / "bin"  # a PATH without sbatch or srun
    bare.mkdir()
    args = ["-m", "hydra/launcher=submitit_slurm", "lr=0.1,0.2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    done = run_module_env("runner", *args, cwd=tmp_path, PATH=str(bare))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: hydra/launcher=submitit_slurm could not start its jobs here: ")
    assert "srun" in done.stderr or "sbatch" in done.stderr


def run_module_env(module: str, *args: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=cwd, env=env_with_repo(**env), capture_output=True, text=True, timeout=120)


UNREACHABLE = '''
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class UnreachableConf:
    _target_: str = "hydra_plugins.unreachable_launcher.unreachable_launcher.UnreachableLauncher"
    address: str = "127.0.0.1:1"


ConfigStore.instance().store(group="hydra/launcher", name="unreachable", node=UnreachableConf, provider="tests")


class UnreachableLauncher(Launcher):
    """A launcher whose cluster is at ``address``, as Ray's is at hydra.launcher.ray.init.address."""

    def __init__(self, address):
        self.address = address

    def setup(self, *, hydra_context, task_function, config):
        pass

    def launch(self, job_overrides, initial_job_idx):
        import socket

        host, port = self.address.split(":")
        socket.create_connection((host, int(port)), timeout=5).close()
        raise AssertionError("no cluster was expected at " + self.address)
'''


def test_a_backend_not_at_its_address_is_one_line(tmp_path):
    plugin = tmp_path / "plugins" / "hydra_plugins" / "unreachable_launcher"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    (plugin / "unreachable_launcher.py").write_text(UNREACHABLE)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["-m", "hydra/launcher=unreachable", f"hydra.launcher.address=127.0.0.1:{port}", "lr=0.1,0.2"]
    done = run_module("runner", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, path=[plugin.parents[1]])
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: hydra/launcher=unreachable could not start its jobs here: "), done.stderr
    assert "refused" in done.stderr.lower()


@pytest.mark.parametrize("shown", [["--cfg", "job"], ["--info"], ["--info", "config"]])
def test_cfg_and_info_with_a_sweep_say_why_not_in_one_line(tmp_path, shown):
    for args in (["-m", "lr=0.1", *shown], ["lr=0.1,0.2", *shown]):
        done = runner(*args, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"error: {shown[0]} with " in done.stderr and "--dry-run" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_with_a_sweep_shows_the_help(tmp_path):
    done = runner("-m", "--help", "lr=0.1,0.2", "optimizer=adam", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "== Configuration groups ==" in done.stdout and "runner --list" in done.stdout
    assert "betas" in done.stdout  # the config shown is the one with optimizer=adam
    plain = runner("--cfg", "job", "optimizer=adam", cwd=tmp_path)  # without a sweep, --cfg works as ever
    assert plain.returncode == 0 and yaml.safe_load(plain.stdout)["optimizer"]["betas"] == [0.9, 0.999]


def test_python_dash_m_runner_is_the_console_script():
    """``[project.scripts] runner`` and ``python -m runner`` call the same function."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    module, _, function = project["scripts"]["runner"].partition(":")
    main_py = (REPO / "runner" / "__main__.py").read_text()
    assert f"from {module} import {function}" in main_py and f"\n{function}()" in main_py
    assert project["name"] not in ("runner", "objectives")  # those names belong to other projects on the index


def test_a_summary_records_the_projects_version_under_its_distribution_name(monkeypatch):
    """versions["runner"] is the distribution optim-runner's, never the unrelated project named runner."""
    from importlib import metadata

    from runner import store

    installed = {store.DISTRIBUTION: "9.9.9", "runner": "1.1", "numpy": np.__version__}

    def version(name):
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(metadata, "version", version)
    versions = store.package_versions()
    assert versions["runner"] == "9.9.9" and versions["numpy"] == np.__version__ and versions["scipy"] is None
