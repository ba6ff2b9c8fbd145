"""The ``batched`` launcher: ``python -m runner -m hydra/launcher=batched lr=0.01,0.1 optimizer.momentum=0,0.9``.

For the runner's task (a task function with the capability ``run_jobs``, which
``runner.app.main`` has), it composes every job's config as the basic launcher would
(:mod:`.compose`) and hands them to ``run_jobs`` (:func:`runner.batched.run_jobs`), which
runs the jobs that share an objective and an optimizer as array computations and writes
their rows as chunk files in ``SWEEP_DIR/parts/``, and runs the others (scipy, configs
that fail) one by one through Hydra's ``run_job``, exactly as the basic launcher does. The
sweep's end callback then writes ``runs.parquet``, ``traces.parquet`` and the figures as
usual. Any other task function runs job by job through ``run_job``, as with
``hydra/launcher=basic``. Either way it prints ``batched: N of M runs in T s``.

Options (``hydra.launcher.<key>=...``, :class:`.config.BatchedLauncherConf`):

* ``chunk_size`` (1024): at most this many configs in memory and in one chunk file;
* ``max_chunk_bytes`` (256 MiB): fewer configs per chunk when their traces would be larger;
* ``compose`` (``fast``): ``exact`` composes every job with ``load_sweep_config``
  (about 65 ms a job) instead of once per shape of job;
* ``fast_validation`` (true): the sweeper composes each job once more just to check it
  composes (``Sweeper.validate_batch_is_legal``, another 65 ms a job); with this on,
  that check is answered from the fast composition;
* ``engine`` (``local``): where the chunks run, :mod:`._engines`: ``local`` (this process),
  ``joblib`` (``n_jobs`` local processes, -1 every core), ``ray`` (options ``ray.*``),
  ``submitit`` (options ``submitit.*``: SLURM array jobs, or local processes).

Batched jobs fire no per-job callbacks (``on_job_start``/``on_job_end``) and write no
``.hydra/`` folders; the jobs run one by one do both.
"""

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class BatchedLauncher(Launcher):
    def __init__(
        self,
        chunk_size: int = 1024,
        max_chunk_bytes: int = 256 * 2**20,
        compose: str = "fast",
        fast_validation: bool = True,
        engine: str = "local",
        n_jobs: int = -1,
        ray: Any = None,
        submitit: Any = None,
    ) -> None:
        super().__init__()
        from hydra_plugins.runner_batched_launcher import _engines as engines
        from hydra_plugins.runner_batched_launcher.config import RayConf, SubmititConf

        self.engine, self.n_jobs = engine, n_jobs
        # Plain containers, what ray.init and submitit take: the given options (resolved where Hydra's config
        # has them: the submitit folder is in the sweep's) over the defaults.
        self.ray = _options(RayConf, ray)
        self.submitit = _options(SubmititConf, submitit)
        engines.check(self)  # before any work: an unknown engine, its library missing, a bad option
        if compose not in ("fast", "exact"):
            raise ValueError(f"hydra.launcher.compose={compose}: expected fast or exact")
        # runner.errors.check_count's rule, written out: importing anything of runner/ runs runner/__init__
        # (run, tables, numpy, pyarrow), and the launcher of another app's sweep imports no runner module.
        for key, value in (("chunk_size", chunk_size), ("max_chunk_bytes", max_chunk_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"hydra.launcher.{key}={value}: expected an integer >= 1")
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.fast = compose == "fast"
        self.fast_validation = fast_validation
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self.composer: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra_plugins.runner_batched_launcher import _core

        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        _core.setup(self)

    def plan(self, jobs: Sequence[Any], sweep_dir: str) -> list[str]:
        """How ``launch`` would run each of ``jobs`` (``runner.batched.Job``), with nothing run or written:
        ``"done"``, ``"batched"`` or ``"alone"`` (a dry run, ``runner --dry-run``)."""
        from hydra_plugins.runner_batched_launcher import _core

        return _core.plan(self, jobs, sweep_dir)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.runner_batched_launcher import _core

        return _core.launch(self, job_overrides, initial_job_idx)


def _options(defaults: type, given: Any) -> dict:
    if isinstance(given, DictConfig):
        given = OmegaConf.to_container(given, resolve=True)
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(defaults), given or {}))
