"""The ``batched`` launcher: ``python -m runner -m hydra/launcher=batched lr=0.01,0.1 optimizer.momentum=0,0.9``.

It composes every job's config as the basic launcher would (:mod:`.compose`), hands
them to :func:`runner.batched.run_jobs`, which runs the jobs that share an objective
and an optimizer as array computations and writes their rows as chunk files in
``SWEEP_DIR/parts/``, and runs the others (scipy, configs that fail) one by one
through Hydra's ``run_job``, exactly as the basic launcher does. The sweep's end
callback then writes ``runs.parquet``, ``traces.parquet`` and the figures as usual.

Options (``hydra.launcher.<key>=...``):

* ``chunk_size`` (1024): at most this many configs in memory and in one chunk file;
* ``max_chunk_bytes`` (256 MiB): fewer configs per chunk when their traces would be larger;
* ``compose`` (``fast``): ``exact`` composes every job with ``load_sweep_config``
  (about 65 ms a job) instead of once per shape of job;
* ``fast_validation`` (true): the sweeper composes each job once more just to check it
  composes (``Sweeper.validate_batch_is_legal``, another 65 ms a job); with this on,
  that check is answered from the fast composition.

Batched jobs fire no per-job callbacks (``on_job_start``/``on_job_end``) and write no
``.hydra/`` folders; the jobs run one by one do both.
"""

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.runner_batched_launcher.compose import SweepComposer

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.runner_batched_launcher.batched_launcher.BatchedLauncher"
    chunk_size: int = 1024
    max_chunk_bytes: int = 256 * 2**20
    compose: str = "fast"
    fast_validation: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="runner")

_VALIDATE = Sweeper.validate_batch_is_legal.__code__


class BatchedLauncher(Launcher):
    def __init__(self, chunk_size: int = 1024, max_chunk_bytes: int = 256 * 2**20, compose: str = "fast",
                 fast_validation: bool = True) -> None:  # fmt: skip
        super().__init__()
        if compose not in ("fast", "exact"):
            raise ValueError(f"hydra.launcher.compose={compose}: expected fast or exact")
        for key, value in (("chunk_size", chunk_size), ("max_chunk_bytes", max_chunk_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"hydra.launcher.{key}={value}: expected an integer >= 1")
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.fast = compose == "fast"
        self.fast_validation = fast_validation
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None
        self.composer: Optional[SweepComposer] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.composer = SweepComposer(hydra_context.config_loader, config, fast=self.fast)
        if self.fast and self.fast_validation:
            self._answer_validation_fast(hydra_context.config_loader)

    def _answer_validation_fast(self, loader) -> None:
        """Serve the sweeper's composability check from the fast composition.

        ``Sweeper.validate_batch_is_legal`` composes every job and discards the config;
        for that caller only (recognised by its code object, so that every other caller
        keeps getting a config of its own) the job's overrides are applied to the
        shared composition of its shape, which raises what the full composition would.
        """
        composer, master = self.composer, self.config
        original = loader.load_sweep_config

        def load_sweep_config(master_config: DictConfig, sweep_overrides: List[str]) -> DictConfig:
            if master_config is master and sys._getframe(1).f_code is _VALIDATE:
                checked = composer.check(sweep_overrides)
                if checked is not None:
                    return checked
            return original(master_config, sweep_overrides)

        loader.load_sweep_config = load_sweep_config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from runner.app import EXIT_INTERRUPTED, sigterm_as_interrupt
        from runner.batched import Job, run_jobs
        from runner.run import config_ids

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        assert self.composer is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs, batched")
        start = time.perf_counter()

        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            composed = self.composer.job(list(overrides), idx)
            config_hash, config_id = config_ids(composed.resolved, composed.unresolved)
            jobs.append(Job(composed.resolved, composed.name, config_hash, config_id))

        def alone(i: int, job: Job) -> JobReturn:
            # Exactly the basic launcher's job: full composition, run_job, the task function.
            idx = initial_job_idx + i
            sweep_config = self.composer.sweep_config(list(job_overrides[i]), idx)
            ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=sweep_config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")  # fmt: skip
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            return ret

        try:
            with sigterm_as_interrupt():
                outcomes = run_jobs(jobs, sweep_dir, chunk_size=self.chunk_size, max_chunk_bytes=self.max_chunk_bytes,
                                    fallback=alone, part_prefix=f"jobs{initial_job_idx:06d}")  # fmt: skip
        except KeyboardInterrupt:
            print(f"interrupted: the runs so far are in {sweep_dir / 'parts'}", file=sys.stderr, flush=True)
            sys.exit(EXIT_INTERRUPTED)

        task_name = JobRuntime.instance().get("name")
        returns: List[JobReturn] = []
        batched = skipped = 0
        for overrides, outcome in zip(job_overrides, outcomes):
            if isinstance(outcome, JobReturn):
                returns.append(outcome)
                continue
            skipped += bool(outcome.get("skipped"))
            batched += not outcome.get("skipped")
            ret = JobReturn(overrides=list(overrides), working_dir=os.getcwd(), task_name=task_name,
                            status=JobStatus.COMPLETED)  # fmt: skip
            ret.return_value = _objective_value(outcome)
            returns.append(ret)
        done = f", {skipped} done already (skipped)" if skipped else ""
        print(f"batched: {batched} of {len(jobs)} runs in {time.perf_counter() - start:.2f} s{done}", flush=True)
        return returns


def _objective_value(outcome: Any) -> float:
    """What the task function returns for a run: its final f, or inf when it has none."""
    f = outcome.get("f")
    return float(f) if isinstance(f, (int, float)) and math.isfinite(f) else math.inf
