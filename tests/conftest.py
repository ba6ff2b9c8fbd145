"""Shared fixtures: composing the project's Hydra config in-process, as the CLI would."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from runner.app import config_dir


@pytest.fixture
def compose_cfg():
    """``compose_cfg("optimizer=adam", "lr=0.1")`` -> the resolved config as a plain dict."""

    def _compose(*overrides: str) -> dict:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)

    return _compose
