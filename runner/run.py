"""One run, in plain Python: config -> objective + optimizer -> its driver -> trace -> files.

:func:`run` is what the Hydra entry point calls and what tests call directly;
it takes a plain mapping (or an OmegaConf config) and never imports Hydra.
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
import uuid
from pathlib import Path

from runner.columns import utc_iso
from runner.config import (
    build,
    build_optimizer,
    check_config,
    config_columns,
    config_ids,
    config_types,
    plain,
    registry_name,
    run_rng,
)
from runner.errors import ConfigError
from runner.loop import minimize
from runner.optimizers import Optimizer
from runner.store import (
    SUMMARY_FILE,
    TRACE_FILE,
    completed_summary,
    folder_lock,
    package_versions,
    write_summary,
    write_trace,
)
from runner.theory import run_rates
from runner.trace import summary_record


def run(cfg, output_dir: str | Path, *, progress=None, resume: bool = True) -> dict:
    """Run one study and write ``trace.parquet`` and ``summary.json`` into ``output_dir``.

    Never raises for a bad config or a crashing run: the returned summary (also
    written to disk) has status ``failed`` with the error and its traceback.
    Ctrl-C ends the run with status ``interrupted``, after its trace is saved.
    With ``resume``, a folder that already holds a finished run of the same
    config is left as it is and its summary returned, marked ``skipped``.
    """
    output_dir = Path(output_dir)
    # One writer per folder, and the resume check made by the one holding it: a second run of the
    # same folder waits, then finds this one's run (never a summary of one beside a trace of another).
    with folder_lock(output_dir, "run"):
        return _run(cfg, output_dir, progress, resume)


def _run(cfg, output_dir: Path, progress, resume: bool) -> dict:
    unresolved, cfg = plain(cfg, resolve=False), plain(cfg)
    config_hash, config_id = config_ids(cfg, unresolved)
    if resume and (done := completed_summary(output_dir, config_hash, _say_rerun)) is not None:
        return {**done, "skipped": True}
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    identity = {
        "run_id": uuid.uuid4().hex[:12],
        "config_hash": config_hash,
        "config_id": config_id,
        "objective": registry_name(cfg.get("objective") or {}),
        "optimizer": registry_name(cfg.get("optimizer") or {}),
    }
    try:
        settings = check_config(cfg)
        objective = build(cfg["objective"], "objective")
        optimizer = build_optimizer(cfg)
        # An optimizer with its own driver (scipy) runs itself; an (init, update) rule runs in the loop.
        drive = getattr(optimizer, "drive", None)
        if drive is None:
            if not isinstance(optimizer, Optimizer):
                raise ConfigError(
                    "optimizer._target_", cfg["optimizer"].get("_target_"), "a factory returning an Optimizer"
                )
            drive = functools.partial(minimize, optimizer=optimizer)
        result = drive(
            objective,
            max_iter=settings["max_iter"],
            tol=settings["tol"],
            grad_tol=settings["grad_tol"],
            record_x=settings["record_x"],
            sampling=settings["sampling"],
            rng=run_rng(settings["seed"]),
            progress=progress,
        )
        write_trace(
            output_dir / TRACE_FILE,
            result,
            {"run_id": identity["run_id"], "config_id": config_id, "f_star": objective.f_star, **config_columns(cfg)},
            config_types(cfg),
        )
        rate_theory, rate_measured = run_rates(objective, optimizer, result.trace.f, iterations=result.trace.iteration)
        summary = summary_record(
            **identity,
            status=result.status,
            stop_reason=result.stop_reason,
            message=result.message,
            f=result.f,
            f_star=objective.f_star,
            iterations=result.iterations,
            nfev=result.nfev,
            ngev=result.ngev,
            wall_time_s=result.wall_time_s,
            hyperparams=optimizer.hyperparams,
            x=result.x,
            x_star=objective.x_star,
            details=result.details,
            trace_file=TRACE_FILE,
            trace_rows=len(result.trace.f),  # what resume checks the trace against (scipy's counts differ)
            rate_theory=rate_theory,
            rate_measured=rate_measured,
        )
    except ConfigError as err:
        summary = summary_record(**identity, status="failed", stop_reason="error", message=str(err), error=str(err))
    except Exception as err:  # a crashing objective or optimizer is recorded, not lost
        error = f"{type(err).__name__}: {err}"
        summary = summary_record(
            **identity,
            status="failed",
            stop_reason="error",
            message=error,
            error=error,
            traceback=traceback.format_exc(),
        )
    summary.update(started_at=utc_iso(started), config=cfg, versions=package_versions(), output_dir=str(output_dir))
    summary.setdefault("wall_time_s", time.time() - started)
    write_summary(output_dir / SUMMARY_FILE, summary)
    return summary


def _say_rerun(path: Path, what: str) -> None:
    print(f"rerun: {shown_path(path)} {what}", file=sys.stderr, flush=True)


def summary_line(summary: dict, where: str | None = None) -> str:
    """The one line printed at the end of a run: the status, the rule that ended it when that
    is not the status's own name, with the solver's message when the solver ended it, then f,
    the iteration count and the folder: ``converged (tol): f = ...``, ``stopped (solver: <its
    message>): f = ...``, ``max_iter: f = ...``."""
    where = summary.get("output_dir", "") if where is None else where
    if summary["status"] == "failed":
        return f"failed: {summary['error']}  ({where})"
    status, reason = summary["status"], summary.get("stop_reason")
    if reason == "solver":
        status += f" (solver: {summary.get('message')})"
    elif reason and reason != status:
        status += f" ({reason})"
    f = summary.get("f")
    f_text = f"{f:.6g}" if isinstance(f, float) else str(f)
    return f"{status}: f = {f_text} after {summary['iterations']} iterations  ({where})"


def shown_path(path) -> str:
    """``path`` relative to the working folder when it lies below it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
