"""The command line, ``python -m runner [overrides]``: the one module that imports Hydra.

It composes the config, hands it to :func:`runner.run.run` (plain Python), prints
one line and returns the final f, so that a Hydra sweeper can minimise it. After a
multirun, :class:`SweepEnd` calls :func:`finish_sweep`: the tables, the figures, the count.
"""

from __future__ import annotations

import gc
import importlib.abc
import math
import os
import sys
import uuid
from collections import Counter
from pathlib import Path

import hydra
import pyarrow as pa
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, InstantiationException, MissingConfigException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner.batched import run_jobs
from runner.interrupt import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, sigterm_as_interrupt
from runner.run import run, shown_path, summary_line
from runner.stopping import TerminalProgress
from runner.store import folder_lock, job_dir, remove_stale_temps
from runner.tables import status_counts, write_tables
from runner.trace import STATUSES


def config_dir() -> str:
    """``conf/``: packaged inside ``runner`` by a wheel, or beside it in the source tree."""
    here = Path(__file__).resolve().parent
    installed = here / "conf"
    return str(installed if (installed / "config.yaml").is_file() else here.parent / "conf")


# A short random suffix keeps two runs started in the same second out of each other's folder.
if not OmegaConf.has_resolver("runner.uid"):
    OmegaConf.register_new_resolver("runner.uid", lambda: uuid.uuid4().hex[:6], use_cache=True)
# hydra.sweep.subdir: a job's folder from its overrides, cut short with a hash where it would be too long or unsafe.
if not OmegaConf.has_resolver("runner.job_dir"):
    OmegaConf.register_new_resolver("runner.job_dir", lambda dirname="": job_dir(str(dirname)))


class SweepEnd(Callback):
    """After every multirun: the sweep's tables and figures, a count of runs by status,
    and a non-zero exit code only if a job failed (a diverged run is a result).

    ``hydra.callbacks.sweep_end.figures=false`` skips the figures (for sweeps of
    thousands of runs, where drawing takes longer than running).
    """

    def __init__(self, figures: bool = True):
        self.figures = figures

    def on_multirun_start(self, config, **kwargs) -> None:
        """Before any job: refuse a job folder outside the sweep folder, and remove what killed writes left."""
        subdir = outside_sweep_dir(config)
        if subdir is not None:
            print(
                f"error: hydra.sweep.subdir={subdir}: expected a folder inside the sweep folder "
                f"(a relative path without ..)",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(EXIT_BAD_CONFIG)  # SystemExit passes Hydra's callback guard, which only warns on an Exception
        remove_stale_temps(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            counts = finish_sweep(sweep_dir, figures=self.figures, config_dirs=config_folders(config))
        except KeyboardInterrupt as err:  # a Ctrl-C while the tables are written: the runs are in their files
            what = str(err) or "the sweep's tables were not written (interrupted)"
            print(f"interrupted: {what}; its runs are in {sweep_dir}", file=sys.stderr, flush=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as err:  # Hydra would only warn and exit 0: say it, and fail the command
            print(
                f"error: the sweep's tables were not written ({type(err).__name__}: {err}); its runs are in "
                f"{sweep_dir}",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(EXIT_FAILED)
        if counts["failed"] or counts["interrupted"]:
            sys.exit(EXIT_FAILED)


def outside_sweep_dir(config) -> str | None:
    """``hydra.sweep.subdir`` as set, when it names a folder outside the sweep folder (absolute, or up
    through ``..``); None when it stays inside. A subdir that only resolves per job is checked as written."""
    raw = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")
    try:
        resolved = OmegaConf.select(config, "hydra.sweep.subdir", throw_on_resolution_failure=True)
    except Exception:  # refers to a job's own values (hydra.job.num): the written text is what can be checked
        resolved = raw
    for value in (raw, resolved):
        text = str(value or "")
        if "${" in text:
            continue
        normal = os.path.normpath(text) if text else ""
        if os.path.isabs(text) or normal == ".." or normal.startswith(".." + os.sep):
            return str(raw)
    return None


def count_line(counts: Counter, where: Path) -> str:
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    return f"sweep: {sum(counts.values())} runs: {parts}  ({where})"


def config_folders(config) -> list[str]:
    """The config folders the sweep was composed from (conf/ and the user's --config-dir, searchpath)."""
    sources = OmegaConf.select(config, "hydra.runtime.config_sources") or []
    return [str(s.path) for s in sources if s.get("schema") == "file" and s.get("path")]


def finish_sweep(sweep_dir: str | Path, *, figures: bool = True, config_dirs=()) -> Counter:
    """Write the sweep's tables (and figures), print the count of runs by status, return it.

    The figures build the objectives of the project's registry and of ``config_dirs`` (the folders
    the sweep's configs came from), never one that only the sweep's files name.
    """
    sweep_dir = Path(sweep_dir)
    with folder_lock(sweep_dir, "sweep"):  # two sweeps ending in one folder write its tables in turn
        remove_stale_temps(sweep_dir)
        runs = write_tables(sweep_dir)
    counts = status_counts(runs)
    if figures:
        draw_figures(sweep_dir, config_dirs)
    print(count_line(counts, sweep_dir), flush=True)
    return counts


def draw_figures(sweep_dir: Path, config_dirs=()) -> None:
    """The figures that fit the sweep, into ``figures/``; a figure that fails never costs the tables."""
    from runner.plot import draw, trust_config_dir  # matplotlib is imported only when figures are drawn

    try:
        for folder in config_dirs:
            trust_config_dir(folder)
        draw(sweep_dir)
    except Exception as err:  # the tables are written; say what went wrong and go on
        print(f"figures: not drawn ({type(err).__name__}: {err})", flush=True)


def batches_with(run_many):
    """Give the task function the capability ``run_jobs``: how a sweep of it runs many jobs at once.

    The batched launcher (``hydra/launcher=batched``) batches a task that carries it, by
    calling ``task.run_jobs`` (:func:`runner.batched.run_jobs`), and runs any other task one
    job at a time; it never imports this module, whose ``@hydra.main`` runs at import.
    """

    def mark(task):
        task.run_jobs = run_many
        return task

    return mark


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
@batches_with(run_jobs)
def main(cfg) -> float:
    hydra_cfg = HydraConfig.get()
    single_run = hydra_cfg.mode == RunMode.RUN
    progress = TerminalProgress() if single_run and sys.stderr.isatty() else None
    try:
        with sigterm_as_interrupt():
            # its own folder only: a job folder may hold another job's (lr=0.1 and lr=0.1/seed=1)
            remove_stale_temps(Path(hydra_cfg.runtime.output_dir), recursive=False)
            summary = run(cfg, hydra_cfg.runtime.output_dir, progress=progress)
    except OSError as err:  # the run's files could not be written (disk full): what and why, in one line
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt as err:  # a second Ctrl-C, while the stopped run's files were written
        print(f"interrupted: {err or 'the run was not written'}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    if progress is not None:
        progress.close()
    # The folder as the user gave it: relative to where they are, unless they named it in full.
    configured = hydra_cfg.run.dir if single_run else hydra_cfg.sweep.dir
    where = summary["output_dir"] if Path(configured).is_absolute() else shown_path(summary["output_dir"])
    if summary.get("skipped"):
        print(f"skipped: {where} already holds this run ({summary['status']})", flush=True)
    else:
        failed = summary["status"] == "failed"
        print(summary_line(summary, where), file=sys.stderr if failed else sys.stdout, flush=True)
        if summary["status"] == "interrupted":
            sys.exit(EXIT_INTERRUPTED)
        if single_run and failed:
            sys.exit(EXIT_BAD_CONFIG if summary["traceback"] is None else EXIT_FAILED)
    f = summary.get("f")
    return float(f) if isinstance(f, (int, float)) and math.isfinite(f) else math.inf


def cli() -> None:
    """``python -m runner``: Hydra's command line, with its config errors on one line.

    Hydra prints a bad override (an unknown option or key) over several lines;
    here it becomes one line naming the key and what is allowed, with exit code
    2 like every other bad input. ``HYDRA_FULL_ERROR=1`` keeps Hydra's own report.
    """
    # Everything imported so far (numpy, pyarrow, Hydra, ...) lives until the process exits:
    # keep it out of the collections that composing configs triggers, and out of the last
    # one at exit (about 0.1 s of a 1,000-job batched sweep).
    gc.freeze()
    compose_primary_once()
    pyarrow_without_pandas()
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let the exception reach us instead of Hydra's printer
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    except BrokenPipeError:  # output piped into `head`: stop quietly, as the docs of sys advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def compose_primary_once() -> None:
    """Let a multirun compose its primary config once, where Hydra 1.3 composes it twice (0.1-0.2 s of each sweep).

    Hydra composes the config first only to read ``hydra.mode`` (``Hydra.get_mode``, which drops
    it), then again for the multirun, with the same overrides and mode, plus ``hydra.mode=MULTIRUN``
    when the config sets no mode. The second composition takes the first one instead: Hydra's
    last step of composition, applying a value override, applies that one; then it checks, as
    Hydra does, that no Hydra setting is swept. Any other composition (a single run, a job, a
    different list of overrides) composes as before. Only ``python -m runner`` installs this.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    load = ConfigLoaderImpl.load_configuration
    if getattr(load, "reuses_mode_composition", False):
        return

    def load_configuration(self, config_name, overrides, run_mode, from_shell=True, validate_sweep_overrides=True):
        kept = self.__dict__.pop("_runner_mode_composition", None)
        if kept is not None and run_mode == RunMode.MULTIRUN and validate_sweep_overrides:
            key, cfg = kept
            same, extra = list(overrides[: len(key[1])]), list(overrides[len(key[1]) :])
            if key == (config_name, same, from_shell) and extra in ([], ["hydra.mode=MULTIRUN"]):
                lines = OmegaConf.to_container(cfg.hydra.overrides.hydra, resolve=False)  # as written, ${...} kept
                parsed = OverridesParser.create().parse_overrides([*lines, *extra])
                # Only a swept Hydra override is refused in a multirun; every other one is in cfg as composed.
                self.validate_sweep_overrides_legal(parsed, run_mode, from_shell)
                if extra:
                    ConfigLoaderImpl._apply_overrides_to_config(parsed[-1:], cfg)
                    cfg.hydra.overrides.hydra.append(extra[0])
                return cfg
        cfg = load(self, config_name, overrides, run_mode, from_shell, validate_sweep_overrides)
        if run_mode == RunMode.MULTIRUN and not validate_sweep_overrides:  # Hydra.get_mode: read, then dropped
            self._runner_mode_composition = ((config_name, list(overrides), from_shell), cfg)
        return cfg

    load_configuration.reuses_mode_composition = True
    ConfigLoaderImpl.load_configuration = load_configuration


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            raise ModuleNotFoundError("pandas is imported when it is needed", name=name)
        return None


def pyarrow_without_pandas() -> None:
    """Keep pyarrow from importing pandas at its first array: 0.3-0.5 s of every command that never uses pandas.

    pyarrow asks once, at its first array or table, whether pandas imports (to tell a DataFrame
    from a dict); told that it does not, it asks again wherever it needs pandas (``to_pandas``,
    ``from_pandas``), so :func:`runner.load` and the figures get pandas as before. Until then,
    a pandas object handed to ``pa.table``/``pa.array`` is not recognised: the runner hands it none.
    Only ``python -m runner`` calls this, and only while pandas is not imported yet.
    """
    if "pandas" in sys.modules:
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.lib._pandas_api.have_pandas  # noqa: B018 (the check pyarrow makes at its first array, made now)
    finally:
        sys.meta_path.remove(finder)


def one_line(err: Exception) -> str:
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return f"{group}={option}: expected one of {', '.join(err.options)}"
    if isinstance(err, InstantiationException) and isinstance(err.__cause__, ValueError):
        return str(err.__cause__)  # a plugin's own check of its settings (hydra.launcher.chunk_size=0)
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and cause.full_key and cause.parent_node is not None:
        keys = [k for k in cause.parent_node if not str(k).startswith("_") and k != "hydra"]
        where = cause.full_key.rpartition(".")[0] or "the top level"
        return f"{cause.full_key}: not a key of {where}; its keys are {', '.join(map(str, keys))}"
    text = str(err)
    if err.__cause__ is not None and str(err.__cause__) not in text:
        text += "\n" + str(err.__cause__)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("full_key:", "object_type=", "reference_type="))]
    return " ".join(lines)
