"""The checks every config passes before any work: known keys, and values of the kind each key takes.

Each key's :class:`Kind` is read once from its factory (:func:`keys_of`): what it accepts, for
these checks, and its column's Arrow type, for the tables (:func:`runner.config.config_types`).
A single run (:func:`runner.config.check_config`, called first by :func:`runner.run.run`) and
the batched planner (:func:`runner.batched._plan`) use the same checks, so a bad value is
the same one-line ``key=value: expected ...`` error under every launcher.

What a factory's key takes comes from the factory itself:

* its annotation, when it has one (``x0: list[float] | float | None``,
  ``options: dict | None``, ``betas: Sequence[float]``);
* otherwise its default: a number (int or float) takes a real number, a list or tuple of
  numbers takes a list of as many numbers, a bool takes true or false, a string a string.
  A ``None`` default without an annotation takes anything.

A number is never a bool, a float is finite, and an integer fits int64: a value the runs
table cannot store is refused here, not after the run. Ranges (``lr > 0``, ``n >= 1``) are
the factories' own checks.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from runner.columns import FLOAT_LIST, value_type
from runner.errors import ConfigError

# The keys of conf/config.yaml (conf/experiment and conf/hparams_search only set them).
TOP_LEVEL_KEYS = ("objective", "optimizer", "lr", "max_iter", "tol", "grad_tol", "seed", "trace")
TRACE_KEYS = ("x", "every", "schedule", "points")
INT64_MAX = 2**63 - 1


def fits_int64(value) -> bool:
    return -INT64_MAX - 1 <= value <= INT64_MAX


def is_real(value) -> bool:
    """A number the tables can store: an int within int64 or a finite float, never a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return fits_int64(value)
    return isinstance(value, float) and math.isfinite(value)


def oversized(value) -> bool:
    """An integer past int64: said in the message, since it looks like a fine number."""
    return isinstance(value, int) and not isinstance(value, bool) and not fits_int64(value)


@dataclass(frozen=True)
class Kind:
    """What a key takes, read once from its factory: ``accepts(value)``, ``allowed`` for the message,
    and ``arrow_type``, the type of its column in the tables (None: typed by its values)."""

    allowed: str
    accepts: Callable[[object], bool]
    arrow_type: pa.DataType | None = None


ANY = Kind("anything", lambda v: True)
NULL = Kind("null", lambda v: v is None)
REAL = Kind("a number", is_real, pa.float64())
INTEGER = Kind("a number", is_real, pa.int64())  # the factory checks it is whole (optimizer.batch_size)
BOOL = Kind("true or false", lambda v: isinstance(v, bool), pa.bool_())
TEXT = Kind("a string", lambda v: isinstance(v, str), pa.string())
MAPPING = Kind("a mapping (name: value)", lambda v: isinstance(v, Mapping), pa.string())  # stored as JSON text
REALS = Kind("a list of numbers", lambda v: isinstance(v, (list, tuple)) and all(map(is_real, v)), FLOAT_LIST)


def reals(n: int) -> Kind:
    return Kind(
        f"a list of {n} numbers",
        lambda v: isinstance(v, (list, tuple)) and len(v) == n and all(map(is_real, v)),
        FLOAT_LIST,
    )


def one_of(options: list[Kind]) -> Kind:
    """A value any of ``options`` accepts; its column's type is theirs when they agree
    (a point given as one number or a list of them, ``x0``, is a list column)."""
    types = {o.arrow_type for o in options} - {None}
    if FLOAT_LIST in types and types <= {FLOAT_LIST, pa.float64(), pa.int64()}:
        arrow_type = FLOAT_LIST
    else:
        arrow_type = types.pop() if len(types) == 1 else None
    shown = list({o.allowed: o for o in options}.values())  # int | float: "a number", once
    if ANY in options:
        return Kind(ANY.allowed, ANY.accepts, arrow_type)
    if len(shown) == 1:
        return Kind(shown[0].allowed, shown[0].accepts, arrow_type)
    allowed = ", ".join(o.allowed for o in shown[:-1]) + " or " + shown[-1].allowed
    return Kind(allowed, lambda v: any(o.accepts(v) for o in options), arrow_type)


def from_hint(hint) -> list[Kind]:
    """The kinds of value an annotation allows; ANY for what it cannot tell."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [k for arg in typing.get_args(hint) for k in from_hint(arg)]
    origin = typing.get_origin(hint) or hint
    simple = {type(None): NULL, bool: BOOL, int: INTEGER, float: REAL, str: TEXT}
    if origin in simple:
        return [simple[origin]]
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return [MAPPING]
    numbers = all(a in (int, float, Ellipsis) for a in typing.get_args(hint))
    if isinstance(origin, type) and issubclass(origin, Sequence) and not issubclass(origin, str) and numbers:
        return [REALS]
    return [ANY]


def from_default(default) -> Kind:
    """The kind of an unannotated key's default; a number's column is float64 (``1`` beside ``0.5``)."""
    if isinstance(default, bool):
        return BOOL
    if isinstance(default, (int, float)):
        return REAL
    if isinstance(default, str):
        return TEXT
    if isinstance(default, (list, tuple)) and all(isinstance(d, (int, float)) for d in default):
        return reals(len(default))
    return ANY if default is None else Kind(ANY.allowed, ANY.accepts, value_type(default))


@functools.cache
def keys_of(factory) -> tuple[dict[str, Kind], bool]:
    """What each keyword of ``factory`` takes, and whether it takes any other keyword (``**kwargs``).

    From its annotation when it has one, else from its default (module docstring). A list of
    numbers whose default has n of them takes n (``betas = (0.9, 0.999)``: a list of 2 numbers).
    An annotation that names no column type (``x0: StartingPoint``) takes its default's.
    """
    parameters = inspect.signature(factory).parameters
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # an annotation that does not evaluate: fall back on the defaults
        hints = {}
    kinds = {}
    for name, p in parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is p.empty else p.default
        if name not in hints:
            kinds[name] = ANY if p.default is p.empty else from_default(default)
            continue
        options = from_hint(hints[name])
        if options == [REALS] and isinstance(default, (list, tuple)):
            options = [from_default(default)]
        kind = one_of(options)
        if kind.arrow_type is None and default is not None:
            kind = Kind(kind.allowed, kind.accepts, value_type(default))
        kinds[name] = kind
    return kinds, any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def factory_of(node: Mapping, group: str):
    """The factory named by ``node["_target_"]``."""
    target = node.get("_target_")
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(f"{group}._target_", target, "a dotted path to a factory, e.g. objectives.quartic")
    try:
        return _import(target)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{group}._target_", target, f"an importable factory ({err})") from None


@functools.cache  # a sweep's jobs name the same few factories (a failed import is not cached)
def _import(target: str):
    module_name, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def check_keys(node: Mapping, known, prefix: str = "") -> None:
    """Refuse a key not in ``known``, suggesting the closest known one (``max_iters`` -> ``max_iter``)."""
    for key, value in node.items():
        if key not in known:
            raise ConfigError(
                f"{prefix}{key}",
                value,
                f"a known key{_suggest(key, known, prefix)} (keys: {', '.join(known) or 'none'})",
            )


def _suggest(key, known, prefix: str) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f": did you mean {prefix}{close[0]}?" if close else ""


def check_value(key: str, value, kind: Kind) -> None:
    """Refuse a value ``kind`` does not accept; the message says what is wrong with a number that looks fine."""
    if kind.accepts(value):
        return
    items = value if isinstance(value, (list, tuple)) else [value]
    allowed = kind.allowed
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
        allowed = allowed.replace("number", "finite number")
    if any(map(oversized, items)):
        allowed += " (an integer must fit int64)"
    raise ConfigError(key, value, allowed)


def check_node(node: Mapping, group: str, *, top_lr=None, types: bool = True) -> None:
    """``objective`` or ``optimizer``: a factory that exists, keys it takes, values of the types it takes
    (unless not ``types``: a batch's node holds arrays).

    ``optimizer.lr`` is the top-level ``lr`` (``${lr}``) and is named so while it equals it.
    """
    if not isinstance(node, Mapping):
        raise ConfigError(group, node, f"a config node with a _target_ (e.g. {group}=<option>)")
    factory = factory_of(node, group)
    expect, takes_any = keys_of(factory)
    name = getattr(factory, "__name__", "the factory")
    for key, value in node.items():
        if key == "_target_":
            continue
        if key not in expect:
            if takes_any:
                continue
            suggest = _suggest(key, expect, f"{group}.").replace(":", ";", 1)
            raise ConfigError(f"{group}.{key}", value, f"a key {name} takes: {', '.join(expect) or 'none'}{suggest}")
        if not types:
            continue
        shown = "lr" if group == "optimizer" and key == "lr" and value == top_lr else f"{group}.{key}"
        check_value(shown, value, expect[key])


def check_structure(cfg: Mapping) -> None:
    """The config's keys and the types of its objective's and optimizer's values (not the run settings)."""
    check_keys(cfg, TOP_LEVEL_KEYS)
    trace = cfg.get("trace")
    if trace is not None:
        if not isinstance(trace, Mapping):
            raise ConfigError("trace", trace, "a mapping, e.g. trace.x=false")
        check_keys(trace, TRACE_KEYS, "trace.")
    if cfg.get("lr") is not None:  # null: an optimizer without a learning rate (check_lr, the factories)
        check_value("lr", cfg["lr"], REAL)
    for group in ("objective", "optimizer"):
        check_node(cfg.get(group), group, top_lr=cfg.get("lr"))
