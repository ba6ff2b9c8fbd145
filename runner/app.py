"""The command line, ``python -m runner [overrides]``: the one module that imports Hydra.

It composes the config, hands it to :func:`runner.run.run` (plain Python), prints
one line and returns the final f, so that a Hydra sweeper can minimise it. After a
multirun, :class:`SweepEnd` calls :func:`finish_sweep`: the tables, the figures, the count.
"""

from __future__ import annotations

import gc
import importlib.abc
import logging
import math
import os
import re
import sys
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import hydra
import pyarrow as pa
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.errors import ConfigCompositionException, HydraException, InstantiationException, MissingConfigException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from runner.batched import run_jobs
from runner.hints import missing_plugin
from runner.interrupt import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, sigterm_as_interrupt
from runner.progress import RunBar, check_show, current_sweep, display, end_sweep, start_sweep
from runner.run import run, shown_path, summary_line
from runner.store import MULTIRUN_FILE, SUMMARY_FILE, atomic_write, folder_lock, job_dir, remove_stale_temps
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
    """After every multirun: the sweep's tables, figures and report page, a count of runs by status,
    the best configs, and a non-zero exit code only if a job failed (a diverged run is a result).
    After a single run: its report page, in its folder.

    ``hydra.callbacks.sweep_end.figures=false`` skips the figures (for sweeps of
    thousands of runs, where drawing takes longer than running); ``report=false`` the page.
    """

    def __init__(self, figures: bool = True, report: bool = True):
        self.figures = figures
        self.report = report

    def on_run_end(self, config, **kwargs) -> None:
        """After a single run: its page, ``report.html`` in its folder. The run still ends with its one line,
        which names the folder; a page that fails adds one line saying why."""
        hydra_cfg = getattr(kwargs.get("job_return"), "hydra_cfg", None)  # HydraConfig is unset by now
        output_dir = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir") if hydra_cfg is not None else None
        if self.report and output_dir:
            output_dir = Path(output_dir)
            if (output_dir / SUMMARY_FILE).is_file() and not isinstance(page := write_report_page(output_dir), Path):
                print(f"report: {page}", flush=True)

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
        remember_sweep_folder(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            counts = finish_sweep(
                sweep_dir, figures=self.figures, report=self.report, config_dirs=config_folders(config)
            )
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


@dataclass(frozen=True)
class _FolderBefore:
    """A sweep folder as it was before the sweeper wrote its ``multirun.yaml`` (Hydra writes it first)."""

    folder: Path
    created: Path | None  # the outermost folder of its path that did not exist yet
    names: frozenset[str]  # what it held
    record: bytes | None  # the multirun.yaml of the sweep it held


_sweep_before: _FolderBefore | None = None


def remember_sweep_folder(folder: Path) -> None:
    """Note what ``folder`` holds before this multirun writes to it, for :func:`restore_sweep_folder`."""
    global _sweep_before
    created = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        created = path
    try:
        names = frozenset(p.name for p in folder.iterdir()) if created is None else frozenset()
        record = (folder / MULTIRUN_FILE).read_bytes() if MULTIRUN_FILE in names else None
    except OSError:  # not readable: nothing to put back (the sweep says why when it writes there)
        _sweep_before = None
        return
    _sweep_before = _FolderBefore(folder, created, names, record)


def restore_sweep_folder() -> None:
    """After a bad override stopped a multirun before any job wrote to its folder: the folder as it was.

    A bad swept value is only found when a job is composed, after Hydra's sweeper wrote
    ``multirun.yaml``: that file would be left in a new folder, or would replace the record of the
    sweep an existing folder holds. Once a job has written to the folder (its first file), the file is
    the record of the command that made those runs, and stays.
    """
    global _sweep_before
    before, _sweep_before = _sweep_before, None
    if before is None:
        return
    folder, record = before.folder, before.folder / MULTIRUN_FILE
    try:
        if {p.name for p in folder.iterdir()} - {MULTIRUN_FILE} != before.names - {MULTIRUN_FILE}:
            return
        if before.record is not None:
            atomic_write(record, lambda tmp: Path(tmp).write_bytes(before.record))
        else:
            record.unlink(missing_ok=True)
        for path in (folder, *folder.parents) if before.created is not None else ():
            path.rmdir()  # made for this sweep, and empty again
            if path == before.created:
                break
    except OSError:  # not ours to put back (gone, or written meanwhile): leave it
        return


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


def finish_sweep(sweep_dir: str | Path, *, figures: bool = True, report: bool = True, config_dirs=()) -> Counter:
    """Write the sweep's tables (and figures, and its report page, which embeds them), print the count of
    runs by status, the best configs (:func:`runner.best.best_table`) and where the page is; return the count.

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
    from runner.best import best_configs, best_table, rank_configs

    if report:  # the page reads the runs as a DataFrame: pandas, imported here, not while the jobs run
        frame = runs.to_pandas()
        best = best_configs(frame)  # ranked once, for the page and the lines below
        page = write_report_page(sweep_dir, runs=frame, best=best)
    else:  # the same ranking from the arrow table: no pandas (0.35 s) at the end of a sweep without a page
        best, page = rank_configs(runs), None
    print(count_line(counts, sweep_dir), flush=True)
    if text := best_table(best=best):
        print(text, flush=True)
    if page is not None:
        print(f"report: {page}", flush=True)
    return counts


def write_report_page(folder: Path, **given) -> Path | str:
    """Write the folder's report page (:mod:`runner.report`), after its tables and figures: its path, or the
    text saying why it was not written; a page that fails never costs the tables or the figures. ``given``:
    what the caller has already read or computed (``runs``, ``best``), passed on to :func:`write_report`."""
    from runner.report import write_report  # plotly's and itables' files are read only when a page is written

    try:
        return write_report(folder, **given)
    except Exception as err:
        return f"not written ({type(err).__name__}: {err})"


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
    # Warnings go to the logger py.warnings while the job runs: to runner.log, and to stderr as
    # before (conf/hydra/job_logging/runner.yaml). catch_warnings forgets which warnings were
    # shown already, so that every job of a sweep run in one process logs its own.
    with warnings.catch_warnings():
        logging.captureWarnings(True)
        try:
            return run_task(cfg)
        finally:
            logging.captureWarnings(False)


def run_task(cfg) -> float:
    """One job: its run, its end line, and runner.log's lines (logger ``runner``: the file only)."""
    started = time.perf_counter()
    hydra_cfg = HydraConfig.get()
    single_run = hydra_cfg.mode == RunMode.RUN
    log.info("overrides: %s", " ".join(hydra_cfg.overrides.task) or "none")
    show = OmegaConf.select(hydra_cfg, "callbacks.progress.show", default="auto")
    # A job of a sweep shows no bar of its own: the sweep's bar counts the jobs.
    progress = RunBar(run_total(cfg)) if single_run and display(show) == "bar" else None
    try:
        with sigterm_as_interrupt():
            # its own folder only: a job folder may hold another job's (lr=0.1 and lr=0.1/seed=1)
            remove_stale_temps(Path(hydra_cfg.runtime.output_dir), recursive=False)
            summary = run(cfg, hydra_cfg.runtime.output_dir, progress=progress)
    except OSError as err:  # the run's files could not be written (disk full): what and why, in one line
        close(progress)
        log.error(f"error: {err}")
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt as err:  # a second Ctrl-C, while the stopped run's files were written
        close(progress)
        what = str(err) or "the run was not written"  # a bare Ctrl-C says nothing; a write cut short names its file
        log.warning(f"interrupted: {what}")
        print(f"interrupted: {what}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    close(progress)
    # The folder as the user gave it: relative to where they are, unless they named it in full.
    configured = hydra_cfg.run.dir if single_run else hydra_cfg.sweep.dir
    where = summary["output_dir"] if Path(configured).is_absolute() else shown_path(summary["output_dir"])
    if summary.get("skipped"):
        print(f"skipped: {where} already holds this run ({summary['status']})", flush=True)
        log.info(f"skipped: {where} already holds this run ({summary['status']})")
    else:
        failed = summary["status"] == "failed"
        line = summary_line(summary, where)
        print(line, file=sys.stderr if failed else sys.stdout, flush=True)
        log_end(line, summary, time.perf_counter() - started)
        if summary["status"] == "interrupted":
            sys.exit(EXIT_INTERRUPTED)
        if single_run and failed:
            sys.exit(EXIT_BAD_CONFIG if summary["traceback"] is None else EXIT_FAILED)
    f = summary.get("f")
    return float(f) if isinstance(f, (int, float)) and math.isfinite(f) else math.inf


log = logging.getLogger("runner")
# The level of a run's end line in runner.log, by status (anything else is INFO).
END_LEVELS = {"failed": logging.ERROR, "diverged": logging.WARNING, "interrupted": logging.WARNING}


def log_end(line: str, summary: dict, seconds: float) -> None:
    """runner.log's last lines: the end line as printed, the wall time, and a failure's traceback."""
    log.log(END_LEVELS.get(summary["status"], logging.INFO), line)
    run_time = summary.get("wall_time_s")
    run_text = f" (the run itself {run_time:.3f} s)" if isinstance(run_time, (int, float)) else ""
    log.info(f"wall time: {seconds:.3f} s{run_text}")
    if summary.get("traceback"):
        log.error(summary["traceback"].rstrip())


def close(progress) -> None:
    if progress is not None:
        progress.close()


def run_total(cfg) -> int | None:
    """The bar's total, ``max_iter``, when it is a count (run() rejects any other value, after the bar is made)."""
    max_iter = cfg.get("max_iter")
    return max_iter if isinstance(max_iter, int) and not isinstance(max_iter, bool) and max_iter >= 0 else None


class SweepProgress(Callback):
    """Progress of a multirun (:class:`runner.progress.SweepProgress`): jobs done out of the sweep's total, by
    status, and the time left; ``SWEEP_DIR/sweep.log`` gets a line per job or chunk that ended.

    ``hydra.callbacks.progress.show``: ``auto`` (a bar when stderr is a terminal, one line per
    event otherwise), ``true`` (a bar always) or ``false`` (nothing shown; ``TQDM_DISABLE=1`` too).
    A single run reads the same key for its own bar.
    """

    def __init__(self, show="auto"):
        self.show = check_show(show)
        self.pid = None  # the sweep's process; joblib sends a copy of the callbacks to each worker

    def on_multirun_start(self, config, **kwargs) -> None:
        self.pid = os.getpid()
        start_sweep(config.hydra.sweep.dir, sweep_size(config), self.show)

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if os.getpid() == self.pid:  # a job of a launcher that runs them in this process
            sweep = current_sweep()
            if sweep is not None:
                failed = job_return.status == JobStatus.FAILED  # the task raised: no summary may say so
                sweep.job_ended(config.hydra.runtime.output_dir, "failed" if failed else None)

    def on_multirun_end(self, config, **kwargs) -> None:
        end_sweep()


def sweep_size(config) -> int | None:
    """How many jobs the sweep launches: the sweeper's ``n_trials`` (Optuna), or, for a sweeper that splits
    a grid as the basic sweeper does (``split_arguments``), its params and the command line's overrides as
    Hydra's parser and that split expand them; None when neither tells (a sweep over ``glob()`` of options).
    """
    n_trials = OmegaConf.select(config, "hydra.sweeper.n_trials")
    if isinstance(n_trials, int):
        return n_trials
    try:
        split = getattr(get_class(config.hydra.sweeper._target_), "split_arguments", None)
        if split is None:
            return None
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        lines = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
        batches = split(OverridesParser.create().parse_overrides(lines), None)
    except Exception:  # the sweeper itself reports a bad override
        return None
    return sum(len(batch) for batch in batches)


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
    list_paths_on_one_line()
    pyarrow_without_pandas()
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let the exception reach us instead of Hydra's printer
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        restore_sweep_folder()
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


def list_paths_on_one_line() -> None:
    """Let an override whose key names a list's item by a word (``optimizer.betas.x=1``) fail as a bad
    override does: one line naming it, exit code 2.

    Hydra applies each value override with ``OmegaConf.update``, which reads the key's part under a
    list as an index, and a word there raises a bare ValueError; Hydra names the override only for
    OmegaConf's own errors, so that one ended the command in a traceback. The overrides are applied as
    Hydra applies them, one after another. Only ``python -m runner`` installs this.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    apply = ConfigLoaderImpl._apply_overrides_to_config
    if getattr(apply, "names_the_override", False):
        return

    def apply_overrides(overrides, cfg) -> None:
        for override in overrides:
            try:
                apply([override], cfg)
            except ValueError as err:
                if isinstance(err, OmegaConfBaseException):  # a value of the wrong type: one_line names it
                    raise
                word = re.search(r"for int\(\) with base 10: '(.*)'$", str(err))
                what = f"{word.group(1)} is not an index of the list there (expected 0, 1, ...)" if word else str(err)
                raise ConfigCompositionException(f"{override.input_line}: {what}") from None

    apply_overrides.names_the_override = True
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply_overrides)


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


def _suggestion(node, name: str, keys: list[str], prefix: str) -> str:
    """``; did you mean K?`` for a key ``name`` that ``node`` lacks: the key of that name one level down
    (``momentum`` -> ``optimizer.momentum``), else the closest of its ``keys`` (``lrr`` -> ``lr``); or nothing."""
    import difflib

    tree = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else {}
    below = [
        f"{key}.{name}" for key, child in tree.items() if key in keys and isinstance(child, dict) and name in child
    ]
    close = below or difflib.get_close_matches(name, keys, n=1)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def one_line(err: Exception) -> str:
    if (hint := missing_plugin(err)) is not None:  # hydra/launcher=joblib without its extra: which one to install
        return hint
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return f"{group}={option}: expected one of {', '.join(err.options)}"
    if isinstance(err, InstantiationException) and isinstance(err.__cause__, ValueError):
        return str(err.__cause__)  # a plugin's own check of its settings (hydra.launcher.chunk_size=0)
    cause = err.__cause__
    if isinstance(cause, ValidationError) and cause.full_key:  # a typed key given a value of another type
        return f"{cause.full_key}={cause.value}: {cause.msg.splitlines()[0]}"
    known_keys = (ConfigKeyError, ConfigAttributeError)
    if isinstance(cause, known_keys) and cause.full_key and cause.parent_node is not None:
        keys = [str(k) for k in cause.parent_node if not str(k).startswith("_") and k != "hydra"]
        where, _, name = cause.full_key.rpartition(".")
        if not keys:  # a value (null x0, a list's number) or a node with no keys of its own (the basic launcher)
            return f"{cause.full_key}: not a key of {where or 'the top level'}, which has none"
        line = f"{cause.full_key}: not a key of {where or 'the top level'}; its keys are {', '.join(keys)}"
        return line + _suggestion(cause.parent_node, name, keys, f"{where}." if where else "")
    text = str(err)
    if err.__cause__ is not None and str(err.__cause__) not in text:
        text += "\n" + str(err.__cause__)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("full_key:", "object_type=", "reference_type="))]
    return " ".join(lines)
