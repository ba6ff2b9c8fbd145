"""The batched launcher's work: the runner's jobs through their task's ``run_jobs``, any other task's one by one.

The runner's task function carries the capability ``run_jobs`` (:func:`runner.batched.run_jobs`,
given by ``runner.app``): the launcher composes every job's config (:mod:`.compose`) and
hands them to it, and it runs the jobs that share an objective and an optimizer as array
computations and the others through ``fallback``, here Hydra's own ``run_job``, exactly as
Hydra's basic launcher runs a job. A task without it is never batched: each of its jobs
is composed and run by ``run_job``, as the basic launcher does, so the launcher passes
Hydra's own launcher test suites with any app.

The runner is imported only to launch the runner's jobs, and never ``runner.app``
(its ``@hydra.main`` runs at import); this module imports only Hydra at the top.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import open_dict

from hydra_plugins.runner_batched_launcher import _hydra_private as hydra_private
from hydra_plugins.runner_batched_launcher.compose import SweepComposer

log = logging.getLogger(__name__)


def batch_entry(task_function: Any) -> Callable | None:
    """The task's ``run_jobs`` capability (how it runs many jobs at once), or None: it runs one job at a time."""
    run_jobs = getattr(task_function, "run_jobs", None)
    return run_jobs if callable(run_jobs) else None


def setup(launcher: Any) -> None:
    """For a task that batches: the sweep's composer, and the sweeper's check of each job answered by it."""
    launcher.composer = None
    if batch_entry(launcher.task_function) is None:
        return  # composed and run as the basic launcher does: no fast path to keep in line with Hydra
    loader = launcher.hydra_context.config_loader
    launcher.composer = SweepComposer(loader, launcher.config, fast=launcher.fast)
    if launcher.fast and launcher.fast_validation:
        hydra_private.serve_sweeper_check(loader, launcher.config, launcher.composer.check)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    setup_globals()
    assert launcher.config is not None and launcher.hydra_context is not None and launcher.task_function is not None
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run_jobs = batch_entry(launcher.task_function)
    if run_jobs is None:
        log.info(f"Launching {len(job_overrides)} jobs one at a time (the task function has no run_jobs)")
        returns = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            returns.append(run_alone(launcher, overrides, idx))
        print(
            f"batched: 0 of {len(returns)} runs in {time.perf_counter() - start:.2f} s (the task function runs "
            f"one job at a time)",
            flush=True,
        )
        return returns
    from runner.store import folder_lock

    # One launch at a time per sweep folder: a second one waits, then resumes what the first did.
    with folder_lock(sweep_dir, "sweep"):
        return _launch_batched(launcher, run_jobs, job_overrides, initial_job_idx, sweep_dir, start)


def plan(launcher: Any, jobs: Sequence[Any], sweep_dir: str | Path) -> list[str]:
    """What :func:`launch` would do with each job, by the runner's own planner and resume rule
    (``runner.batched.plan_jobs``); a task that does not batch runs each job alone."""
    if batch_entry(launcher.task_function) is None:
        return ["alone"] * len(jobs)
    from runner.batched import plan_jobs

    return plan_jobs(jobs, sweep_dir)


def run_alone(launcher: Any, overrides: Sequence[str], idx: int) -> JobReturn:
    """Job ``idx`` exactly as Hydra's basic launcher runs it: full composition, ``run_job``, the task function."""
    config = launcher.config
    sweep_config = launcher.hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    ret = run_job(
        hydra_context=launcher.hydra_context,
        task_function=launcher.task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return ret


def _launch_batched(
    launcher: Any,
    run_jobs: Callable,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    sweep_dir: Path,
    start: float,
) -> list[JobReturn]:
    from hydra_plugins.runner_batched_launcher import _engines as engines
    from runner.batched import Job
    from runner.config import config_ids
    from runner.interrupt import EXIT_FAILED, EXIT_INTERRUPTED, sigterm_as_interrupt
    from runner.progress import current_sweep

    log.info(f"Launching {len(job_overrides)} jobs, batched")
    if (sweep := current_sweep()) is not None:
        sweep.counted_here()  # by chunks, as they end: the watcher of job folders stops
    engines.start(launcher)
    jobs = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        composed = launcher.composer.job(list(overrides), idx)
        config_hash, config_id = config_ids(composed.resolved, composed.unresolved)
        jobs.append(Job(composed.resolved, composed.name, config_hash, config_id))

    def alone(i: int, job: Job) -> JobReturn:
        return run_alone(launcher, job_overrides[i], initial_job_idx + i)

    try:
        with sigterm_as_interrupt():
            outcomes = run_jobs(
                jobs,
                sweep_dir,
                chunk_size=launcher.chunk_size,
                max_chunk_bytes=launcher.max_chunk_bytes,
                fallback=alone,
                part_prefix=f"jobs{initial_job_idx:06d}",
                # the sweep's progress (runner.app.SweepProgress, when configured): chunks as they end
                progress=sweep.chunk_ended if (sweep := current_sweep()) is not None else None,
                engine=engines.engine(launcher),
                workers=engines.workers(launcher),
                threads=engines.threads(launcher),
            )
    except KeyboardInterrupt as err:  # a second Ctrl-C while a chunk was written names the chunk (WriteInterrupted)
        what = f"{err}; " if str(err) else ""
        print(f"interrupted: {what}the runs so far are in {sweep_dir / 'parts'}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as err:  # a chunk could not be written (disk full): the chunks written before it are kept
        print(f"error: {err}; the runs so far are in {sweep_dir / 'parts'}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)

    task_name = JobRuntime.instance().get("name")
    returns: list[JobReturn] = []
    batched = skipped = 0
    for overrides, outcome in zip(job_overrides, outcomes, strict=False):
        if isinstance(outcome, JobReturn):
            returns.append(outcome)
            continue
        skipped += bool(outcome.get("skipped"))
        batched += not outcome.get("skipped")
        ret = JobReturn(
            overrides=list(overrides), working_dir=os.getcwd(), task_name=task_name, status=JobStatus.COMPLETED
        )
        ret.return_value = _objective_value(outcome)
        returns.append(ret)
    done = f", {skipped} done already (skipped)" if skipped else ""
    print(f"batched: {batched} of {len(jobs)} runs in {time.perf_counter() - start:.2f} s{done}", flush=True)
    return returns


def _objective_value(outcome: Any) -> float:
    """What the task function returns for a run: its final f, or inf when it has none."""
    f = outcome.get("f")
    return float(f) if isinstance(f, (int, float)) and math.isfinite(f) else math.inf
