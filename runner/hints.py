"""One line where Hydra would guess at a typo or print a traceback: a plugin not installed, a backend not there.

The project's extras, and what each installs, come from its ``pyproject.toml`` in a source tree
(an editable install too), else from the installed distribution's metadata
(``importlib.metadata.requires``): no plugin is listed by hand. A Hydra launcher or sweeper
plugin is a distribution named ``hydra-<word>-launcher`` or ``hydra-<word>-sweeper`` whose
options start with ``<word>`` (``hydra-submitit-launcher``: ``submitit_local``,
``submitit_slurm``); that is the rule by which an option is traced to its extra.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from pathlib import Path

from runner.store import DISTRIBUTION  # the name on the package index; the import names stay runner, objectives

# The config groups whose options come from Hydra plugins, and the kind of plugin each takes.
PLUGIN_GROUPS = {"hydra/launcher": "launcher", "hydra/sweeper": "sweeper"}
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def canonical(name: str) -> str:
    """A distribution's name as the package index compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def source_tree() -> bool:
    """Running from a clone (or an editable install of one): its ``pyproject.toml`` is beside the package."""
    return _pyproject() is not None


@functools.cache
def _pyproject() -> dict | None:
    if not PYPROJECT.is_file():
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata says the same
        return None
    project = tomllib.loads(PYPROJECT.read_text()).get("project", {})
    return project if canonical(project.get("name", "")) == DISTRIBUTION else None


@functools.cache
def extras() -> dict[str, tuple[str, ...]]:
    """Each extra of the project and the distributions it installs (canonical names), in the project's order."""
    from packaging.requirements import Requirement

    project = _pyproject()
    if project is not None:
        table = project.get("optional-dependencies", {})
        return {extra: tuple(canonical(Requirement(r).name) for r in reqs) for extra, reqs in table.items()}
    try:
        meta = importlib.metadata.metadata(DISTRIBUTION)
        requires = [Requirement(r) for r in importlib.metadata.requires(DISTRIBUTION) or []]
    except importlib.metadata.PackageNotFoundError:
        return {}
    return {
        extra: tuple(canonical(r.name) for r in requires if r.marker and r.marker.evaluate({"extra": extra}))
        for extra in meta.get_all("Provides-Extra") or []
    }


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def plugin_extra(group: str, option: str) -> tuple[str, str] | None:
    """``(extra, distribution)`` that offers ``option`` of the plugin group ``group``, or None.

    Of several extras that install the plugin (``test`` installs the launchers too), the one that
    installs the fewest distributions: the plugin's own extra.
    """
    kind = PLUGIN_GROUPS.get(group)
    word = option.split("_")[0].lower()
    found = []
    for extra, names in extras().items():
        for name in names:
            parts = name.split("-")
            if kind is not None and parts[-1] == kind and word in parts[:-1]:
                found.append((len(names), extra, name))
    return min(found)[1:] if found else None


def plugin_extras(group: str) -> list[tuple[str, str]]:
    """Every ``(extra, distribution)`` whose distribution is a plugin of ``group``, each once, in order."""
    kind = PLUGIN_GROUPS[group]
    seen = {}
    for extra, names in sorted(extras().items(), key=lambda item: len(item[1])):
        for name in names:
            if name.split("-")[-1] == kind and name not in seen:
                seen[name] = extra
    return [(extra, name) for name, extra in seen.items()]


def install_command(extra: str) -> str:
    return f"pip install -e '.[{extra}]'" if source_tree() else f"pip install '{DISTRIBUTION}[{extra}]'"


def missing_plugin(err: Exception) -> str | None:
    """``hydra/launcher=joblib`` (or a sweeper) whose plugin is not installed: which extra to install."""
    from hydra.errors import MissingConfigException

    if not isinstance(err, MissingConfigException) or not err.missing_cfg_file:
        return None
    group, _, option = err.missing_cfg_file.rpartition("/")
    found = plugin_extra(group, option)
    if found is None:
        return None
    extra, name = found
    have = ", ".join(err.options or []) or "none"
    return (
        f"{group}={option}: not installed; the {extra} extra brings it ({name}): {install_command(extra)} "
        f"(installed: {have})"
    )


def unreachable_backend(err: BaseException) -> str | None:
    """A launcher plugin that failed to start its jobs, e.g. ``submitit_slurm`` off a SLURM cluster or
    ``ray`` with no cluster at its address: one line naming the launcher and its error, else None.

    Counted as such: the error came up through a ``Launcher``'s method and was raised outside this
    project (in the plugin or its backend's library), so a fault of the runner keeps its traceback.
    """
    from hydra.plugins.launcher import Launcher

    launcher, choice, tb, raised_in = None, None, err.__traceback__, ""
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get("self")
        if launcher is None and isinstance(owner, Launcher):
            launcher = owner
        choice = choice or launcher_choice(owner)
        raised_in = frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    ours = ("runner", "objectives", "hydra_plugins.runner_batched_launcher")
    if launcher is None or any(raised_in == m or raised_in.startswith(m + ".") for m in ours):
        return None
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    what = lines[0] if lines else type(err).__name__
    return f"hydra/launcher={choice or type(launcher).__name__} could not start its jobs here: {what}"


def launcher_choice(owner) -> str | None:
    """The ``hydra/launcher`` option in the config that ``owner`` (the sweeper, a launcher) was set up with."""
    from omegaconf import DictConfig, OmegaConf

    config = getattr(owner, "config", None)
    choice = OmegaConf.select(config, "hydra.runtime.choices", default=None) if isinstance(config, DictConfig) else None
    return None if choice is None else choice.get("hydra/launcher")
