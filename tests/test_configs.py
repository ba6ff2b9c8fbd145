"""The config groups are the registry: every option composes, builds, and matches its factory."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from runner.app import config_dir
from runner.config import build, build_optimizer, check_config
from runner.errors import ConfigError
from runner.optimizers import Optimizer
from runner.scipy_driver import ScipyMethod
from runner.validate import TOP_LEVEL_KEYS, keys_of

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
    takes_lr = [name for name in OPTIMIZERS if "lr" in compose_cfg(f"optimizer={name}")["optimizer"]]
    assert len(takes_lr) >= 7  # every (init, update) optimizer shipped takes one
    for name in takes_lr:
        assert build_optimizer(compose_cfg(f"optimizer={name}", "lr=0.123")).hyperparams["lr"] == 0.123
    assert compose_cfg("optimizer=scipy")["lr"] is None


def _factory(node):
    module, _, attr = node["_target_"].rpartition(".")
    return getattr(__import__(module, fromlist=[attr]), attr)


# ----------------------------------------------------------------------------- what a config may hold


def test_the_known_top_level_keys_are_those_of_the_configs(compose_cfg):
    """conf/config.yaml's keys, and no preset adds another (they are ``# @package _global_``)."""
    import yaml

    root = yaml.safe_load((CONF / "config.yaml").read_text())
    groups = {next(iter(entry)) for entry in root["defaults"] if isinstance(entry, dict)}  # objective, optimizer
    groups -= {"override hydra/job_logging"}  # Hydra's own group (the runner's logging), not a key of the config
    assert set(root) - {"defaults", "hydra"} | groups == set(TOP_LEVEL_KEYS)
    files = sorted((CONF / "experiment").glob("*.yaml")) + sorted((CONF / "hparams_search").glob("*.yaml"))
    assert len(files) == 5
    for path in files:  # every key a preset sets (a search preset needs its sweeper's extra to compose)
        keys = set(yaml.safe_load(path.read_text())) - {"defaults", "hydra"}
        assert keys <= set(TOP_LEVEL_KEYS), path.name
    for path in (CONF / "experiment").glob("*.yaml"):
        assert set(compose_cfg(f"+experiment={path.stem}")) == set(TOP_LEVEL_KEYS), path.name


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_shipped_config_passes_the_checks(compose_cfg, objective, optimizer):
    settings = check_config(compose_cfg(f"objective={objective}", f"optimizer={optimizer}"))
    assert settings["max_iter"] == 10000 and settings["record_x"] is True


def test_what_each_key_takes_comes_from_its_factory():
    from objectives import quartic, shifted_quadratic
    from runner.optimizers import adam, sgd
    from runner.scipy_driver import scipy

    def allowed(factory):
        return {key: expect.allowed for key, expect in keys_of(factory)[0].items()}

    assert allowed(adam) == {
        "lr": "a number",
        "betas": "a list of 2 numbers",
        "eps": "a number",
        "weight_decay": "a number",
        "amsgrad": "true or false",
    }
    assert allowed(sgd)["batch_size"] == "a number"  # the factory checks it is an integer >= 1
    assert allowed(scipy) == {"method": "a string or null", "options": "a mapping (name: value) or null"}
    assert allowed(quartic)["x0"] == allowed(shifted_quadratic)["x0"] == ("a list of numbers, a number or null")


# Each bad value, the key its message names, and what it says: refused by check_config, before any work.
BAD_VALUES = [
    ({"max_iter": 10**20}, "max_iter=100000000000000000000: expected an integer >= 0 (an integer must fit int64)"),
    ({"seed": 2**63}, "seed=9223372036854775808: expected an integer >= 0 (an integer must fit int64)"),
    ({"tol": True}, "tol=True: expected a number >= 0 (0 disables it)"),
    ({"lr": [0.1]}, "lr=[0.1]: expected a number"),
    ({"lr": 10**20}, "lr=100000000000000000000: expected a number (an integer must fit int64)"),
    ({"lr": True}, "lr=True: expected a number"),
    ({"objective.a": 10**20}, "objective.a=100000000000000000000: expected a number (an integer must fit int64)"),
    ({"objective.a": [2.0]}, "objective.a=[2.0]: expected a number"),
    ({"objective.b": float("inf")}, "objective.b=inf: expected a finite number"),
    ({"objective.x0": [True, False]}, "objective.x0=[True, False]: expected a list of numbers, a number or null"),
    ({"objective.x0": [[1, 2]]}, "objective.x0=[[1, 2]]: expected a list of numbers, a number or null"),
    (
        {"objective.x0": [1, 10**20]},
        "objective.x0=[1, 100000000000000000000]: expected a list of numbers, a number or null (an integer must fit "
        "int64)",
    ),
    ({"optimizer.betas": [0.9, float("nan")]}, "optimizer.betas=[0.9, nan]: expected a list of 2 finite numbers"),
    ({"optimizer.momentum": [0.5]}, "optimizer.momentum=[0.5]: expected a number"),
    ({"optimizer.momentum": False}, "optimizer.momentum=False: expected a number"),
    ({"optimizer.dampening": "0"}, "optimizer.dampening=0: expected a number"),
    (
        {"max_iters": 5},
        "max_iters=5: expected a known key: did you mean max_iter? (keys: objective, optimizer, lr, "
        "max_iter, tol, grad_tol, seed, trace)",
    ),
    ({"foo": 1}, "foo=1: expected a known key (keys: objective, optimizer, lr, max_iter, tol, grad_tol, seed, trace)"),
    ({"trace.y": True}, "trace.y=True: expected a known key (keys: x, every, schedule, points)"),
    ({"trace.every": 0}, "trace.every=0: expected an integer >= 1"),
    ({"trace.every": 2.5}, "trace.every=2.5: expected an integer >= 1"),
    ({"trace.schedule": "cubic"}, "trace.schedule=cubic: expected one of all, log"),
    ({"trace.points": 1}, "trace.points=1: expected an integer >= 2"),
    ({"trace.points": "many"}, "trace.points=many: expected an integer >= 2"),
    (
        {"trace.schedule": "log", "trace.every": 10},
        "trace.every=10: expected 1 with trace.schedule=log (trace.points sets its rows)",
    ),
    (
        {"optimizer.momentun": 0.5},
        "optimizer.momentun=0.5: expected a key momentum takes: lr, momentum, dampening, "
        "weight_decay; did you mean optimizer.momentum?",
    ),
]


@pytest.mark.parametrize("values, message", BAD_VALUES)
def test_a_bad_value_is_refused_with_one_line_naming_its_key(compose_cfg, values, message):
    cfg = compose_cfg("optimizer=adam" if "optimizer.betas" in values else "optimizer=momentum")
    for key, value in values.items():
        node, _, leaf = key.rpartition(".")
        (cfg[node] if node else cfg)[leaf] = value
        if key == "lr":
            cfg["optimizer"]["lr"] = value  # ${lr}
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert str(err.value) == message


@pytest.mark.parametrize(
    "options, message",
    [
        ("abc", "optimizer.options=abc: expected a mapping (name: value) or null"),
        ([1, 2], "optimizer.options=[1, 2]: expected a mapping (name: value) or null"),
    ],
)
def test_scipy_options_must_be_a_mapping(compose_cfg, options, message):
    from runner.scipy_driver import scipy as scipy_method

    cfg = compose_cfg("optimizer=scipy")
    cfg["optimizer"]["options"] = options
    with pytest.raises(ConfigError, match=r"^optimizer\.options="):
        check_config(cfg)
    with pytest.raises(ConfigError) as refused:
        check_config(cfg)
    assert str(refused.value) == message
    with pytest.raises(ConfigError, match=r"^optimizer\.options=.*: expected a mapping of scipy's options"):
        scipy_method(None, options)  # the factory's own check, for a config that skips check_config


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: __import__("objectives").shifted_quadratic(a=10**20), "objective.a=100000000000000000000: expected"),
        (lambda: __import__("objectives").shifted_quadratic(x0=[True, False]), "objective.x0=[True, False]: expected"),
        (
            lambda: __import__("runner.optimizers").optimizers.momentum(momentum="0.5"),
            "optimizer.momentum=0.5: expected",
        ),
        (lambda: __import__("runner.optimizers").optimizers.gd(lr=[10**20]), "lr=[100000000000000000000]: expected"),
    ],
)
def test_the_factories_refuse_what_the_checks_refuse(call, message):
    """Called directly (a batch of configs, a user's script), each factory still names the key."""
    with pytest.raises(ConfigError) as err:
        call()
    assert str(err.value).startswith(message)
