"""``hydra/launcher=batched`` as a Hydra plugin: Hydra's own launcher test suites, discovery, the private API it uses.

Hydra's suites (``hydra.test_utils.launcher_common_tests``) run here as they run for
hydra-joblib-launcher: apps that are not the runner's, whose jobs the launcher must
run one by one through Hydra's ``run_job``. The integration suite starts each app in a
fresh process, which must find the plugin by Hydra's scan alone: with the project
installed (``pip install -e .`` or ``pip install .``) nothing helps it; in a source tree
that is not installed, the tree is put on ``PYTHONPATH``, as for ``python -m runner``.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent


def _conf() -> str:
    """The runner's conf/, installed or in the source tree (imported late: runner.app sets Hydra's version base)."""
    from runner.app import config_dir

    return config_dir()


def _installed() -> bool:
    """Whether ``runner`` imports without the source tree on sys.path: installed, with ``-e`` or without."""
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != REPO]
    try:
        return any(hasattr(finder, "find_spec") and finder.find_spec("runner", None) for finder in sys.meta_path)
    finally:
        sys.path[:] = saved


@pytest.fixture(autouse=True)
def _a_fresh_process():
    """Hydra's version base as in a process that runs one of the suites' apps, which set none: 1.1.

    Importing ``runner.app`` (conftest.py and other test modules do) runs its ``@hydra.main(version_base="1.3")``,
    which sets it for the whole process: an app that sets none would not change into its jobs' folders.
    """
    from hydra.version import VersionBase
    from packaging.version import Version

    saved = VersionBase.instance().getbase()
    VersionBase.instance().setbase(Version("1.1"))  # what Hydra assumes for an app that sets none
    yield
    VersionBase.instance().version_base = saved  # the instance hydra_restore_singletons put back, if it ran


@pytest.fixture(autouse=True)
def _source_tree_on_path(monkeypatch):
    """Child processes find the plugin in a source tree that is not installed, as ``python -m runner`` does."""
    if not _installed():
        monkeypatch.setenv("PYTHONPATH", str(REPO))
        if str(REPO) not in sys.path:
            monkeypatch.syspath_prepend(str(REPO))


def test_discovery():
    assert "BatchedLauncher" in [p.__name__ for p in Plugins.instance().discover(Launcher)]


def test_a_fresh_process_outside_the_project_discovers_it_and_imports_no_runner(tmp_path):
    script = textwrap.dedent("""
        import sys
        from hydra.core.plugins import Plugins
        from hydra.plugins.launcher import Launcher
        from hydra.version import getbase
        names = [p.__name__ for p in Plugins.instance().discover(Launcher)]
        runner = sorted(m for m in sys.modules if m.split(".")[0] == "runner")
        print("BatchedLauncher" in names, getattr(getbase(), "major", "unset"), runner)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    # Found; Hydra's version base untouched (runner.app's @hydra.main would set it); nothing of the runner imported.
    assert done.stdout.split("\n")[0] == "True unset []"


def test_a_sweep_of_another_app_keeps_its_version_base_and_imports_no_runner(tmp_path):
    # Hydra 1.1 semantics (version_base="1.1") change into each job's folder; runner.app's
    # @hydra.main(version_base="1.3"), run at import mid-sweep, would stop that for the jobs after it.
    (tmp_path / "app.py").write_text(
        textwrap.dedent("""
        import os, sys
        import hydra
        from hydra.utils import get_original_cwd

        @hydra.main(version_base="1.1", config_path=None)
        def app(cfg):
            runner = sorted(m for m in sys.modules if m.split(".")[0] == "runner")
            print("job", os.path.relpath(os.getcwd(), get_original_cwd()), runner)

        app()
    """)
    )
    done = subprocess.run(
        [
            sys.executable,
            "app.py",
            "-m",
            "hydra/launcher=batched",
            "+a=1,2,3",
            "hydra.sweep.dir=s",
            "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    jobs = [line for line in done.stdout.splitlines() if line.startswith("job ")]
    assert jobs == ["job s/0 []", "job s/1 []", "job s/2 []"]  # each job in its own folder
    assert "batched: 0 of 3 runs" in done.stdout
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if p.is_dir()) == ["0", "1", "2"]


@pytest.mark.parametrize("launcher_name, overrides", [("batched", [])])
class TestBatchedLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/launcher=batched", "hydra/hydra_logging=disabled", "hydra/job_logging=disabled"])],
)
class TestBatchedLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.mark.parametrize(
    "launcher_name, overrides", [("batched", ["hydra/sweeper=basic", "hydra.sweeper.max_batch_size=2"])]
)
class TestBatchedLauncherWithBatchingSweeper(BatchedSweeperTestSuite):
    pass


# ----------------------------------------------------------------------------- whose jobs are batched

RUNNER_SWEEP = [
    "hydra/launcher=batched",
    "~hydra.callbacks.sweep_end",
    "optimizer=momentum",
    "lr=0.1,0.2",
    "max_iter=3",
]


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_a_task_that_is_not_the_runners_runs_job_by_job_on_a_runner_config(hydra_sweep_runner, tmp_path, capsys):
    from hydra.core.hydra_config import HydraConfig

    seen = []

    def task(cfg):
        seen.append((cfg.lr, cfg.optimizer.lr, HydraConfig.get().job.num, os.path.relpath(os.getcwd(), tmp_path)))
        return cfg.lr * 10

    with hydra_sweep_runner(
        calling_file=__file__,
        calling_module=None,
        task_function=task,
        config_path=_conf(),
        config_name="config",
        overrides=[*RUNNER_SWEEP, "hydra.job.chdir=true"],
        temp_dir=tmp_path,
    ) as sweep:
        returns = sweep.returns[0]
    # Each job in its own folder (hydra.job.chdir), named as the runner names it, numbered as Hydra numbers it.
    assert seen == [
        (0.1, 0.1, 0, "lr=0.1/max_iter=3/optimizer=momentum"),
        (0.2, 0.2, 1, "lr=0.2/max_iter=3/optimizer=momentum"),
    ]
    assert [r.return_value for r in returns] == [1.0, 2.0]
    assert [r.overrides for r in returns] == [
        ["optimizer=momentum", "lr=0.1", "max_iter=3"],
        ["optimizer=momentum", "lr=0.2", "max_iter=3"],
    ]
    assert "batched: 0 of 2 runs" in capsys.readouterr().out
    assert not (tmp_path / "parts").exists()


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_a_task_with_run_jobs_is_batched_through_it(hydra_sweep_runner, tmp_path, capsys):
    called, batches = [], []

    def run_jobs(jobs, sweep_dir, **settings):
        batches.append((jobs, Path(sweep_dir), settings))
        return [{"status": "converged", "f": job.config["lr"] / 4} for job in jobs]

    def task(cfg):
        called.append(cfg)

    sweep = hydra_sweep_runner(
        calling_file=__file__,
        calling_module=None,
        task_function=task,
        config_path=_conf(),
        config_name="config",
        overrides=RUNNER_SWEEP,
        temp_dir=tmp_path,
    )
    sweep.run_jobs = run_jobs  # the task function Hydra hands the launcher is this object, which calls task
    with sweep:
        returns = sweep.returns[0]
    assert not called and len(batches) == 1
    jobs, sweep_dir, settings = batches[0]
    assert sweep_dir == tmp_path and settings["chunk_size"] == 1024 and callable(settings["fallback"])
    assert [(j.name, j.config["lr"], j.config["optimizer"]["momentum"], j.config["max_iter"]) for j in jobs] == [
        ("lr=0.1/max_iter=3/optimizer=momentum", 0.1, 0.9, 3),
        ("lr=0.2/max_iter=3/optimizer=momentum", 0.2, 0.9, 3),
    ]
    assert [r.return_value for r in returns] == [0.025, 0.05]
    assert "batched: 2 of 2 runs" in capsys.readouterr().out


# ----------------------------------------------------------------------------- Hydra's private API, pinned


@pytest.fixture
def loader_and_master():
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.utils import setup_globals
    from hydra.types import RunMode

    setup_globals()
    if not OmegaConf.has_resolver("runner.uid"):  # what runner.app registers; the run dir names use it
        OmegaConf.register_new_resolver("runner.uid", lambda: "abcdef")
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(_conf()))
    master = loader.load_configuration(
        "config", overrides=["hydra.sweep.dir=/tmp/unused", "optimizer=momentum"], run_mode=RunMode.MULTIRUN
    )
    return loader, master


def _private():
    from hydra_plugins.runner_batched_launcher import _hydra_private

    return _hydra_private


def _parse(lines):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(lines)


def _task(config):
    """The task config, resolved: the config without its ``hydra`` node, as ``run_job`` hands it to the task."""
    task = OmegaConf.to_container(config, resolve=False)
    task.pop("hydra")
    return OmegaConf.to_container(OmegaConf.create(task), resolve=True)


def test_private_value_overrides_applied_last_equal_the_full_composition(loader_and_master):
    from hydra.errors import ConfigCompositionException

    loader, master = loader_and_master
    options = loader.load_sweep_config(master, ["optimizer=adam"])
    for values in (["lr=0.5"], ["lr=0.5", "optimizer.betas=[0.5,0.8]", "objective.x0=[1,2]"]):
        applied = copy.deepcopy(options)
        _private().apply_overrides(_parse(values), applied)
        assert _task(applied) == _task(loader.load_sweep_config(master, ["optimizer=adam", *values]))
    for bad in (["nope=1"], ["optimizer.nope=1"], ["lr.x=2"]):  # a key that is not there, a key inside a value
        with pytest.raises(ConfigCompositionException):
            loader.load_sweep_config(master, ["optimizer=adam", *bad])
        with pytest.raises(ConfigCompositionException):
            _private().apply_overrides(_parse(bad), copy.deepcopy(options))


def test_private_overrides_dirname_is_the_jobs_override_dirname(loader_and_master):
    loader, master = loader_and_master
    settings = master.hydra.job.config.override_dirname
    for lines in (
        ["lr=0.1", "optimizer=adam"],
        ["+experiment=lr_sweep", "seed=3", "optimizer=adam", "optimizer.betas=[0.5,0.8]"],
    ):
        job = loader.load_sweep_config(master, lines)
        dirname = _private().overrides_dirname(_parse(lines), settings.exclude_keys, settings.item_sep, settings.kv_sep)
        assert dirname == job.hydra.job.override_dirname


def test_private_config_repository_tells_groups_from_keys(loader_and_master, tmp_path):
    loader, _ = loader_and_master
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "a.yaml").write_text("x: 1\n")
    repo = _private().config_repository(loader, "config", [])
    assert [repo.group_exists(k) for k in ("optimizer", "objective", "lr", "extra")] == [True, True, False, False]
    repo = _private().config_repository(loader, "config", [f"hydra.searchpath=[file://{tmp_path}]"])
    assert repo.group_exists("extra")


def test_private_sweeper_check_composes_through_load_sweep_config_and_only_it_is_answered(loader_and_master):
    from hydra.errors import ConfigCompositionException
    from hydra.plugins.sweeper import Sweeper

    loader, master = loader_and_master
    checked = []
    answer = OmegaConf.create({"answered": True})

    def check(overrides):
        checked.append(overrides)
        return None if overrides == ["nope=1"] else answer  # None: not fast-pathed, composed in full

    _private().serve_sweeper_check(loader, master, check)

    class Stub:  # what validate_batch_is_legal reads of the sweeper
        hydra_context = type("Context", (), {"config_loader": loader})()
        config = master

    Sweeper.validate_batch_is_legal(Stub(), [("lr=0.1",), ("lr=0.2",)])
    assert checked == [["lr=0.1"], ["lr=0.2"]]  # Hydra's check calls load_sweep_config itself, once a job
    with pytest.raises(ConfigCompositionException):
        Sweeper.validate_batch_is_legal(Stub(), [("nope=1",)])
    assert checked[2:] == [["nope=1"]]
    # Any other caller, or another master config, gets the full composition.
    assert loader.load_sweep_config(master, ["lr=0.1"]).hydra.job.override_dirname == "lr=0.1"
    Stub.config = master.copy()
    Sweeper.validate_batch_is_legal(Stub(), [("lr=0.3",)])
    assert len(checked) == 3
