"""One run, in plain Python: config -> objective + optimizer -> loop -> trace -> files.

:func:`run` is what the Hydra entry point calls and what tests call directly;
it takes a plain mapping (or an OmegaConf config) and never imports Hydra.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import math
import sys
import time
import traceback
import typing
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from runner.errors import ConfigError
from runner.loop import minimize
from runner.optimizers import Optimizer
from runner.scipy_minimize import ScipyMethod, minimize_scipy
from runner.store import (
    SUMMARY_FILE,
    TRACE_FILE,
    coerce,
    declared_type,
    package_versions,
    read_summary,
    utc_iso,
    value_type,
    write_summary,
    write_trace,
)
from runner.validate import check_node, check_structure, factory_of, fits_int64

# A run that ended in one of these is a result; failed and interrupted runs are run again on resume.
FINAL_STATUSES = ("converged", "max_iter", "stopped", "diverged")

PROGRESS_AFTER_S = 2.0


def build(node: Mapping, group: str):
    """Call the factory named by ``node["_target_"]`` with the node's other keys.

    A key the factory does not take is an error naming the keys it does take. The values'
    types are :func:`check_config`'s: here they may be arrays (a batch of configs).
    """
    factory = factory_of(node, group)
    kwargs = {k: v for k, v in node.items() if k != "_target_"}
    check_node(node, group, types=False)
    return factory(**kwargs)


def plain(cfg, *, resolve: bool = True) -> dict:
    """A plain-dict copy of an OmegaConf config (or of a mapping)."""
    if hasattr(cfg, "_get_node"):  # an OmegaConf container
        from omegaconf import OmegaConf

        return OmegaConf.to_container(cfg, resolve=resolve)
    return json.loads(json.dumps(cfg))


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_ids(resolved: dict, unresolved: dict) -> tuple[str, str]:
    """``(config_hash, config_id)``: the run's resolved config, and its config without the seed.

    The seed is dropped from the unresolved config, so everything that follows
    it through ``${seed}`` (synthetic data, x0) drops with it, while a pinned
    ``objective.seed=0`` still counts. Runs that differ only in seed share a
    ``config_id``: they are repetitions. (A plain dict has no interpolations
    left: pass it as both.)
    """
    without_seed = {k: v for k, v in unresolved.items() if k != "seed"}
    return digest(resolved), digest(without_seed)


def completed_summary(output_dir: Path, config_hash: str) -> dict | None:
    """The summary of a finished run of the same config in ``output_dir``, if there is one."""
    path = output_dir / SUMMARY_FILE
    if not path.is_file() or not (output_dir / TRACE_FILE).is_file():
        return None
    try:
        summary = read_summary(path)
    except (OSError, ValueError):
        return None
    if summary.get("config_hash") == config_hash and summary.get("status") in FINAL_STATUSES:
        return summary
    return None


def run_rng(seed: int) -> np.random.Generator:
    """A run's minibatch generator: a child of its seed, so that other draws from the seed stay apart."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def check_config(cfg: dict) -> dict:
    """Every check that needs no work, in the order a user reads the config; returns :func:`check_settings`.

    Unknown keys (``+max_iters=5``), values of the wrong type (``lr=[0.1]``, ``objective.x0=[true,false]``,
    ``optimizer.options=abc``), integers past int64, then the run settings and the learning rate
    of an optimizer that takes none. :func:`runner.run.run` and the batched planner call it first,
    so a bad job fails with the same line under every launcher and costs no other job.
    """
    check_structure(cfg)
    settings = check_settings(cfg)
    check_lr(cfg)
    return settings


def check_settings(cfg: dict) -> dict:
    """The top-level run settings, validated: max_iter, tol, grad_tol, seed, trace.x."""

    def number(key, ok, allowed, integer=False):
        value = cfg.get(key)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if is_number and isinstance(value, int) and not fits_int64(value):
            raise ConfigError(key, value, f"{allowed} (an integer must fit int64)")
        if not is_number or (integer and not float(value).is_integer()) or not ok(value):
            raise ConfigError(key, value, allowed)
        return int(value) if integer else float(value)

    record_x = (cfg.get("trace") or {}).get("x", True)
    if not isinstance(record_x, bool):
        raise ConfigError("trace.x", record_x, "true or false")
    return {
        "max_iter": number("max_iter", lambda v: v >= 0, "an integer >= 0", integer=True),
        "tol": number("tol", lambda v: v >= 0 and math.isfinite(v), "a number >= 0 (0 disables it)"),
        "grad_tol": number("grad_tol", lambda v: v >= 0 and math.isfinite(v), "a number >= 0 (0 disables it)"),
        "seed": number("seed", lambda v: 0 <= v < 2**63, "an integer >= 0", integer=True),
        "record_x": record_x,
    }


def check_lr(cfg: dict) -> None:
    """A learning rate is null for an optimizer that takes none (scipy): it would be ignored."""
    node = cfg["optimizer"]
    if "lr" not in node and cfg.get("lr") is not None:
        raise ConfigError("lr", cfg["lr"], f"null: optimizer {registry_name(node)} takes no learning rate")


def build_optimizer(cfg: dict):
    check_lr(cfg)
    return build(cfg["optimizer"], "optimizer")


def config_columns(cfg: dict) -> dict:
    """The config as flat, typed columns named by their override keys.

    ``objective`` and ``optimizer`` hold the registry names; every other leaf
    is ``lr``, ``seed``, ``objective.n``, ``optimizer.momentum`` and so on, its
    value in the column's type, :func:`config_types` (``lr=1`` is 1.0, a list
    of numbers a list of floats, a dict JSON text, a value that is not of the
    type, ``lr=abc``, null: the run's ``config`` keeps it as written).
    ``optimizer.lr`` is left out: it is the top-level ``lr``.
    """
    return {name: coerce(value, type_) for name, (value, type_) in _config_fields(cfg).items()}


def config_types(cfg: dict) -> dict:
    """The Arrow type of each of :func:`config_columns`, from what the config declares, never from its values.

    A factory key takes its type from the factory's annotation (``x0: Sequence[float] | None``
    is list<double>), else from its default (``momentum=0.9`` is float64); the top-level
    settings from :data:`SETTING_TYPES`. A key nothing declares (``+note=...``, a factory
    taking ``**kwargs``) is typed by its value: numbers float64, lists of numbers list<double>.
    """
    return {name: type_ for name, (_, type_) in _config_fields(cfg).items()}


def _config_fields(cfg: dict) -> dict:
    fields = {"objective": (registry_name(cfg["objective"]), pa.string()),
              "optimizer": (registry_name(cfg["optimizer"]), pa.string())}  # fmt: skip
    for key, value in _leaves(cfg):
        if key not in ("objective._target_", "optimizer._target_", "optimizer.lr"):
            group, _, name = key.rpartition(".")
            declared = _factory_types(cfg[group].get("_target_")) if group in ("objective", "optimizer") else {}
            fields[key] = (value, declared.get(name) or SETTING_TYPES.get(key) or value_type(value))
    return fields


# The top-level run settings' types, as check_settings reads them (conf/config.yaml declares them).
SETTING_TYPES = {"lr": pa.float64(), "max_iter": pa.int64(), "tol": pa.float64(), "grad_tol": pa.float64(),
                 "seed": pa.int64(), "trace.x": pa.bool_()}  # fmt: skip


@functools.cache
def _factory_types(target) -> dict:
    """``{key: Arrow type}`` of the keys a factory declares (see :func:`config_types`); {} when it does not import."""
    if not isinstance(target, str) or "." not in target:
        return {}
    module_name, _, attr = target.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
        hints = typing.get_type_hints(factory)
        parameters = inspect.signature(factory).parameters
    except Exception:  # an unimportable target is the run's own error; its columns are typed by their values
        return {}
    types = {}
    for name, parameter in parameters.items():
        type_ = declared_type(hints[name]) if name in hints else None
        if type_ is None and parameter.default not in (inspect.Parameter.empty, None):
            type_ = value_type(parameter.default)
        if type_ is not None:
            types[name] = type_
    return types


def _leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict) and key in ("objective", "optimizer", "trace") and not prefix:
            yield from _leaves(value, f"{key}.")
        else:
            yield prefix + key, value


def registry_name(node: Mapping) -> str:
    """An option's registry name: its factory's name (``runner.optimizers.adam`` -> ``adam``)."""
    return str(node.get("_target_", "?")).rpartition(".")[2]


class TerminalProgress:
    """``iteration  f`` on one refreshed stderr line, for runs longer than a couple of seconds."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.shown = False

    def __call__(self, k: int, f: float) -> None:
        if time.perf_counter() - self.start < PROGRESS_AFTER_S:
            return
        self.stream.write(f"\r  iteration {k:>9,d}   f = {f:.6g}   ")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def run(cfg, output_dir: str | Path, *, progress=None, resume: bool = True) -> dict:
    """Run one study and write ``trace.parquet`` and ``summary.json`` into ``output_dir``.

    Never raises for a bad config or a crashing run: the returned summary (also
    written to disk) has status ``failed`` with the error and its traceback.
    Ctrl-C ends the run with status ``interrupted``, after its trace is saved.
    With ``resume``, a folder that already holds a finished run of the same
    config is left as it is and its summary returned, marked ``skipped``.
    """
    output_dir = Path(output_dir)
    unresolved, cfg = plain(cfg, resolve=False), plain(cfg)
    config_hash, config_id = config_ids(cfg, unresolved)
    if resume and (done := completed_summary(output_dir, config_hash)) is not None:
        return {**done, "skipped": True}
    output_dir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    started = time.time()
    summary = {
        "run_id": run_id,
        "config_hash": config_hash,
        "config_id": config_id,
        "status": "failed",
        "stop_reason": "error",
        "message": "",
        "error": None,
        "traceback": None,
        "objective": registry_name(cfg.get("objective") or {}),
        "optimizer": registry_name(cfg.get("optimizer") or {}),
    }
    try:
        settings = check_config(cfg)
        objective = build(cfg["objective"], "objective")
        optimizer = build_optimizer(cfg)
        solve = minimize_scipy if isinstance(optimizer, ScipyMethod) else minimize
        if not isinstance(optimizer, (Optimizer, ScipyMethod)):
            raise ConfigError("optimizer._target_", cfg["optimizer"].get("_target_"), "a factory returning an Optimizer")
        result = solve(
            objective,
            optimizer,
            max_iter=settings["max_iter"],
            tol=settings["tol"],
            grad_tol=settings["grad_tol"],
            record_x=settings["record_x"],
            rng=run_rng(settings["seed"]),
            progress=progress,
        )
        write_trace(output_dir / TRACE_FILE, result, {"run_id": run_id, "config_id": config_id, "f_star": objective.f_star,
                                                      **config_columns(cfg)}, config_types(cfg))  # fmt: skip
        summary.update(
            status=result.status,
            stop_reason=result.stop_reason,
            message=result.message,
            hyperparams=optimizer.hyperparams,
            f=result.f,
            f_star=objective.f_star,
            f_gap=None if objective.f_star is None else result.f - objective.f_star,
            x=result.x,
            x_star=objective.x_star,
            iterations=result.iterations,
            nfev=result.nfev,
            ngev=result.ngev,
            wall_time_s=result.wall_time_s,
            details=result.details,
            trace_file=TRACE_FILE,
        )
    except ConfigError as err:
        summary.update(message=str(err), error=str(err))
    except Exception as err:  # a crashing objective or optimizer is recorded, not lost
        summary.update(message=f"{type(err).__name__}: {err}", error=f"{type(err).__name__}: {err}",
                       traceback=traceback.format_exc())  # fmt: skip
    summary.update(started_at=utc_iso(started), config=cfg,
                   versions=package_versions(), output_dir=str(output_dir))  # fmt: skip
    summary.setdefault("wall_time_s", time.time() - started)
    write_summary(output_dir / SUMMARY_FILE, summary)
    return summary


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
