"""A config becomes objects and columns: the checks every config passes, the objects it builds, its ids and columns.

Plain Python: a plain mapping or an OmegaConf config in, never Hydra. A single run
(:func:`runner.run.run`), the batched planner (:mod:`runner.batched`) and the tables
(:mod:`runner.tables`) all read a config through here, so that a bad value is the same
one-line error and a key the same column under every launcher.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from runner.columns import coerce, value_type
from runner.errors import ConfigError
from runner.trace import SCHEDULES, Sampling
from runner.validate import check_node, check_structure, factory_of, fits_int64, keys_of


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
    """The top-level run settings, validated: max_iter, tol, grad_tol, seed, trace.x, and trace.every,
    trace.schedule and trace.points as ``sampling``, a :class:`runner.trace.Sampling`."""

    def number(key, ok, allowed, integer=False, value=None):
        value = cfg.get(key) if value is None else value
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if is_number and isinstance(value, int) and not fits_int64(value):
            raise ConfigError(key, value, f"{allowed} (an integer must fit int64)")
        if not is_number or (integer and not float(value).is_integer()) or not ok(value):
            raise ConfigError(key, value, allowed)
        return int(value) if integer else float(value)

    trace = cfg.get("trace") or {}
    record_x = trace.get("x", True)
    if not isinstance(record_x, bool):
        raise ConfigError("trace.x", record_x, "true or false")
    every = number("trace.every", lambda v: v >= 1, "an integer >= 1", integer=True, value=trace.get("every", 1))
    schedule = trace.get("schedule", "all")
    if schedule not in SCHEDULES:
        raise ConfigError("trace.schedule", schedule, "one of " + ", ".join(SCHEDULES))
    points = number("trace.points", lambda v: v >= 2, "an integer >= 2", integer=True, value=trace.get("points", 100))
    if schedule == "log" and every != 1:
        raise ConfigError("trace.every", every, "1 with trace.schedule=log (trace.points sets its rows)")
    return {
        "max_iter": number("max_iter", lambda v: v >= 0, "an integer >= 0", integer=True),
        "tol": number("tol", lambda v: v >= 0 and math.isfinite(v), "a number >= 0 (0 disables it)"),
        "grad_tol": number("grad_tol", lambda v: v >= 0 and math.isfinite(v), "a number >= 0 (0 disables it)"),
        "seed": number("seed", lambda v: 0 <= v < 2**63, "an integer >= 0", integer=True),
        "record_x": record_x,
        "sampling": Sampling(every=every, schedule=schedule, points=points),
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
    fields = {
        "objective": (registry_name(cfg["objective"]), pa.string()),
        "optimizer": (registry_name(cfg["optimizer"]), pa.string()),
    }
    declared = {group: factory_types(cfg[group].get("_target_")) for group in ("objective", "optimizer")}
    for key, value in _leaves(cfg):
        if key not in ("objective._target_", "optimizer._target_", "optimizer.lr"):
            group, _, name = key.rpartition(".")
            type_ = declared[group].get(name) if group in declared else None
            fields[key] = (value, type_ or SETTING_TYPES.get(key) or value_type(value))
    return fields


# The top-level run settings' types, as check_settings reads them (conf/config.yaml declares them).
SETTING_TYPES = {
    "lr": pa.float64(),
    "max_iter": pa.int64(),
    "tol": pa.float64(),
    "grad_tol": pa.float64(),
    "seed": pa.int64(),
    "trace.x": pa.bool_(),
    "trace.every": pa.int64(),
    "trace.schedule": pa.string(),
    "trace.points": pa.int64(),
}


def factory_types(target) -> dict:
    """``{key: Arrow type}`` of the keys a factory declares: its keys' :class:`runner.validate.Kind`
    (see :func:`config_types`); {} when it does not import.

    The target may come from a file (a run's summary, read by the tables): it is looked up only
    when it is one of the project's factories or its module is imported already (the runs of this
    process imported it), so that reading a folder imports nothing it names.
    """
    if not isinstance(target, str) or not (target in _project_targets() or target.rpartition(".")[0] in sys.modules):
        return {}
    if target in _FACTORY_TYPES:
        return _FACTORY_TYPES[target]
    try:
        kinds = keys_of(factory_of({"_target_": target}, "?"))[0]
    except Exception:  # an unimportable target is the run's own error; its columns are typed by their values
        return {}
    # Kept once found (a sweep types every run's columns, 2 lookups a run); an unimportable target is looked up again.
    types = _FACTORY_TYPES[target] = {
        name: kind.arrow_type for name, kind in kinds.items() if kind.arrow_type is not None
    }
    return types


_FACTORY_TYPES: dict[str, dict] = {}


@functools.cache
def _project_targets() -> frozenset:
    """The ``_target_`` of every objective and optimizer of the project's registries."""
    from objectives import REGISTRY as OBJECTIVES
    from runner.optimizers import OPTIMIZERS

    targets = {f"objectives.{name}" for name in OBJECTIVES} | {f"runner.optimizers.{name}" for name in OPTIMIZERS}
    targets |= {f"{f.__module__}.{f.__name__}" for f in (*OBJECTIVES.values(), *OPTIMIZERS.values())}
    return frozenset(targets | {"runner.scipy_driver.scipy"})


def _leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict) and key in ("objective", "optimizer", "trace") and not prefix:
            yield from _leaves(value, f"{key}.")
        else:
            yield prefix + key, value


def registry_name(node: Mapping) -> str:
    """An option's registry name: its factory's name (``runner.optimizers.adam`` -> ``adam``)."""
    return str(node.get("_target_", "?")).rpartition(".")[2]
