"""The config groups are the registry: every option composes, builds, and matches its factory."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from runner.app import config_dir
from runner.optimizers import Optimizer
from runner.run import build, build_optimizer
from runner.scipy_minimize import ScipyMethod

CONF = Path(config_dir())
OBJECTIVES = sorted(p.stem for p in (CONF / "objective").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))


def test_the_registry_holds_what_the_docs_promise():
    assert OBJECTIVES == ["least_squares", "quartic", "shifted_quadratic", "sin_cos", "two_layer_net"]
    assert OPTIMIZERS == ["adagrad", "adam", "gd", "momentum", "nesterov", "rmsprop", "scipy", "sgd"]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_config_builds_with_its_factorys_keys(compose_cfg, name):
    cfg = compose_cfg(f"optimizer={name}")
    optimizer = build_optimizer(cfg)
    assert isinstance(optimizer, (Optimizer, ScipyMethod)) and optimizer.name == name
    factory_keys = set(inspect.signature(_factory(cfg["optimizer"])).parameters)
    assert set(cfg["optimizer"]) - {"_target_"} == factory_keys


@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_objective_config_builds_with_its_factorys_keys(compose_cfg, name):
    cfg = compose_cfg(f"objective={name}")
    objective = build(cfg["objective"], "objective")
    assert objective.name == name
    assert set(cfg["objective"]) - {"_target_"} == set(inspect.signature(_factory(cfg["objective"])).parameters)


def test_top_level_lr_reaches_every_gradient_optimizer(compose_cfg):
    for name in set(OPTIMIZERS) - {"scipy"}:
        assert build_optimizer(compose_cfg(f"optimizer={name}", "lr=0.123")).hyperparams["lr"] == 0.123
    assert compose_cfg("optimizer=scipy")["lr"] is None


def _factory(node):
    module, _, attr = node["_target_"].rpartition(".")
    return getattr(__import__(module, fromlist=[attr]), attr)
