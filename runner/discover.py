"""What exists and what a command would do: ``runner --list [WHAT]`` and ``runner ... --dry-run``.

Everything shown is read, never kept by hand: the options of each config group from Hydra's
config search path (``conf/`` and ``--config-dir``), each option composed as a run composes it;
objectives built by their factories (dimension, bounds, data, x* and f*); each optimizer's
keys from its config and the class it follows from its factory's docstring; the launchers and
sweepers from Hydra's plugins, with the project's extras from :mod:`runner.hints`.

A dry run composes the sweep as Hydra would, lists its jobs with the sweeper's own split
(``split_arguments``), tells which a resume would skip by the run's own rule
(:func:`runner.store.finished_run`), and asks a launcher that can plan (``plan``: the batched
launcher, by :func:`runner.batched.plan_jobs`) which jobs it would batch. Nothing runs and
nothing is written: no sweep folder, no ``.hydra``, no log file.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from runner.config import build, config_ids, plain
from runner.hints import PLUGIN_GROUPS, install_command, installed_version, plugin_extra, plugin_extras

# A factory's docstring names the class whose names, defaults and formulas it follows.
FOLLOWS = re.compile(r"\b(torch\.optim\.\w+|scipy\.optimize\.\w+)")
SHOWN_JOBS = 3  # a dry run shows the first and the last few jobs
INDENT = " " * 4


class Configs:
    """Hydra's config loader for the command's search path: every option as a run composes it."""

    def __init__(self, args):
        from hydra._internal.hydra import Hydra
        from hydra._internal.utils import create_config_search_path
        from hydra.core.config_search_path import SearchPathQuery
        from hydra.errors import SearchPathException

        from runner.app import config_dir

        search_path = create_config_search_path(config_dir())
        if args.config_dir is not None:  # as Hydra's --config-dir: before the project's conf/
            folder = os.path.abspath(args.config_dir)
            if not os.path.isdir(folder):
                raise SearchPathException(f"Additional config directory '{folder}' not found")
            search_path.prepend("command-line", f"file://{folder}", anchor=SearchPathQuery(provider="schema"))
        self.hydra = Hydra.create_main_hydra2(task_name="runner", config_search_path=search_path)
        self.loader = self.hydra.config_loader
        self.config_name = args.config_name or "config"
        self.overrides = list(args.overrides)

    def close(self) -> None:
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()

    def options(self, group: str) -> list[str]:
        from hydra.core.object_type import ObjectType

        return self.loader.get_group_options(group, results_filter=ObjectType.CONFIG)

    def groups(self) -> list[str]:
        from hydra.core.object_type import ObjectType

        return self.loader.get_group_options("", results_filter=ObjectType.GROUP)

    def compose(self, overrides: list[str], multirun: bool = False) -> DictConfig:
        from hydra.types import RunMode

        mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        return self.hydra.compose_config(self.config_name, [*self.overrides, *overrides], run_mode=mode)


# ----------------------------------------------------------------------------- --list


def print_lists(what: str, args) -> None:
    configs = Configs(args)
    try:
        sections = {
            "objectives": objective_lines,
            "optimizers": optimizer_lines,
            "experiments": preset_lines,
            "launchers": plugin_lines,
        }
        chosen = list(sections) if what == "all" else [what]
        print("\n\n".join("\n".join(sections[name](configs)) for name in chosen), flush=True)
    finally:
        configs.close()


def number(value) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def vector(values) -> str:
    return "(" + ", ".join(number(v) for v in np.asarray(values, dtype=float).ravel()) + ")"


def bounds_text(objective) -> str:
    """The box, one interval per run of equal coordinates: ``[-inf, 1] for x_0..x_9, [-inf, 20] for x_10..x_49``."""
    if objective.lower is None:
        return "none"
    pairs = list(zip(objective.lower.tolist(), objective.upper.tolist(), strict=True))
    parts, start = [], 0
    for key, run in itertools.groupby(pairs):
        end = start + len(list(run)) - 1
        where = f"x_{start}" if start == end else f"x_{start}..x_{end}"
        parts.append(f"[{number(key[0])}, {number(key[1])}] for {where}")
        start = end + 1
    return ", ".join(parts)


def keys_text(node: dict) -> str:
    return "  ".join(f"{k}={_shown(v)}" for k, v in node.items() if k != "_target_")


def _shown(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_shown(v)}" for k, v in value.items()) + "}"
    return number(value)


def first_line(obj) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].replace("``", "") if doc else ""


def factory_of(node: dict):
    from hydra.utils import get_object

    return get_object(node["_target_"])


def objective_lines(configs: Configs) -> list[str]:
    """Each objective: what it is, its dimension, bounds and data, x* and f* where known, its keys."""
    from objectives.data import DATA_KEY, TARGET_KEY

    data_keys = [DATA_KEY, TARGET_KEY]
    lines = ["objectives (objective=NAME, objective.KEY=VALUE):"]
    for name in configs.options("objective"):
        cfg = configs.compose([f"objective={name}"])
        node, unresolved = plain(cfg.objective), plain(cfg.objective, resolve=False)
        lines.append(f"  {name:<20}{first_line(factory_of(node))}")
        try:
            objective = build(node, "objective")
        except Exception as err:  # a user's option that does not build says so, the others are listed
            lines.append(f"{INDENT}does not build with its defaults: {err}")
            continue
        x_star = "unknown" if objective.x_star is None else vector(objective.x_star)
        if objective.x_star is not None and objective.dim > 4:
            x_star = f"known ({objective.dim} coordinates)"
        f_star = "unknown" if objective.f_star is None else number(objective.f_star)
        lines.append(f"{INDENT}dimension {objective.dim}; bounds: {bounds_text(objective)}; x* {x_star}; f* {f_star}")
        if objective.n_samples is not None:
            keys = " and ".join(k for k in data_keys if k.rpartition(".")[2] in node)
            source = "synthetic, from the seed" if node.get(DATA_KEY.rpartition(".")[2]) is None else "from a file"
            lines.append(f"{INDENT}data: {objective.n_samples} samples ({source}); {keys} read your own")
        lines.append(f"{INDENT}keys: {keys_text(unresolved)}")
    return lines


def follows(factory) -> str:
    """The class whose names, defaults and formulas the optimizer follows, as its docstring names it."""
    found = FOLLOWS.search(getattr(factory, "__doc__", None) or "")
    return found.group(1) if found else "its own rule"


def optimizer_lines(configs: Configs) -> list[str]:
    """Each optimizer: the class it follows, its hyperparameters with the values a run gets."""
    lines = ["optimizers (optimizer=NAME, optimizer.KEY=VALUE):"]
    for name in configs.options("optimizer"):
        cfg = configs.compose([f"optimizer={name}"])
        node, unresolved = plain(cfg.optimizer), plain(cfg.optimizer, resolve=False)
        factory = factory_of(node)
        about = first_line(factory)
        same = about.rstrip(".") == follows(factory)  # adagrad: "torch.optim.Adagrad." says no more
        lines.append(f"  {name:<20}follows {follows(factory)}" + ("" if same else f": {about}"))
        shown = []
        for key, value in node.items():
            if key == "_target_":
                continue
            source = unresolved.get(key)
            taken = f" ({source})" if isinstance(source, str) and "${" in source else ""
            shown.append(f"{key}={_shown(value)}{taken}")
        lines.append(f"{INDENT}keys: {'  '.join(shown) or 'none'}")
        if cfg.get("lr", "") is None:
            lines.append(f"{INDENT}sets lr=null: it takes no learning rate")
    return lines


def preset_lines(configs: Configs) -> list[str]:
    """The presets (``+experiment=NAME`` ...): the groups that the primary config does not choose."""
    chosen = set(configs.compose([]).hydra.runtime.choices)
    groups = [g for g in configs.groups() if g != "hydra" and g not in chosen]
    lines = ["experiments (" + ", ".join(f"+{g}=NAME" for g in groups) + "):"]
    for group in groups:
        for name in configs.options(group):
            lines.append(f"  +{group}={name}")
            lines.append(INDENT + preset_text(configs, f"+{group}={name}"))
    return lines


def preset_text(configs: Configs, override: str) -> str:
    from hydra.errors import MissingConfigException

    from runner.hints import missing_plugin

    try:
        cfg = configs.compose([override], multirun=True)
    except MissingConfigException as err:  # its sweeper's extra is not installed
        return f"not available: {missing_plugin(err) or err}"
    choices = cfg.hydra.runtime.choices
    params = dict(cfg.hydra.sweeper.get("params") or {})
    swept = "; ".join(f"{k}: {v}" for k, v in params.items()) or "nothing"
    what = f"{choices.get('optimizer')} on {choices.get('objective')}, sweeps {swept}"
    jobs = job_count(params)
    sweeper = choices.get("hydra/sweeper")
    if "n_trials" in cfg.hydra.sweeper:
        return f"{what}: {cfg.hydra.sweeper.n_trials} trials of the {sweeper} sweeper"
    return f"{what}" + (f" ({jobs} jobs)" if jobs is not None else "")


def job_count(params: dict) -> int | None:
    """The number of jobs a grid of discrete sweeps makes, or None when one is not discrete."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    count = 1
    for override in OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()]):
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                return None
            count *= len(list(override.sweep_string_iterator()))
    return count


def plugin_lines(configs: Configs) -> list[str]:
    """The launchers and sweepers Hydra finds, each with the extra that brings it; the extras not installed."""
    lines = []
    for group, kind in PLUGIN_GROUPS.items():
        lines.append(f"{kind}s ({group}=NAME):")
        for option in configs.options(group):
            found = plugin_extra(group, option)
            if found is None:
                lines.append(f"  {option:<20}included")
            else:
                extra, dist = found
                lines.append(f"  {option:<20}extra {extra} ({dist} {installed_version(dist) or ''})".rstrip())
        for extra, dist in plugin_extras(group):
            if installed_version(dist) is None:
                lines.append(f"  {'(not installed)':<20}extra {extra} ({dist}): {install_command(extra)}")
    return lines


# ----------------------------------------------------------------------------- --dry-run


def dry_run(args) -> None:
    from hydra.types import RunMode

    configs = Configs(args)
    try:
        multirun = args.multirun or configs.hydra.get_mode(configs.config_name, configs.overrides) == RunMode.MULTIRUN
        lines = sweep_plan(configs) if multirun else run_plan(configs)
    finally:
        configs.close()
    print("\n".join([*lines, "nothing was run or written (drop --dry-run to run it)"]), flush=True)


def task_config(cfg: DictConfig) -> tuple[dict, dict]:
    """A run's config as the task gets it (Hydra's config minus its ``hydra`` node): resolved and not."""
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return plain(task), plain(task, resolve=False)


def folder_note(folder: Path, key: str) -> str:
    if folder.is_dir():
        return f"into {folder} (it exists: a finished run of the same config there is kept)"
    return f"into {folder} (a new folder; {key}=DIR resumes into one)"


def run_plan(configs: Configs) -> list[str]:
    from runner.store import finished_run

    cfg = configs.compose([])
    resolved, unresolved = task_config(cfg)
    folder = Path(str(cfg.hydra.run.dir))
    done = finished_run(folder, config_ids(resolved, unresolved)[0])[0] is not None
    what = "done already (kept)" if done else "would run"
    shown = " ".join(configs.overrides) or "(defaults)"
    return [f"dry run: 1 run {folder_note(folder, 'hydra.run.dir')}", f"  {shown}: {what}"]


def sweep_plan(configs: Configs) -> list[str]:
    """The sweep's jobs, which are done, and how each would run (``batched``, ``alone``, ``per job``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.plugins import Plugins
    from hydra.core.utils import filter_overrides
    from hydra.types import HydraContext

    from hydra_plugins.runner_batched_launcher.compose import SweepComposer
    from runner.app import main
    from runner.batched import Job

    cfg = configs.compose([], multirun=True)
    HydraConfig.instance().set_config(cfg)
    choices = cfg.hydra.runtime.choices
    sweeper = Plugins.instance().instantiate_sweeper(
        config=cfg,
        hydra_context=HydraContext(config_loader=configs.loader, callbacks=_NoCallbacks()),
        task_function=main.__wrapped__,  # the task itself, with its capabilities (run_jobs)
    )
    split = getattr(sweeper, "split_arguments", None)
    if split is None:  # it picks each job from the results of the ones before (Optuna)
        trials = cfg.hydra.sweeper.get("n_trials")
        params = "; ".join(f"{k}: {v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items())
        return [
            f"dry run: the {choices.get('hydra/sweeper')} sweeper chooses each job from the results before it, so "
            f"its jobs cannot be listed ahead: n_trials={trials} over {params or 'its search space'}"
        ]
    task_overrides = OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create(config_loader=configs.loader).parse_overrides([*params, *task_overrides])
    job_overrides = [job for batch in split(parsed, cfg.hydra.sweeper.get("max_batch_size")) for job in batch]

    composer = SweepComposer(configs.loader, cfg, fast=True)
    jobs, shown = [], []
    for idx, overrides in enumerate(job_overrides):
        composed = composer.job(list(overrides), idx)
        config_hash, config_id = config_ids(composed.resolved, composed.unresolved)
        jobs.append(Job(composed.resolved, composed.name, config_hash, config_id))
        shown.append(" ".join(filter_overrides(overrides)) or "(defaults)")
    sweep_dir = Path(str(cfg.hydra.sweep.dir))
    plan_of = getattr(sweeper.launcher, "plan", None)
    if callable(plan_of):
        kinds = plan_of(jobs, sweep_dir)
    else:
        from runner.store import finished_run

        kinds = ["done" if finished_run(sweep_dir / job.name, job.config_hash)[0] else "per job" for job in jobs]
    words = {"batched": "batched", "alone": "alone (one by one)", "per job": "per job", "done": "done (skipped)"}
    launcher = choices.get("hydra/launcher")
    lines = [
        f"dry run: {len(jobs)} jobs, {choices.get('hydra/sweeper')} sweeper, {launcher} launcher, "
        f"{folder_note(sweep_dir, 'hydra.sweep.dir')}"
    ]
    width = max((len(s) for s in shown), default=0)
    listed = range(len(jobs)) if len(jobs) <= 2 * SHOWN_JOBS + 1 else [*range(SHOWN_JOBS), *range(-SHOWN_JOBS, 0)]
    for k in listed:
        i = k % len(jobs)
        if k == -SHOWN_JOBS:
            lines.append(f"  ... {len(jobs) - 2 * SHOWN_JOBS} more")
        lines.append(f"  #{i:<4} {shown[i]:<{width}}  -> {words[kinds[i]]}")
    counts = Counter(kinds)
    parts = [f"{counts[k]} {words[k]}" for k in words if counts[k]]
    lines.append(f"{len(jobs)} jobs: {', '.join(parts) or 'none'}")
    return lines


class _NoCallbacks:
    """A dry run fires no callback (the sweep's end would write its tables)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None
