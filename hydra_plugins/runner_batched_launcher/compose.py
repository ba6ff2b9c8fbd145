"""Each job's config, as ``config_loader.load_sweep_config`` composes it, at a fraction of the cost.

Composing one job costs Hydra about 65 ms, almost all of it in building the defaults
tree and merging the option files, and a sweep pays it twice per job (the sweeper
composes each job once to check it, the launcher again to run it). Across a sweep
grid the jobs usually pick the same options and differ only in values
(``lr=0.1`` vs ``lr=0.2``), and Hydra applies value overrides as the last step of
composition, to the already merged config (:func:`._hydra_private.apply_overrides`).
So :class:`SweepComposer` composes once per *shape* of job -- the same option
choices, Hydra overrides and overridden keys -- with the value overrides left out.
Each distinct value override (``lr=0.1``) is then applied once, with Hydra's own
function, to that config: that checks it (raising what the full composition raises)
and reads back the value Hydra sets. A job's config is the shape's plain config with
its values put in, and its simple interpolations (``${lr}``) resolved from it; a
1,000-job grid of 40 x 25 values applies 65 overrides, not 2,000.

What is fast-pathed is narrow on purpose: ``key=value`` overrides of app keys (no
``+``/``++``/``~``, no dict values, no package); the task config must not refer to the
``hydra`` node. Anything else is composed by ``load_sweep_config`` itself, and an
interpolation other than a plain reference is resolved by OmegaConf.
The result -- the task config (Hydra's config minus its ``hydra`` node, as ``run_job``
hands it to the task), resolved and unresolved, and the job's folder name -- equals
the full composition's; ``tests/test_batched.py`` checks it against ``load_sweep_config``.
"""

import copy
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import AnyNode, Container, DictConfig, ListConfig, OmegaConf, open_dict, read_write

from hydra_plugins.runner_batched_launcher import _hydra_private as hydra_private

# ``hydra.sweep.subdir`` set to the job's override dirname: as it is, or as the project's conf/config.yaml sets it,
# through runner.store.job_dir (a name too long or unsafe for a folder cut short with a hash). Value: wrapped.
OVERRIDE_DIRNAME = "${hydra.job.override_dirname}"
JOB_DIR = "${runner.job_dir:${hydra.job.override_dirname}}"
DIRNAME_SUBDIRS = {OVERRIDE_DIRNAME: False, JOB_DIR: True}


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

    task: DictConfig  # the task config; each value override is applied to it once, to check it and read it back
    full: DictConfig  # the full config, for a custom hydra.sweep.subdir
    template: dict  # the task config before the value overrides, unresolved
    references: frozenset  # paths of the template's interpolations on untyped nodes
    interpolations: tuple = ()  # (path, text) of every interpolation of the template, found once
    subdir_is_dirname: bool = True
    job_dir: bool = False  # the dirname through runner.store.job_dir
    dirname: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)  # override line -> (path, value Hydra sets)

    def value(self, override: Override) -> tuple[tuple, Any]:
        """``(path, value)`` that ``override`` sets; it raises what applying it in composition raises."""
        line = override.input_line
        if line not in self.values:
            hydra_private.apply_overrides([override], self.task)
            path = tuple(override.key_or_group.split("."))
            node = _node(self.task, path)
            value = OmegaConf.to_container(node, resolve=False) if isinstance(node, Container) else node._value()
            self.values[line] = (path, value)
        return self.values[line]

    def unresolved(self, values: list[Override]) -> dict:
        """The job's task config, unresolved: the template with the job's values put in."""
        config = self.template
        for override in values:
            config = _with(config, *self.value(override))
        return config

    def interpolations_of(self, unresolved: dict, values: list[Override]) -> list:
        """:func:`_interpolations` of a job's ``unresolved`` config, without walking all of it: the
        template's, but where the job's values replace them, and any in the job's values."""
        changed = [self.value(override)[0] for override in values]

        def replaced(path: tuple) -> bool:
            return any(path[: len(c)] == c or c[: len(path)] == path for c in changed)

        found = [(path, text) for path, text in self.interpolations if not replaced(path)]
        for path in changed:
            found.extend(_interpolations(_plain_at(unresolved, path), path))
        return found


def _interpolations(node: Any, path: tuple = ()):
    """``(path, text)`` of every string in a plain container that OmegaConf would resolve."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _interpolations(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _interpolations(value, (*path, i))
    elif isinstance(node, str) and "${" in node:
        yield path, node


# An interpolation that is one absolute reference to another key: ``${lr}``, ``${objective.n}``.
_REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\}")


def _plain_at(container: Any, path: tuple) -> Any:
    for key in path:
        container = container[int(key) if isinstance(container, list) else key]
    return container


def _resolved(unresolved: dict, references: frozenset, interpolations: list | None = None) -> dict | None:
    """``OmegaConf.to_container(task, resolve=True)``, given ``unresolved``, the task config unresolved.

    OmegaConf parses every interpolation it resolves (about 0.1 ms each). A leaf at one of
    ``references`` (an untyped node) that is just ``${a.b}``, naming a plain value (no
    interpolation, not missing), resolves to that value, taken from ``unresolved``. Any
    other interpolation returns None: OmegaConf resolves it. The containers on the path
    to a resolved leaf are copied; the rest is shared with ``unresolved``. ``interpolations``:
    those of ``unresolved``, when the caller knows them (:meth:`_Shape.interpolations_of`).
    """
    resolved = unresolved
    found = list(_interpolations(unresolved)) if interpolations is None else interpolations
    for path, text in found:
        match = _REFERENCE.fullmatch(text)
        value = _plain_value(unresolved, match.group(1).split(".")) if match else _NOT_PLAIN
        if value is _NOT_PLAIN or path not in references:
            return None
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
        config = config._get_node(int(key) if isinstance(config, ListConfig) else key)
    return config


def _with(node: Any, path: tuple, value: Any) -> Any:
    """A copy of ``node`` with ``value`` at ``path``, copying only the containers on the path."""
    if not path:
        return value
    if isinstance(node, dict):
        node, key = dict(node), path[0]
    else:  # a list, indexed by a number (``optimizer.betas.0=0.5``)
        node, key = list(node), int(path[0])
    node[key] = _with(node[key], path[1:], value)
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
        self._master_choices = self._choices_of_master()

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
                self._repos[hydra_lines] = hydra_private.config_repository(
                    self.loader, config_name, self.hydra_overrides + list(hydra_lines)
                )
            groups[key] = self._repos[hydra_lines].group_exists(key)
        return groups[key]

    def _choices_of_master(self) -> frozenset | None:
        """The option choices the master config was composed with, when a job with the same ones
        would be composed alike: with the default job folder, as the master's job folder
        setting does not apply to a job otherwise."""
        subdir = OmegaConf.to_container(self.master.hydra.sweep, resolve=False).get("subdir")
        if subdir not in DIRNAME_SUBDIRS:
            return None
        lines = [self._parse(line) for line in OmegaConf.to_container(self.master.hydra.overrides.task)]
        choices = [o for o in lines if not o.is_sweep_override() and self._is_group((), o.key_or_group)]
        return frozenset(o.input_line for o in choices)

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
        if frozenset(k for k in key if isinstance(k, str)) == self._master_choices:
            # Hydra composed the master config with these very option choices (and no job-level Hydra
            # overrides): it is the shape's composition but for the values, which every job sets.
            base = copy.deepcopy(self.master)
        else:
            try:
                options = [line for line in overrides if line not in value_lines]
                base = self.loader.load_sweep_config(self.master, options)
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
            template = OmegaConf.to_container(task, resolve=False)
            interpolations = tuple(_interpolations(template))
            references = frozenset(path for path, _ in interpolations if isinstance(_node(task, path), AnyNode))
            shape = _Shape(
                task=task,
                full=base,
                template=template,
                references=references,
                interpolations=interpolations,
                subdir_is_dirname=subdir in DIRNAME_SUBDIRS,
                job_dir=DIRNAME_SUBDIRS.get(subdir, False),
                dirname=dirname,
            )
        self._shapes[key] = shape
        return shape

    # ------------------------------------------------------------------ composing

    def check(self, overrides: list[str]) -> DictConfig | None:
        """Compose the job to raise what composing it would raise; None if it is not fast-pathed.

        Returns the shared config of the job's shape (only for a caller that discards it:
        the sweeper's check). The job's composition is kept for :meth:`job`, so that the
        launcher does not compose it a second time.
        """
        overrides = list(overrides)
        split = self._split(overrides) if self.fast else None
        shape = split and self._shape(split[0], overrides, split[1])
        if not shape:
            return None
        _, values, app = split
        if (dirname := self._dirname(shape, app)) is not None:
            self._checked[tuple(overrides)] = self._composed(shape, values, dirname)
        else:
            for override in values:
                shape.value(override)
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
        subdir = self._dirname(shape, app)
        return self._composed(shape, values, subdir if subdir is not None else self._subdir(shape, values, app, idx))

    @staticmethod
    def _dirname(shape: _Shape, app: list[Override]) -> str | None:
        """The job's folder when it is its override dirname as it stands; None when it takes resolving."""
        if not shape.subdir_is_dirname:
            return None
        dirname = hydra_private.overrides_dirname(
            app, shape.dirname["exclude_keys"], shape.dirname["item_sep"], shape.dirname["kv_sep"]
        )
        # OmegaConf resolves the subdir's value in turn: an override like lr=${max_iter} names the folder lr=3.
        if "$" in dirname or "\\" in dirname:
            return None
        if shape.job_dir:
            from runner.store import job_dir  # the runner's own rule, as the resolver of conf/config.yaml applies it

            return job_dir(dirname)
        return dirname

    @staticmethod
    def _composed(shape: _Shape, values: list[Override], subdir: str) -> ComposedJob:
        """The job with the value overrides ``values``, in the folder ``subdir``."""
        unresolved = shape.unresolved(values)
        resolved = _resolved(unresolved, shape.references, shape.interpolations_of(unresolved, values))
        if resolved is None:  # an interpolation only OmegaConf resolves: the job's values in the shared config
            hydra_private.apply_overrides(values, shape.task)
            resolved = OmegaConf.to_container(shape.task, resolve=True)
        return ComposedJob(resolved=resolved, unresolved=unresolved, name=_normal(subdir), exact=False)

    def _subdir(self, shape: _Shape, values: list[Override], app: list[Override], idx: int) -> str:
        """A custom ``hydra.sweep.subdir``, resolved on the full config with this job's values."""
        full = shape.full
        hydra_private.apply_overrides(values, full)
        with open_dict(full.hydra):
            full.hydra.overrides.task = [o.input_line for o in app]
            full.hydra.job.override_dirname = hydra_private.overrides_dirname(
                app, shape.dirname["exclude_keys"], shape.dirname["item_sep"], shape.dirname["kv_sep"]
            )
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
    """The job's folder as :func:`runner.tables.collect` names it: relative to the sweep dir, posix."""
    return os.path.normpath(subdir).replace(os.sep, "/")
