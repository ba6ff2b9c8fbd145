"""Each job's config, as ``config_loader.load_sweep_config`` composes it, at a fraction of the cost.

Composing one job costs Hydra about 65 ms, almost all of it in building the defaults
tree and merging the option files, and a sweep pays it twice per job (the sweeper
composes each job once to check it, the launcher again to run it). Across a sweep
grid the jobs usually pick the same options and differ only in values
(``lr=0.1`` vs ``lr=0.2``), and Hydra applies value overrides as the last step of
composition, to the already merged config (``ConfigLoaderImpl._apply_overrides_to_config``).
So :class:`SweepComposer` composes once per *shape* of job -- the same option
choices, Hydra overrides and overridden keys -- with the value overrides left out,
and then applies each job's value overrides to that config with Hydra's own function.

What is fast-pathed is narrow on purpose: ``key=value`` overrides of app keys (no
``+``/``++``/``~``, no dict values, no package); the task config must not refer to the
``hydra`` node. Anything else is composed by ``load_sweep_config`` itself.
The result -- the task config (Hydra's config minus its ``hydra`` node, as ``run_job``
hands it to the task), resolved and unresolved, and the job's folder name -- equals
the full composition's; ``tests/test_batched.py`` checks it against ``load_sweep_config``.
"""

import copy
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import AnyNode, DictConfig, OmegaConf, open_dict, read_write

# The default ``hydra.sweep.subdir`` of the project (conf/config.yaml): the job's name is its override dirname.
OVERRIDE_DIRNAME = "${hydra.job.override_dirname}"


@dataclass
class ComposedJob:
    """A job's task config, resolved and unresolved, and its folder below the sweep dir."""

    resolved: dict
    unresolved: dict
    name: str
    exact: bool  # composed by load_sweep_config itself


@dataclass
class _Shape:
    """One composition shared by every job with the same option choices and overridden keys."""

    task: DictConfig | None  # the task config, value overrides applied in place job after job
    full: DictConfig | None  # the full config, for a custom hydra.sweep.subdir
    subdir_is_dirname: bool = True
    dirname: dict = field(default_factory=dict)
    applied: dict = field(default_factory=dict)  # key -> the override line last applied to ``task``

    def apply(self, values: list[Override]) -> None:
        """Apply the job's value overrides to ``task``, skipping those the previous job already applied.

        An override of a key with the same text sets the same value again (no dict values,
        no ``+``: see :meth:`SweepComposer._split`), so skipping it leaves the same config.
        """
        changed = [o for o in values if self.applied.get(o.key_or_group) != o.input_line]
        for o in changed:
            self.applied.pop(o.key_or_group, None)  # unknown until it has been applied
        ConfigLoaderImpl._apply_overrides_to_config(changed, self.task)
        self.applied.update((o.key_or_group, o.input_line) for o in changed)


def _interpolations(node: Any, path: tuple = ()):
    """``(path, text)`` of every string in a plain container that OmegaConf would resolve."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _interpolations(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _interpolations(value, path + (i,))
    elif isinstance(node, str) and "${" in node:
        yield path, node


# An interpolation that is one absolute reference to another key: ``${lr}``, ``${objective.n}``.
_REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\}")


def _resolved(task: DictConfig, unresolved: dict) -> dict:
    """``OmegaConf.to_container(task, resolve=True)``, given ``unresolved``, its unresolved twin.

    OmegaConf parses every interpolation it resolves (about 0.1 ms each). A leaf of an
    untyped node that is just ``${a.b}``, naming a plain value (no interpolation, not
    missing), resolves to that value, which is taken from ``unresolved``; any other
    interpolation sends the whole config through OmegaConf. The containers on the path
    to a resolved leaf are copied; the rest is shared with ``unresolved``.
    """
    resolved = unresolved
    for path, text in list(_interpolations(unresolved)):
        match = _REFERENCE.fullmatch(text)
        value = _plain_value(unresolved, match.group(1).split(".")) if match else _NOT_PLAIN
        if value is _NOT_PLAIN or not isinstance(_node(task, path), AnyNode):
            return OmegaConf.to_container(task, resolve=True)
        resolved = _with(resolved, path, value)
    return resolved


_NOT_PLAIN = object()


def _plain_value(container: Any, keys: list) -> Any:
    for key in keys:
        if not isinstance(container, dict) or key not in container:
            return _NOT_PLAIN
        container = container[key]
    if isinstance(container, (dict, list)):
        return _NOT_PLAIN
    if isinstance(container, str) and ("${" in container or container == "???"):
        return _NOT_PLAIN
    return container


def _node(config: Any, path: tuple) -> Any:
    for key in path:
        config = config._get_node(key)
    return config


def _with(node: Any, path: tuple, value: Any) -> Any:
    """A copy of ``node`` with ``value`` at ``path``, copying only the containers on the path."""
    if not path:
        return value
    node = dict(node) if isinstance(node, dict) else list(node)
    node[path[0]] = _with(node[path[0]], path[1:], value)
    return node


class SweepComposer:
    """Job configs of one sweep: fast where the job's overrides allow it, ``load_sweep_config`` otherwise."""

    def __init__(self, config_loader, master_config: DictConfig, *, fast: bool = True):
        self.loader = config_loader
        self.master = master_config
        self.fast = fast
        self.hydra_overrides = list(OmegaConf.to_container(master_config.hydra.overrides.hydra))
        self._parser = OverridesParser.create()
        self._parsed: dict[str, Override] = {}
        self._groups: dict[tuple, dict[str, bool]] = {}
        self._repos: dict[tuple, Any] = {}
        self._shapes: dict[tuple, _Shape | None] = {}
        self._checked: dict[tuple, ComposedJob] = {}

    # ------------------------------------------------------------------ parsing

    def _parse(self, line: str) -> Override:
        if line not in self._parsed:
            self._parsed[line] = self._parser.parse_overrides([line])[0]
        return self._parsed[line]

    def _is_group(self, hydra_lines: tuple, key: str) -> bool:
        """Whether ``key`` names a config group, in the repository this job's composition would search."""
        groups = self._groups.setdefault(hydra_lines, {})
        if key not in groups:
            if hydra_lines not in self._repos:
                # The repository depends on hydra.searchpath, which only Hydra overrides change.
                config_name = self.master.hydra.job.config_name
                self._repos[hydra_lines] = self.loader._parse_overrides_and_create_caching_repo(
                    config_name, self.hydra_overrides + list(hydra_lines)
                )[1]
            groups[key] = self._repos[hydra_lines].group_exists(key)
        return groups[key]

    def _split(self, overrides: list[str]):
        """``(shape key, value overrides, app overrides)``, or None when the job must be composed in full."""
        parsed = [self._parse(line) for line in overrides]
        hydra_lines = tuple(o.input_line for o in parsed if o.is_hydra_override())
        shape, values = [], []
        for o in parsed:
            if o.is_sweep_override():
                return None
            value = o.value()
            if o.is_hydra_override() or (self._is_group(hydra_lines, o.key_or_group) and not isinstance(value, dict)):
                shape.append(o.input_line)  # an option choice or a Hydra setting: part of the composition
            elif o.type == OverrideType.CHANGE and o.package is None and not isinstance(value, dict):
                shape.append(("value", o.key_or_group))
                values.append(o)
            else:
                return None
        keys = [o.key_or_group for o in values]
        if len(set(keys)) != len(keys) or any(a.startswith(b + ".") for a in keys for b in keys):
            return None  # one key set twice, or inside another: order-dependent, leave it to Hydra
        app = [o for o in parsed if not o.is_hydra_override()]
        return tuple(shape), values, app

    def _shape(self, key: tuple, overrides: list[str], values: list[Override]) -> _Shape | None:
        if key in self._shapes:
            return self._shapes[key]
        value_lines = {o.input_line for o in values}
        try:
            base = self.loader.load_sweep_config(self.master, [line for line in overrides if line not in value_lines])
        except Exception:  # let the full composition raise its own error
            self._shapes[key] = None
            return None
        task = copy.deepcopy(base)
        with read_write(task), open_dict(task):
            del task["hydra"]
        if any("hydra" in text for _, text in _interpolations(OmegaConf.to_container(task, resolve=False))):
            shape = None  # ${hydra:...} or ${hydra.x} in the task config: resolve it as run_job does
        else:
            subdir = OmegaConf.to_container(base.hydra.sweep, resolve=False).get("subdir")
            dirname = OmegaConf.to_container(base.hydra.job.config.override_dirname, resolve=True)
            shape = _Shape(task=task, full=base, subdir_is_dirname=subdir == OVERRIDE_DIRNAME, dirname=dirname)
        self._shapes[key] = shape
        return shape

    # ------------------------------------------------------------------ composing

    def check(self, overrides: list[str]) -> DictConfig | None:
        """Compose the job to raise what composing it would raise; None if it is not fast-pathed.

        Returns the shared config of the job's shape, which the next job changes (only for
        a caller that discards it: the sweeper's check). The job's composition is kept
        for :meth:`job`, so that the launcher does not compose it a second time.
        """
        overrides = list(overrides)
        split = self._split(overrides) if self.fast else None
        shape = split and self._shape(split[0], overrides, split[1])
        if not shape:
            return None
        shape.apply(split[1])
        if (dirname := self._dirname(shape, split[2])) is not None:
            self._checked[tuple(overrides)] = self._composed(shape, dirname)
        return shape.task

    def job(self, overrides: list[str], idx: int) -> ComposedJob:
        """Job ``idx``'s task config and folder name, as the per-job path composes them."""
        overrides = list(overrides)
        if (checked := self._checked.pop(tuple(overrides), None)) is not None:
            return checked
        split = self._split(overrides) if self.fast else None
        shape = split and self._shape(split[0], overrides, split[1])
        if not shape:
            return self.exact(overrides, idx)
        _, values, app = split
        shape.apply(values)
        subdir = self._dirname(shape, app)
        return self._composed(shape, subdir if subdir is not None else self._subdir(shape, values, app, idx))

    @staticmethod
    def _dirname(shape: _Shape, app: list[Override]) -> str | None:
        """The job's folder when it is its override dirname as it stands; None when it takes resolving."""
        if not shape.subdir_is_dirname:
            return None
        dirname = get_overrides_dirname(overrides=app, exclude_keys=list(shape.dirname["exclude_keys"]),
                                        item_sep=shape.dirname["item_sep"], kv_sep=shape.dirname["kv_sep"])  # fmt: skip
        # OmegaConf resolves the subdir's value in turn: an override like lr=${max_iter} names the folder lr=3.
        return None if "$" in dirname or "\\" in dirname else dirname

    def _composed(self, shape: _Shape, subdir: str) -> ComposedJob:
        """The job whose values are in ``shape.task`` now."""
        unresolved = OmegaConf.to_container(shape.task, resolve=False)
        return ComposedJob(resolved=_resolved(shape.task, unresolved), unresolved=unresolved, name=_normal(subdir),
                           exact=False)  # fmt: skip

    def _subdir(self, shape: _Shape, values: list[Override], app: list[Override], idx: int) -> str:
        """A custom ``hydra.sweep.subdir``, resolved on the full config with this job's values."""
        full = shape.full
        ConfigLoaderImpl._apply_overrides_to_config(values, full)
        with open_dict(full.hydra):
            full.hydra.overrides.task = [o.input_line for o in app]
            full.hydra.job.override_dirname = get_overrides_dirname(
                overrides=app, exclude_keys=list(shape.dirname["exclude_keys"]),
                item_sep=shape.dirname["item_sep"], kv_sep=shape.dirname["kv_sep"])  # fmt: skip
            full.hydra.job.id = idx
            full.hydra.job.num = idx
        return str(OmegaConf.select(full, "hydra.sweep.subdir"))

    def sweep_config(self, overrides: list[str], idx: int) -> DictConfig:
        """The full composition, exactly as BasicLauncher builds it for job ``idx``."""
        sweep_config = self.loader.load_sweep_config(self.master, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        return sweep_config

    def exact(self, overrides: list[str], idx: int) -> ComposedJob:
        """The job through ``load_sweep_config``, its task config resolved as ``run_job`` resolves it."""
        config = self.sweep_config(overrides, idx)
        previous = HydraConfig.instance().cfg
        try:
            HydraConfig.instance().set_config(config)
            subdir = str(OmegaConf.select(config, "hydra.sweep.subdir"))
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = os.path.abspath(os.path.join(str(config.hydra.sweep.dir), subdir))
            HydraConfig.instance().set_config(config)
            task = copy.deepcopy(config)
            with read_write(task), open_dict(task):
                del task["hydra"]
            return ComposedJob(
                resolved=OmegaConf.to_container(task, resolve=True),
                unresolved=OmegaConf.to_container(task, resolve=False),
                name=_normal(subdir),
                exact=True,
            )
        finally:
            HydraConfig.instance().cfg = previous


def _normal(subdir: str) -> str:
    """The job's folder as :func:`runner.sweep.collect` names it: relative to the sweep dir, posix."""
    return os.path.normpath(subdir).replace(os.sep, "/")
