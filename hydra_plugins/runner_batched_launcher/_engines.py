"""Where a batched sweep's chunks run: ``hydra.launcher.engine=local|fork|joblib|ray|submitit``.

Every engine is one function of one interface: ``engine(work, chunks, settings)`` runs
``work(chunk)`` for every chunk (:func:`runner.batched.run_chunk`: it runs the chunk's batches
and writes its chunk files into the sweep folder itself) and yields ``(k, what work returned
for chunks[k])`` as the chunks end, in any order, or ``(k, the exception)`` for a chunk that did
not run to its end (its worker died, its job timed out, it raised). ``settings`` is the
launcher's config (:class:`.config.BatchedLauncherConf`). Closing the generator (Ctrl-C, or
the sweep stopping early) stops what still runs. The chunks are planned by the caller, the
same for every engine, and only small summaries come back (a status, a message and f per
run), so the sweep's tables are the same whatever ran it.

Each engine's library is imported when it runs, never when Hydra's plugin scan imports this
package; :data:`ENGINES` maps each name to its function and the extra that installs its library.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

Ended = Iterator[tuple[int, Any]]

log = logging.getLogger(__name__)


def local(work: Callable, chunks: Sequence, settings: Any) -> Ended:
    """One process, one chunk after another (the launcher's process): an exception propagates, as it always has.
    :func:`runner.batched.in_process`, the default of ``run_jobs``, with the engines' interface."""
    from runner.batched import in_process

    yield from in_process(work, chunks)


def forked_processes(work: Callable, chunks: Sequence, settings: Any) -> Ended:
    """Forked copies of this process (POSIX), ``n_jobs`` at a time (joblib's count: -1 every core), each running one
    chunk and sending back what it returned (pickled, through a pipe).

    A copy starts with the runner imported and the jobs composed, so a chunk starts at once: nothing is
    imported or pickled on the way in. A copy that dies fails its chunk alone. Ctrl-C (or SIGTERM)
    reaches the copies once, from this process: each ends its batch in progress and writes its chunk
    with the running configs ``interrupted``, as one process does, and no chunk starts after it. A
    process that runs another thread forks no copy (a lock the thread held would stay held in the
    copy): its chunks run here, one after another.
    """
    if threading.active_count() > 1:
        log.info("engine=fork: this process runs other threads; its chunks run in it, one after another")
        yield from local(work, chunks, settings)
        return
    workers = min(fork_workers(settings), len(chunks))
    waiting = list(range(len(chunks)))[::-1]
    running: dict[int, tuple[int, int, bytearray]] = {}  # the pipe a copy writes to: (chunk, pid, what it sent)
    interrupted = False
    try:
        while running or (waiting and not interrupted):  # after Ctrl-C, no chunk starts
            while waiting and not interrupted and len(running) < workers:
                k = waiting.pop()
                pipe, pid = _fork_chunk(work, chunks[k])
                running[pipe] = (k, pid, bytearray())
            try:
                readable, _, _ = select.select(list(running), [], [])
            except KeyboardInterrupt:
                interrupted = True
                _interrupt(running.values())
                continue
            for pipe in readable:
                k, pid, sent = running[pipe]
                data = os.read(pipe, 1 << 20)
                if data:
                    sent.extend(data)
                    continue
                del running[pipe]
                os.close(pipe)
                done = _outcome(sent, os.waitpid(pid, 0)[1])
                if isinstance(done, KeyboardInterrupt):  # a chunk interrupted while it was written: as one process
                    raise done
                yield k, done
    finally:  # stopped early (Ctrl-C, an error): the copies still running write their chunks and end
        if not interrupted:
            _interrupt(running.values())
        _reap(running)
    if interrupted:
        raise KeyboardInterrupt


def fork_workers(settings: Any) -> int:
    """The copies ``n_jobs`` asks for, by joblib's count (-1 every core, -2 all but one)."""
    from runner.store import cores

    n_jobs = settings.n_jobs
    return max(1, n_jobs if n_jobs > 0 else cores() + 1 + n_jobs)


def fork_threads(settings: Any) -> int:
    """Each copy's share of the cores."""
    return _share_of_cores(fork_workers(settings))


def _share_of_cores(processes: int) -> int:
    from runner.store import cores

    return max(1, cores() // processes)


def _fork_chunk(work: Callable, chunk: Any) -> tuple[int, int]:
    """Fork a copy that runs ``work(chunk)`` and sends ``(True, what it returned)`` or ``(False, what it raised)``;
    the end of the pipe this process reads, and the copy's pid."""
    read, write = os.pipe()
    for stream in (sys.stdout, sys.stderr):  # what this process buffered is printed once, by it
        stream.flush()
    # Signals wait until the copy has its own handlers: one that came between would stop it unsent.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(write)
        return read, pid
    code = 1
    try:  # the copy: interrupted only by this process's SIGUSR1, once, so that a Ctrl-C interrupts it once
        os.close(read)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, _interrupted_once)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        try:
            sent = pickle.dumps((True, work(chunk)))
        except BaseException as err:
            from runner.errors import picklable  # what the chunk needs is imported already

            sent = pickle.dumps((False, picklable(err)))
        with os.fdopen(write, "wb") as out:
            out.write(sent)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        code = 0
    finally:
        os._exit(code)  # never this process's exit handlers, nor the rest of its stack


_STOPS = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1} if hasattr(signal, "SIGUSR1") else set()


def _interrupted_once(signum, frame) -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    raise KeyboardInterrupt


def _outcome(sent: bytes, status: int) -> Any:
    """What a copy's chunk came to: what ``work`` returned, what it raised, or a ChildProcessError saying how the copy
    ended without sending either (killed, out of memory)."""
    try:
        return pickle.loads(bytes(sent))[1]
    except Exception:
        code = os.waitstatus_to_exitcode(status)
        how = f"with exit code {code}" if code >= 0 else f"by signal {_signal_name(-code)}"
        return ChildProcessError(f"the chunk's process ended {how} before it sent its result")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # a real-time signal: its number
        return str(signum)


def _interrupt(copies) -> None:
    for _, pid, _ in copies:
        with contextlib.suppress(ProcessLookupError):  # ended already
            os.kill(pid, signal.SIGUSR1)


def _reap(running: dict) -> None:
    """Wait for each copy to end (a second Ctrl-C kills those left). Their pipes are closed first: a copy
    whose chunk is written ends when it finds nobody to send its result to, never blocked on a full pipe."""
    for pipe in running:
        os.close(pipe)
    try:
        for _, pid, _ in running.values():
            os.waitpid(pid, 0)
    except KeyboardInterrupt:
        for _, pid, _ in running.values():
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        raise
    finally:
        running.clear()


def joblib_processes(work: Callable, chunks: Sequence, settings: Any) -> Ended:
    """Local processes (joblib's loky executor), ``n_jobs`` of them (joblib's count: -1 every core).

    A worker that dies (killed, out of memory) breaks the pool and every chunk then in it; those
    run again one at a time, so that the chunk that kills its worker is the only one that fails.
    """
    if not chunks:
        return
    workers = min(joblib_workers(settings), len(chunks))
    broken = yield from _loky_round(work, chunks, range(len(chunks)), workers)
    for k, _ in broken:  # alone in the pool: if its worker dies again, this chunk is the one that kills it
        yield from (yield from _loky_round(work, chunks, [k], 1))


def joblib_workers(settings: Any) -> int:
    """The processes ``n_jobs`` asks for (joblib's count: -1 every core, -2 all but one)."""
    from joblib import effective_n_jobs

    return max(1, effective_n_jobs(settings.n_jobs))


def start_joblib(settings: Any) -> None:
    """Start the worker processes now, and their imports of the runner, numpy and pyarrow (about 0.5 s
    each): they run while this process composes the jobs, and the pool is the one the chunks then use."""
    workers = joblib_workers(settings)
    executor = _loky_executor(workers)
    for _ in range(workers):
        executor.submit(_import_chunk_work)


def _import_chunk_work() -> None:
    import runner.batched  # noqa: F401  (what unpickling the first chunk would import)


def _loky_executor(workers: int):
    """joblib's reusable loky executor of ``workers`` processes: the same one for the same count."""
    from joblib import cpu_count
    from joblib.externals.loky import get_reusable_executor

    # numpy's BLAS in each worker gets its share of the cores, not all of them (joblib does the same).
    threads = str(max(1, cpu_count() // workers))
    env = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), threads)
    return get_reusable_executor(max_workers=workers, env=env)


def _loky_round(work: Callable, chunks: Sequence, keys, workers: int):
    """Run ``chunks[k]`` for ``k`` in ``keys`` on ``workers`` processes; yield what ends; return
    ``[(k, error)]`` for the chunks a dying worker took down with it."""
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool  # 15 ms: imported where joblib runs, not in every sweep

    executor = _loky_executor(workers)
    futures = {executor.submit(work, chunks[k]): k for k in keys}
    broken = []
    try:
        for future in as_completed(futures):
            k = futures[future]
            try:
                done = future.result()
            except BrokenProcessPool as err:
                broken.append((k, err))
                continue
            except Exception as err:
                done = err
            yield k, done
    except BaseException:  # Ctrl-C, or the caller stopped: what runs is killed, its chunks run on resume
        for future in futures:
            future.cancel()
        executor.shutdown(wait=False, kill_workers=True)
        raise
    return broken


def ray_tasks(work: Callable, chunks: Sequence, settings: Any) -> Ended:
    """Ray tasks, on the Ray instance at ``ray.address`` (a cluster), or one started here and stopped at the end.

    ``ray.init`` takes more keyword arguments of ``ray.init`` (``runtime_env``, ``num_cpus``),
    ``ray.remote`` the options of each chunk's task (``num_cpus``, ``memory``, ``max_retries``).
    """
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=settings.ray["address"], **settings.ray["init"])
    task = ray.remote(work).options(**settings.ray["remote"])
    refs = {task.remote(chunk): k for k, chunk in enumerate(chunks)}
    waiting = list(refs)
    try:
        while waiting:
            ended, waiting = ray.wait(waiting, num_returns=1)
            for ref in ended:
                try:
                    done = ray.get(ref)
                except ray.exceptions.RayTaskError as err:  # work raised: that exception, as it was raised
                    done = err.as_instanceof_cause()
                except ray.exceptions.RayError as err:  # the worker or its node died, the task was cancelled
                    done = err
                yield refs[ref], done
    except BaseException:
        for ref in waiting:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def submitit_jobs(work: Callable, chunks: Sequence, settings: Any) -> Ended:
    """submitit jobs, one per chunk, submitted together (one array job on SLURM, ``array_parallelism`` at
    a time); ``cluster=local`` runs them as local processes, all at once (for trying it out and tests).

    The options of ``hydra.launcher.submitit`` go to submitit's ``AutoExecutor``: ``folder`` (its logs
    and pickles), ``timeout_min``, ``cpus_per_task``, ``mem_gb``, ``partition``, ``array_parallelism``,
    and ``parameters``, any other of its parameters (``slurm_qos``, ``slurm_additional_parameters``).
    """
    import submitit

    options = settings.submitit
    executor = submitit.AutoExecutor(folder=options["folder"], cluster=options["cluster"])
    parameters = {
        "timeout_min": options["timeout_min"],
        "cpus_per_task": options["cpus_per_task"],
        "slurm_array_parallelism": options["array_parallelism"],
        "name": "runner-chunk",
    }
    if options["mem_gb"] is not None:
        parameters["mem_gb"] = options["mem_gb"]
    if options["partition"] is not None:
        parameters["slurm_partition"] = options["partition"]
    executor.update_parameters(**{**parameters, **options["parameters"]})
    with executor.batch():
        jobs = [executor.submit(work, chunk) for chunk in chunks]
    waiting = dict(enumerate(jobs))
    try:
        while waiting:
            for k, job in list(waiting.items()):
                if not job.done():
                    continue
                del waiting[k]
                try:
                    done = job.result()
                except Exception as err:  # failed, timed out, cancelled: submitit's error names the job
                    done = err
                yield k, done
            if waiting:
                time.sleep(options["poll_s"])
    except BaseException:
        for job in waiting.values():
            job.cancel(check=False)
        raise


def one(settings: Any) -> int:
    return 1


def local_threads(settings: Any) -> int:
    """The launcher's own process: every core it may run on."""
    from runner.store import cores

    return cores()


def joblib_threads(settings: Any) -> int:
    """Each process's share of the cores (as its BLAS gets: see :func:`_loky_executor`)."""
    return _share_of_cores(joblib_workers(settings))


def ray_threads(settings: Any) -> int:
    """The CPUs a chunk's task asks Ray for."""
    return max(1, int(settings.ray["remote"].get("num_cpus", 1)))


def submitit_threads(settings: Any) -> int:
    """The CPUs a chunk's job asks SLURM for."""
    return settings.submitit["cpus_per_task"]


def ray_workers(settings: Any) -> int:
    """The chunks a Ray instance started here runs at once (its CPUs by a task's); 1 on a cluster, whose size
    is not known before it is joined."""
    from runner.store import cores

    if settings.ray["address"] is not None:
        return 1
    cpus = settings.ray["init"].get("num_cpus") or cores()
    return max(1, int(cpus // settings.ray["remote"].get("num_cpus", 1)))


@dataclass(frozen=True)
class Engine:
    """An engine: its function; how many chunks it runs at once (the planner cuts each group into a
    multiple of that); how many threads each chunk may write its traces file with; what it starts before
    the jobs are composed; the module it needs and the extra of the project that installs it."""

    run: Callable[[Callable, Sequence, Any], Ended]
    workers: Callable[[Any], int] = one
    threads: Callable[[Any], int] = one
    start: Callable[[Any], None] | None = None
    module: str | None = None
    extra: str | None = None
    missing: Callable[[], str | None] = lambda: None  # what this system lacks for it, or None


def _no_fork() -> str | None:
    return None if hasattr(os, "fork") else "needs os.fork (Linux, macOS); engine=joblib runs local processes anywhere"


ENGINES = {
    "local": Engine(local, threads=local_threads),
    "fork": Engine(forked_processes, fork_workers, fork_threads, missing=_no_fork),
    "joblib": Engine(joblib_processes, joblib_workers, joblib_threads, start_joblib, "joblib", "joblib"),
    "ray": Engine(ray_tasks, ray_workers, ray_threads, module="ray", extra="ray"),
    "submitit": Engine(submitit_jobs, threads=submitit_threads, module="submitit", extra="submitit"),
}
CLUSTERS = ("local", "slurm")


def check(settings: Any) -> None:
    """The engine settings, before any work: a bad one raises ValueError, one line naming the key and what it takes."""
    name = settings.engine
    if name not in ENGINES:
        raise ValueError(f"hydra.launcher.engine={name}: expected one of {', '.join(ENGINES)}")
    engine = ENGINES[name]
    if (lacking := engine.missing()) is not None:
        raise ValueError(f"hydra.launcher.engine={name}: {lacking}")
    if engine.module is not None and find_spec(engine.module) is None:
        from runner.store import DISTRIBUTION  # here: Hydra's plugin scan imports this module in every app

        raise ValueError(
            f"hydra.launcher.engine={name}: needs the {engine.module} package; install the project's "
            f"{engine.extra} extra (pip install '{DISTRIBUTION}[{engine.extra}]')"
        )
    n_jobs = settings.n_jobs
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"hydra.launcher.n_jobs={n_jobs}: expected a non-zero integer (-1: every core)")
    submitit = settings.submitit
    if submitit["cluster"] not in CLUSTERS:
        raise ValueError(
            f"hydra.launcher.submitit.cluster={submitit['cluster']}: expected one of {', '.join(CLUSTERS)}"
        )
    for key in ("timeout_min", "cpus_per_task", "array_parallelism"):
        value = submitit[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"hydra.launcher.submitit.{key}={value}: expected an integer >= 1")
    poll = submitit["poll_s"]
    if isinstance(poll, bool) or not isinstance(poll, (int, float)) or not poll > 0:
        raise ValueError(f"hydra.launcher.submitit.poll_s={poll}: expected a number > 0")


def engine(settings: Any) -> Callable[[Callable, Sequence], Ended]:
    """The engine that ``settings`` names, as ``run_jobs`` calls it: ``engine(work, chunks)``."""
    run = ENGINES[settings.engine].run
    return lambda work, chunks: run(work, chunks, settings)


def workers(settings: Any) -> int:
    """How many chunks the engine that ``settings`` names runs at once."""
    return ENGINES[settings.engine].workers(settings)


def threads(settings: Any) -> int:
    """How many threads each chunk of the engine that ``settings`` names may write its traces file with."""
    return ENGINES[settings.engine].threads(settings)


def start(settings: Any) -> None:
    """Start what the engine that ``settings`` names needs before its first chunk (joblib: its processes)."""
    begin = ENGINES[settings.engine].start
    if begin is not None:
        begin(settings)
