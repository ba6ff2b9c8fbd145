"""Every use of Hydra's private API by the batched launcher: the one module to revisit on a Hydra upgrade.

Hydra 1.3 offers no public way to do any of the four things below; each function
states the Hydra 1.3 behaviour it relies on, and ``tests/test_launcher_suites.py``
pins each one against Hydra itself, so that a Hydra that behaves otherwise fails
those tests, not a sweep.

* :func:`apply_overrides`: value overrides are the last step of composition,
  applied to the merged config by ``ConfigLoaderImpl._apply_overrides_to_config``
  (what lets :mod:`.compose` compose a grid once per shape of job);
* :func:`overrides_dirname`: ``hydra.job.override_dirname`` is
  ``get_overrides_dirname`` of the job's task overrides;
* :func:`config_repository`: the config repository a composition with given Hydra
  overrides searches (``hydra.searchpath`` can add to it), to tell an option choice
  (``optimizer=adam``) from a value (``lr=0.1``);
* :func:`serve_sweeper_check`: ``Sweeper.validate_batch_is_legal`` composes each job
  by calling ``config_loader.load_sweep_config(config, overrides)`` itself, and
  discards the result.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.types import Override
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

# The code of the one caller whose compositions serve_sweeper_check answers.
_SWEEPER_CHECK = Sweeper.validate_batch_is_legal.__code__


def apply_overrides(overrides: Sequence[Override], config: DictConfig) -> None:
    """Apply parsed value overrides to a composed ``config`` in place, as composition's last step does.

    It raises what composition raises for them (``ConfigCompositionException`` for a key
    that is not in the config, or a value of the wrong type).
    """
    ConfigLoaderImpl._apply_overrides_to_config(list(overrides), config)


def overrides_dirname(overrides: Sequence[Override], exclude_keys: Sequence[str], item_sep: str, kv_sep: str) -> str:
    """``hydra.job.override_dirname`` of a job whose task overrides are ``overrides``, unresolved."""
    return get_overrides_dirname(
        overrides=list(overrides), exclude_keys=list(exclude_keys), item_sep=item_sep, kv_sep=kv_sep
    )


def config_repository(config_loader: Any, config_name: str | None, overrides: Sequence[str]) -> Any:
    """The config repository composing ``config_name`` with ``overrides`` searches; it has ``group_exists(path)``."""
    return config_loader._parse_overrides_and_create_caching_repo(config_name, list(overrides))[1]


def serve_sweeper_check(
    config_loader: Any, master: DictConfig, check: Callable[[list[str]], DictConfig | None]
) -> None:
    """Answer the sweeper's composability check of ``master``'s jobs with ``check(overrides)``.

    ``Sweeper.validate_batch_is_legal`` composes every job only to see that it composes,
    and discards the config. For that caller alone (recognised by its code object, as
    Hydra has no hook for it) and only for jobs of ``master``, ``load_sweep_config`` of
    this ``config_loader`` (one Hydra run's, not a global) returns ``check(overrides)``,
    which must raise what the composition would; where ``check`` returns None, and for
    every other caller, it composes as before.
    """
    original = config_loader.load_sweep_config

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        if master_config is master and sys._getframe(1).f_code is _SWEEPER_CHECK:
            checked = check(list(sweep_overrides))
            if checked is not None:
                return checked
        return original(master_config, sweep_overrides)

    config_loader.load_sweep_config = load_sweep_config
