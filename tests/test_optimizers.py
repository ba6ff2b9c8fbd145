"""Tests for runner.optimizers.

Tolerance tiers (STYLE.md): exact equality or ~1e-12 for identities and hand-computed
steps, loose bounds for convergence. The comparison against torch.optim runs only where
torch is installed (it is not a project dependency).
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest

from runner import optimizers as optim
from runner.errors import ConfigError

IDENTITY = {"rtol": 1e-12, "atol": 1e-12}


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected, dtype=float), **IDENTITY)


def run(opt, x0, grads):
    """Iterates x_1..x_k for the given gradients g_1..g_k (which need not depend on x)."""
    x = np.asarray(x0, dtype=float)
    state = opt.init(x)
    iterates = []
    for g in grads:
        x, state = opt.update(np.asarray(g, dtype=float), state, x)
        iterates.append(x)
    return np.array(iterates)


def descend(opt, grad, x0, steps):
    """Iterates x_1..x_steps with the gradient recomputed at each iterate."""
    x = np.asarray(x0, dtype=float)
    state = opt.init(x)
    iterates = []
    for _ in range(steps):
        x, state = opt.update(grad(x), state, x)
        iterates.append(x)
    return np.array(iterates)


# A fixed, well-conditioned quadratic f(x) = 0.5 x^T Q x - c^T x (eigenvalues of Q in [1.4, 3.6]).
Q3 = np.array([[3.0, 0.5, -0.4], [0.5, 2.0, 0.3], [-0.4, 0.3, 1.5]])
C3 = np.array([1.0, -2.0, 0.5])


def quadratic_grad(x):
    """Q3 x - C3 over the last axis, summed in a fixed order so batched and single runs round alike."""
    columns = []
    for i in range(3):
        total = -C3[i]
        for j in range(3):
            total = total + Q3[i, j] * x[..., j]
        columns.append(total)
    return np.stack(columns, axis=-1)


# ----------------------------------------------------------------------------- 1. hand-computed steps


def test_gd_steps_by_hand():
    # x <- x - lr * g with lr = 0.1
    iterates = run(optim.gd(lr=0.1), [1.0, -2.0], [[0.5, 4.0], [-1.0, 0.0]])
    x1 = [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 4.0]  # [0.95, -2.4]
    x2 = [0.95 + 0.1 * 1.0, -2.4]  # [1.05, -2.4]
    close(iterates, [x1, x2])


def test_momentum_with_dampening_steps_by_hand():
    # lr = 0.1, momentum = 0.9, dampening = 0.5; first coordinate sees g = 1, 2, -1.
    #   b1 = g1 = 1                      (torch copies the first gradient, undampened)
    #   b2 = 0.9 * 1   + 0.5 * 2  = 1.9
    #   b3 = 0.9 * 1.9 + 0.5 * -1 = 1.21
    # The second coordinate sees -2 g, so it moves by -2 times as much.
    opt = optim.momentum(lr=0.1, momentum=0.9, dampening=0.5)
    iterates = run(opt, [0.0, 1.0], [[1.0, -2.0], [2.0, -4.0], [-1.0, 2.0]])
    first = [-0.1, -0.1 - 0.19, -0.1 - 0.19 - 0.121]
    close(iterates[:, 0], first)
    close(iterates[:, 1], 1.0 - 2.0 * np.array(first))


def test_nesterov_steps_by_hand():
    # lr = 0.1, momentum = 0.9, g = 1 then 2:
    #   b1 = 1;            d1 = g1 + 0.9 * b1 = 1.9;  x1 = -0.19
    #   b2 = 0.9 * 1 + 2 = 2.9;  d2 = 2 + 0.9 * 2.9 = 4.61;  x2 = -0.19 - 0.461
    iterates = run(optim.nesterov(lr=0.1, momentum=0.9), [0.0], [[1.0], [2.0]])
    close(iterates[:, 0], [-0.19, -0.651])


def test_momentum_with_weight_decay_steps_by_hand():
    # lr = 0.1, momentum = 0.5, weight_decay = 0.1, x0 = 2, raw gradient 1 both steps:
    #   g1 = 1 + 0.1 * 2    = 1.2;    b1 = 1.2;                   x1 = 2 - 0.12     = 1.88
    #   g2 = 1 + 0.1 * 1.88 = 1.188;  b2 = 0.5 * 1.2 + 1.188 = 1.788;  x2 = 1.88 - 0.1788 = 1.7012
    opt = optim.momentum(lr=0.1, momentum=0.5, weight_decay=0.1)
    close(run(opt, [2.0], [[1.0], [1.0]])[:, 0], [1.88, 1.7012])


def test_sgd_steps_by_hand():
    # sgd is torch.optim.SGD on whatever gradient it is given: same numbers as momentum above.
    opt = optim.sgd(lr=0.1, batch_size=4, momentum=0.9, dampening=0.5)
    close(run(opt, [0.0], [[1.0], [2.0], [-1.0]])[:, 0], [-0.1, -0.29, -0.411])
    close(run(optim.sgd(lr=0.5), [1.0], [[3.0]])[:, 0], [1.0 - 1.5])


def test_adagrad_with_lr_decay_and_initial_accumulator_steps_by_hand():
    # lr = 0.5, lr_decay = 0.5, initial_accumulator_value = 16, eps = 1 (large, to see where it goes).
    # Coordinate 1: g = 3, 12.  Coordinate 2: g = 0, -3.
    #   t = 1: clr = 0.5 / (1 + 0 * 0.5) = 0.5;  s = [16 + 9, 16 + 0] = [25, 16]
    #          x1 = [1 - 0.5 * 3 / (5 + 1), 0 - 0] = [0.75, 0]
    #   t = 2: clr = 0.5 / (1 + 1 * 0.5) = 1/3;  s = [25 + 144, 16 + 9] = [169, 25]
    #          x2 = [0.75 - (1/3) * 12 / (13 + 1), 0 - (1/3) * (-3) / (5 + 1)] = [0.75 - 2/7, 1/6]
    opt = optim.adagrad(lr=0.5, lr_decay=0.5, initial_accumulator_value=16.0, eps=1.0)
    iterates = run(opt, [1.0, 0.0], [[3.0, 0.0], [12.0, -3.0]])
    close(iterates, [[0.75, 0.0], [0.75 - 2 / 7, 1 / 6]])


def test_rmsprop_steps_by_hand():
    # lr = 0.1, alpha = 0.75, eps = 1, g = 2 then 4:
    #   v1 = 0.25 * 4 = 1;                x1 = -0.1 * 2 / (1 + 1) = -0.1
    #   v2 = 0.75 * 1 + 0.25 * 16 = 4.75;  x2 = -0.1 - 0.1 * 4 / (sqrt(4.75) + 1)
    iterates = run(optim.rmsprop(lr=0.1, alpha=0.75, eps=1.0), [0.0], [[2.0], [4.0]])
    close(iterates[:, 0], [-0.1, -0.1 - 0.4 / (math.sqrt(4.75) + 1)])


def test_rmsprop_centered_with_momentum_steps_by_hand():
    # lr = 0.1, alpha = 0.5, eps = 0, momentum = 0.5, centered; g = 2, 4, 1.
    #   v1 = 0.5 * 4 = 2;           m1 = 0.5 * 2 = 1;            avg1 = sqrt(2 - 1) = 1
    #   b1 = 2 / 1 = 2;                                          x1 = -0.2
    #   v2 = 0.5 * 2 + 0.5 * 16 = 9;  m2 = 0.5 * 1 + 0.5 * 4 = 2.5;  avg2 = sqrt(9 - 6.25)
    #   b2 = 0.5 * 2 + 4 / avg2;                                 x2 = x1 - 0.1 * b2
    #   v3 = 0.5 * 9 + 0.5 * 1 = 5;   m3 = 0.5 * 2.5 + 0.5 * 1 = 1.75;  avg3 = sqrt(5 - 3.0625)
    #   b3 = 0.5 * b2 + 1 / avg3;                                x3 = x2 - 0.1 * b3
    b2 = 0.5 * 2 + 4 / math.sqrt(2.75)
    b3 = 0.5 * b2 + 1 / math.sqrt(1.9375)
    expected = [-0.2, -0.2 - 0.1 * b2, -0.2 - 0.1 * b2 - 0.1 * b3]
    opt = optim.rmsprop(lr=0.1, alpha=0.5, eps=0.0, momentum=0.5, centered=True)
    close(run(opt, [0.0], [[2.0], [4.0], [1.0]])[:, 0], expected)


def test_adam_steps_by_hand():
    # lr = 0.1, betas = (0.5, 0.75), eps = 0.5 (large, to see where it goes); g = 2 then 4.
    #   m1 = 0.5 * 2 = 1;   v1 = 0.25 * 4 = 1;   m^ = 1 / 0.5 = 2;   v^ = 1 / 0.25 = 4
    #   x1 = -0.1 * 2 / (sqrt(4) + 0.5) = -0.08
    #   m2 = 0.5 * 1 + 0.5 * 4 = 2.5;   v2 = 0.75 * 1 + 0.25 * 16 = 4.75
    #   m^ = 2.5 / (1 - 0.25) = 10/3;   v^ = 4.75 / (1 - 0.5625) = 76/7
    #   x2 = x1 - 0.1 * (10/3) / (sqrt(76/7) + 0.5)
    opt = optim.adam(lr=0.1, betas=(0.5, 0.75), eps=0.5)
    expected = [-0.08, -0.08 - 0.1 * (10 / 3) / (math.sqrt(76 / 7) + 0.5)]
    close(run(opt, [0.0], [[2.0], [4.0]])[:, 0], expected)


def test_adam_amsgrad_steps_by_hand():
    # lr = 0.1, betas = (0.5, 0.75), eps = 0; g = 4, 0, 0 (so v falls and amsgrad keeps its max).
    # torch takes the max of the raw v and bias-corrects it with the current step's factor.
    #   t = 1: m = 2,   v = 4,    max = 4;  m^ = 2 / 0.5 = 4;         x1 = -0.1 * 4 / sqrt(4 / 0.25) = -0.1
    #   t = 2: m = 1,   v = 3,    max = 4;  m^ = 1 / 0.75 = 4/3;      bc2 = 1 - 0.75^2 = 7/16
    #   t = 3: m = 0.5, v = 2.25, max = 4;  m^ = 0.5 / 0.875 = 4/7;   bc2 = 1 - 0.75^3 = 37/64
    grads = [[4.0], [0.0], [0.0]]
    step2_ams, step2_plain = 0.1 * (4 / 3) / math.sqrt(4 * 16 / 7), 0.1 * (4 / 3) / math.sqrt(3 * 16 / 7)
    step3_ams, step3_plain = 0.1 * (4 / 7) / math.sqrt(4 * 64 / 37), 0.1 * (4 / 7) / math.sqrt(2.25 * 64 / 37)
    ams = run(optim.adam(lr=0.1, betas=(0.5, 0.75), eps=0.0, amsgrad=True), [0.0], grads)[:, 0]
    plain = run(optim.adam(lr=0.1, betas=(0.5, 0.75), eps=0.0), [0.0], grads)[:, 0]
    close(ams, [-0.1, -0.1 - step2_ams, -0.1 - step2_ams - step3_ams])
    close(plain, [-0.1, -0.1 - step2_plain, -0.1 - step2_plain - step3_plain])


def test_adam_weight_decay_is_l2_in_the_gradient_by_hand():
    # lr = 0.1, betas = (0.5, 0.75), eps = 0, weight_decay = 0.5, x0 = 2, raw gradient 1.
    #   g1 = 1 + 0.5 * 2 = 2: Adam's first step at eps 0 has length lr, so x1 = 1.9
    #   g2 = 1 + 0.5 * 1.9 = 1.95;  m2 = 0.5 * 1 + 0.5 * 1.95 = 1.475;  v2 = 0.75 * 1 + 0.25 * 1.95^2
    #   x2 = 1.9 - 0.1 * (1.475 / 0.75) / sqrt(v2 / 0.4375)
    # (AdamW would instead shrink x by lr * weight_decay outside the moments.)
    v2 = 0.75 + 0.25 * 1.95**2
    expected = [1.9, 1.9 - 0.1 * (1.475 / 0.75) / math.sqrt(v2 / 0.4375)]
    opt = optim.adam(lr=0.1, betas=(0.5, 0.75), eps=0.0, weight_decay=0.5)
    close(run(opt, [2.0], [[1.0], [1.0]])[:, 0], expected)


# ----------------------------------------------------------------------------- 2. identities


def test_momentum_zero_is_exactly_gd():
    x0 = [2.0, -1.0, 0.5]
    for weight_decay in (0.0, 0.05):
        reference = descend(optim.gd(lr=0.1, weight_decay=weight_decay), quadratic_grad, x0, 200)
        # dampening has no effect at momentum 0, as in torch (no momentum buffer at all)
        heavy_ball = optim.momentum(lr=0.1, momentum=0.0, dampening=0.3, weight_decay=weight_decay)
        np.testing.assert_array_equal(descend(heavy_ball, quadratic_grad, x0, 200), reference)
        plain_sgd = optim.sgd(lr=0.1, momentum=0.0, weight_decay=weight_decay)
        np.testing.assert_array_equal(descend(plain_sgd, quadratic_grad, x0, 200), reference)


def test_sgd_factory_is_the_same_rule_as_momentum_and_nesterov():
    x0 = [2.0, -1.0, 0.5]
    pairs = [
        (optim.sgd(lr=0.05, momentum=0.8, dampening=0.2), optim.momentum(lr=0.05, momentum=0.8, dampening=0.2)),
        (optim.sgd(lr=0.05, momentum=0.8, nesterov=True), optim.nesterov(lr=0.05, momentum=0.8)),
    ]
    for ours, reference in pairs:
        np.testing.assert_array_equal(
            descend(ours, quadratic_grad, x0, 100), descend(reference, quadratic_grad, x0, 100)
        )


def test_rmsprop_with_alpha_zero_and_eps_zero_is_sign_descent():
    # v_t = g_t^2 exactly, sqrt(fl(g^2)) = |g| in binary floating point, so x <- x - lr * sign(g).
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(20, 7))
    x0 = rng.integers(-16, 16, size=7) / 8  # multiples of lr: every iterate is exact
    iterates = run(optim.rmsprop(lr=0.125, alpha=0.0, eps=0.0), x0, grads)
    expected = x0 - 0.125 * np.cumsum(np.sign(grads), axis=0)
    np.testing.assert_array_equal(iterates, expected)


def test_adagrad_first_step_is_sign_descent():
    # s_1 = 0 + g^2, so the first step is lr * g / |g| when eps = 0.
    rng = np.random.default_rng(2)
    g, x0 = rng.normal(size=7), rng.normal(size=7)
    x1 = run(optim.adagrad(lr=0.25, eps=0.0), x0, [g])[0]
    np.testing.assert_array_equal(x1, x0 - 0.25 * np.sign(g))


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.0, 0.5), (0.3, 0.0)])
def test_adam_first_step_has_length_lr(betas):
    # m^_1 = g and v^_1 = g^2, so with eps = 0 every coordinate moves by exactly lr (to rounding).
    rng = np.random.default_rng(3)
    g = rng.normal(size=7)
    x1 = run(optim.adam(lr=0.01, betas=betas, eps=0.0), np.zeros(7), [g])[0]
    close(x1, -0.01 * np.sign(g))


def test_adam_with_beta1_zero_is_bias_corrected_rmsprop():
    # torch's Adam at beta1 = 0: exp_avg.lerp_(grad, 1) is grad exactly and 1 - 0**t = 1, while
    # exp_avg_sq follows RMSprop's square_avg recursion with alpha = beta2 operation for operation.
    # So with eps = 0 the Adam step is the RMSprop step times sqrt(1 - beta2^t).
    rng = np.random.default_rng(4)
    grads = rng.normal(size=(30, 5))
    beta2, lr = 0.9, 0.01
    adam, rms = optim.adam(lr=lr, betas=(0.0, beta2), eps=0.0), optim.rmsprop(lr=lr, alpha=beta2, eps=0.0)
    x = np.zeros(5)  # gradients do not depend on x: each update's new_x is minus its step
    adam_state, rms_state = adam.init(x), rms.init(x)
    for t, g in enumerate(grads, start=1):
        adam_x, adam_state = adam.update(g, adam_state, x)
        rms_x, rms_state = rms.update(g, rms_state, x)
        np.testing.assert_array_equal(adam_state.exp_avg, g)
        np.testing.assert_array_equal(adam_state.exp_avg_sq, rms_state.square_avg)
        close(adam_x, rms_x * math.sqrt(1 - beta2**t))


# ----------------------------------------------------------------------------- 3. purity

EVERY_CONFIG = {
    "gd": lambda: optim.gd(lr=0.1),
    "gd_weight_decay": lambda: optim.gd(lr=0.1, weight_decay=0.1),
    "momentum_dampening": lambda: optim.momentum(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.1),
    "nesterov": lambda: optim.nesterov(lr=0.1, momentum=0.9, weight_decay=0.1),
    "sgd_nesterov": lambda: optim.sgd(lr=0.1, batch_size=8, momentum=0.5, nesterov=True),
    "adagrad": lambda: optim.adagrad(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5),
    "rmsprop": lambda: optim.rmsprop(lr=0.1, weight_decay=0.1),
    "rmsprop_centered_momentum": lambda: optim.rmsprop(lr=0.1, momentum=0.5, centered=True),
    "adam": lambda: optim.adam(lr=0.1, weight_decay=0.1),
    "adam_amsgrad": lambda: optim.adam(lr=0.1, betas=(0.0, 0.9), amsgrad=True),
}


def _snapshot(state) -> dict:
    return {name: (value.copy() if isinstance(value, np.ndarray) else value) for name, value in state._asdict().items()}


@pytest.mark.parametrize("make", EVERY_CONFIG.values(), ids=EVERY_CONFIG.keys())
def test_update_mutates_none_of_its_inputs(make):
    opt = make()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4))
    state = opt.init(x)
    for _ in range(4):
        g = rng.normal(size=x.shape)
        before_x, before_g, before_state = x.copy(), g.copy(), _snapshot(state)
        new_x, new_state = opt.update(g, state, x)
        np.testing.assert_array_equal(x, before_x)
        np.testing.assert_array_equal(g, before_g)
        for name, value in before_state.items():
            np.testing.assert_array_equal(getattr(state, name), value, err_msg=name)
        if "step" in before_state:
            assert new_state.step == state.step + 1
        assert not np.array_equal(new_x, x)
        x, state = new_x, new_state


@pytest.mark.parametrize("make", [EVERY_CONFIG["gd"], EVERY_CONFIG["gd_weight_decay"]], ids=["gd", "weight_decay"])
def test_gd_keeps_no_state_like_torch(make):
    # torch.optim.SGD stores no momentum buffer at momentum 0; gd's state passes through unchanged.
    opt = make()
    x = np.ones(3)
    state = opt.init(x)
    _, new_state = opt.update(np.ones(3), state, x)
    assert state.momentum_buffer is None
    assert new_state is state


def test_momentum_buffer_starts_as_the_first_gradient_like_torch():
    opt = optim.momentum(lr=0.1, momentum=0.9, dampening=0.5)
    x, g = np.ones(3), np.array([1.0, -2.0, 3.0])
    state = opt.init(x)
    assert state.momentum_buffer is None
    _, state = opt.update(g, state, x)
    np.testing.assert_array_equal(state.momentum_buffer, g)  # b_1 = g, dampening not applied
    _, state = opt.update(g, state, x)
    np.testing.assert_allclose(state.momentum_buffer, 0.9 * g + 0.5 * g, rtol=1e-15)


# ----------------------------------------------------------------------------- 4. batched hyperparameters

BATCHED = {
    "gd": (optim.gd, {"lr": np.array([0.05, 0.1, 0.2, 0.3]), "weight_decay": np.array([0.0, 0.1, 0.0, 0.5])}),
    # momentum 0 next to momentum > 0 with nonzero dampening: those configs must still be gd
    "momentum": (
        optim.momentum,
        {
            "lr": np.array([0.05, 0.1, 0.02, 0.1]),
            "momentum": np.array([0.0, 0.5, 0.9, 0.0]),
            "dampening": np.array([0.3, 0.0, 0.1, 0.0]),
            "weight_decay": np.array([0.0, 0.1, 0.0, 0.01]),
        },
    ),
    "nesterov": (optim.nesterov, {"lr": np.array([0.05, 0.1, 0.02, 0.1]), "momentum": np.array([0.1, 0.5, 0.9, 0.7])}),
    "sgd": (
        optim.sgd,
        {"lr": np.array([0.05, 0.1, 0.02, 0.1]), "momentum": np.array([0.0, 0.5, 0.9, 0.7]), "batch_size": 4},
    ),
    "adagrad": (
        optim.adagrad,
        {
            "lr": np.array([0.05, 0.5, 1.0, 0.3]),
            "lr_decay": np.array([0.0, 0.1, 0.01, 0.5]),
            "weight_decay": np.array([0.0, 0.0, 0.1, 0.01]),
            "initial_accumulator_value": np.array([0.0, 0.1, 1.0, 5.0]),
            "eps": np.array([1e-10, 0.0, 1e-3, 0.5]),
        },
    ),
    "rmsprop_centered": (
        optim.rmsprop,
        {
            "lr": np.array([0.01, 0.02, 0.005, 0.01]),
            "alpha": np.array([0.3, 0.9, 0.99, 0.5]),  # both branches of torch's lerp
            "eps": np.array([1e-8, 0.0, 1e-3, 0.1]),
            "momentum": np.array([0.0, 0.5, 0.9, 0.0]),
            "weight_decay": np.array([0.0, 0.1, 0.0, 0.01]),
            "centered": True,
        },
    ),
    "rmsprop": (
        optim.rmsprop,
        # alpha = 1 never updates v from 0, so that config needs a large eps to stay finite
        {
            "lr": np.array([0.01, 0.02, 0.005, 0.01]),
            "alpha": np.array([0.0, 0.9, 0.99, 1.0]),
            "eps": np.array([1e-8, 1e-8, 1e-8, 10.0]),
            "momentum": 0.3,
        },
    ),
    "adam": (
        optim.adam,
        {
            "lr": np.array([0.01, 0.05, 0.1, 0.02]),
            "betas": (np.array([0.0, 0.5, 0.9, 0.3]), np.array([0.9, 0.99, 0.999, 0.0])),
            "eps": np.array([1e-8, 0.0, 1e-3, 0.1]),
            "weight_decay": np.array([0.0, 0.1, 0.0, 0.01]),
        },
    ),
    "adam_amsgrad": (
        optim.adam,
        {"lr": np.array([0.01, 0.05, 0.1, 0.02]), "betas": (0.9, np.array([0.9, 0.99, 0.999, 0.5])), "amsgrad": True},
    ),
    # a two-axis batch shape B = (2, 2)
    "adam_2d_batch": (optim.adam, {"lr": np.array([[0.01, 0.05], [0.1, 0.02]]), "betas": (0.5, 0.9)}),
}


def _one_config(value, index):
    """The value that config ``index`` of a batch sees, as a plain float (or unchanged if shared)."""
    if isinstance(value, np.ndarray):
        return float(value[index])
    if isinstance(value, tuple):
        return tuple(_one_config(v, index) for v in value)
    return value


@pytest.mark.parametrize("factory, kwargs", BATCHED.values(), ids=BATCHED.keys())
def test_batched_hyperparameters_match_each_config_run_alone(factory, kwargs):
    batch_shape = next(v.shape for v in kwargs.values() if isinstance(v, np.ndarray))
    x0 = np.random.default_rng(6).normal(size=(*batch_shape, 3))
    batched = descend(factory(**kwargs), quadratic_grad, x0, 30)
    assert np.all(np.isfinite(batched))
    for index in np.ndindex(*batch_shape):
        alone = descend(factory(**{k: _one_config(v, index) for k, v in kwargs.items()}), quadratic_grad, x0[index], 30)
        np.testing.assert_array_equal(batched[(slice(None), *index)], alone, err_msg=f"config {index}")


# ----------------------------------------------------------------------------- 5. convergence


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def rosenbrock_grad(x):
    return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])


BOWL_Q = np.array([[3.0, 1.0], [1.0, 2.0]])
BOWL_C = np.array([1.0, -2.0])
BOWL_MIN = np.linalg.solve(BOWL_Q, BOWL_C)


def bowl_grad(x):
    return BOWL_Q @ x - BOWL_C


# (optimizer, distance to the bowl's minimizer after 1000 steps from (2, 2))
BOWL = {
    "gd": (optim.gd(lr=0.2), 1e-8),
    "momentum": (optim.momentum(lr=0.1, momentum=0.5), 1e-8),
    "nesterov": (optim.nesterov(lr=0.1, momentum=0.5), 1e-8),
    "sgd": (optim.sgd(lr=0.2, batch_size=1), 1e-8),  # with the exact gradient
    "adagrad": (optim.adagrad(lr=1.0), 1e-8),
    # constant-lr RMSprop ends in a small oscillation of about lr
    "rmsprop": (optim.rmsprop(lr=0.01), 5e-2),
    "rmsprop_centered_momentum": (optim.rmsprop(lr=0.01, momentum=0.5, centered=True), 5e-2),
    "adam": (optim.adam(lr=0.05), 1e-6),
    "adam_amsgrad": (optim.adam(lr=0.05, amsgrad=True), 1e-3),
}


@pytest.mark.parametrize("opt, tolerance", BOWL.values(), ids=BOWL.keys())
def test_converges_on_a_quadratic_bowl(opt, tolerance):
    x = descend(opt, bowl_grad, [2.0, 2.0], 1000)[-1]
    assert np.linalg.norm(x - BOWL_MIN) < tolerance


ROSENBROCK = {
    "gd": optim.gd(lr=2e-3),
    "momentum": optim.momentum(lr=5e-4, momentum=0.9),
    "nesterov": optim.nesterov(lr=5e-4, momentum=0.9),
    "sgd": optim.sgd(lr=2e-3, batch_size=1),  # with the exact gradient
    "adagrad": optim.adagrad(lr=0.5),
    "rmsprop": optim.rmsprop(lr=1e-3),
    "rmsprop_centered_momentum": optim.rmsprop(lr=1e-3, momentum=0.5, centered=True),
    "adam": optim.adam(lr=2e-2),
    "adam_amsgrad": optim.adam(lr=2e-2, amsgrad=True),
}


@pytest.mark.parametrize("opt", ROSENBROCK.values(), ids=ROSENBROCK.keys())
def test_makes_good_progress_on_rosenbrock(opt):
    # f(-1.2, 1) = 24.2; the minimum is f(1, 1) = 0.
    x = descend(opt, rosenbrock_grad, [-1.2, 1.0], 4000)[-1]
    assert rosenbrock(x) < 1e-2
    assert np.linalg.norm(x - 1.0) < 0.25


# ----------------------------------------------------------------------------- 6. validation

INVALID = [
    # (factory, kwargs, key the message must start with)
    (optim.gd, {"lr": 0.0}, "lr"),
    (optim.gd, {"lr": -0.1}, "lr"),
    (optim.adam, {"lr": -1e-3}, "lr"),
    (optim.gd, {"lr": float("nan")}, "lr"),
    (optim.gd, {"lr": "fast"}, "lr"),
    (optim.gd, {"lr": None}, "lr"),
    (optim.gd, {"lr": True}, "lr"),
    (optim.gd, {"lr": np.array([0.1, -0.1])}, "lr"),
    (optim.momentum, {"momentum": -0.5}, "optimizer.momentum"),
    (optim.momentum, {"momentum": 1.0}, "optimizer.momentum"),
    (optim.sgd, {"momentum": 1.5}, "optimizer.momentum"),
    (optim.rmsprop, {"momentum": -0.1}, "optimizer.momentum"),
    (optim.nesterov, {"momentum": 0.0}, "optimizer.momentum"),
    (optim.nesterov, {"momentum": np.array([0.9, 0.0])}, "optimizer.momentum"),
    (optim.sgd, {"nesterov": True}, "optimizer.momentum"),  # sgd's default momentum is 0
    (optim.adam, {"betas": (1.0, 0.999)}, "optimizer.betas[0]"),
    (optim.adam, {"betas": (-0.1, 0.999)}, "optimizer.betas[0]"),
    (optim.adam, {"betas": (0.9, 1.0)}, "optimizer.betas[1]"),
    (optim.adam, {"betas": (0.9, "high")}, "optimizer.betas[1]"),
    (optim.adam, {"betas": (0.9,)}, "optimizer.betas"),
    (optim.adam, {"betas": (0.9, 0.99, 0.999)}, "optimizer.betas"),
    (optim.adam, {"betas": 0.9}, "optimizer.betas"),
    (optim.adam, {"betas": "ab"}, "optimizer.betas"),
    (optim.adam, {"betas": None}, "optimizer.betas"),
    (optim.rmsprop, {"alpha": -0.1}, "optimizer.alpha"),
    (optim.rmsprop, {"alpha": 1.5}, "optimizer.alpha"),
    (optim.adam, {"eps": -1e-8}, "optimizer.eps"),
    (optim.rmsprop, {"eps": -1e-8}, "optimizer.eps"),
    (optim.adagrad, {"eps": -1e-10}, "optimizer.eps"),
    (optim.gd, {"weight_decay": -0.1}, "optimizer.weight_decay"),
    (optim.momentum, {"weight_decay": -0.1}, "optimizer.weight_decay"),
    (optim.nesterov, {"weight_decay": -0.1}, "optimizer.weight_decay"),
    (optim.sgd, {"weight_decay": -0.1}, "optimizer.weight_decay"),
    (optim.adagrad, {"weight_decay": -0.1}, "optimizer.weight_decay"),
    (optim.rmsprop, {"weight_decay": -0.1}, "optimizer.weight_decay"),
    (optim.adam, {"weight_decay": -0.1}, "optimizer.weight_decay"),
    (optim.adagrad, {"lr_decay": -0.1}, "optimizer.lr_decay"),
    (optim.adagrad, {"initial_accumulator_value": -1.0}, "optimizer.initial_accumulator_value"),
    (optim.sgd, {"batch_size": 0}, "optimizer.batch_size"),
    (optim.sgd, {"batch_size": -4}, "optimizer.batch_size"),
    (optim.sgd, {"batch_size": 2.5}, "optimizer.batch_size"),
    (optim.sgd, {"batch_size": 32.0}, "optimizer.batch_size"),
    (optim.sgd, {"batch_size": "32"}, "optimizer.batch_size"),
    (optim.sgd, {"batch_size": True}, "optimizer.batch_size"),
    (optim.sgd, {"batch_size": None}, "optimizer.batch_size"),
    (optim.sgd, {"momentum": 0.9, "nesterov": "yes"}, "optimizer.nesterov"),
    (optim.sgd, {"momentum": 0.9, "nesterov": 1}, "optimizer.nesterov"),
    (optim.rmsprop, {"centered": "true"}, "optimizer.centered"),
    (optim.rmsprop, {"centered": 0}, "optimizer.centered"),
    (optim.adam, {"amsgrad": "false"}, "optimizer.amsgrad"),
    (optim.adam, {"amsgrad": None}, "optimizer.amsgrad"),
]


@pytest.mark.parametrize(
    "factory, kwargs, key",
    INVALID,
    ids=[f"{f.__name__}({', '.join(f'{k}={v!r}' for k, v in kw.items())})" for f, kw, _ in INVALID],
)
def test_bad_hyperparameter_raises_one_line_config_error_naming_the_key(factory, kwargs, key):
    with pytest.raises(ConfigError) as caught:
        factory(**kwargs)
    message = str(caught.value)
    assert message.startswith(key + "="), message
    assert "\n" not in message
    assert "expected" in message


@pytest.mark.parametrize("betas", [{0.9, 0.99}, {"a": 0.9, "b": 0.99}, "ab", 0.9])
def test_betas_that_are_not_a_pair_are_a_config_error(betas):
    with pytest.raises(ConfigError, match=r"optimizer.betas=.*: expected a pair"):
        optim.adam(betas=betas)


def test_nesterov_with_dampening_is_rejected_and_says_why():
    with pytest.raises(ConfigError) as caught:
        optim.sgd(momentum=0.9, dampening=0.5, nesterov=True)
    assert "dampening" in str(caught.value) and "nesterov" in str(caught.value)


def test_bad_value_in_a_two_axis_batch_still_gives_one_line():
    with pytest.raises(ConfigError) as caught:
        optim.gd(lr=np.array([[0.1, -0.1], [0.2, 0.3]]))
    assert "\n" not in str(caught.value)


def test_valid_edge_values_are_accepted():
    # torch's ranges: momentum and betas may be 0; eps, weight_decay, lr_decay may be 0.
    optim.momentum(momentum=0.0)
    optim.adam(betas=(0.0, 0.0), eps=0.0)
    optim.rmsprop(alpha=0.0, eps=0.0)
    optim.rmsprop(alpha=1.0)
    optim.adagrad(lr_decay=0.0, initial_accumulator_value=0.0, eps=0.0)
    assert optim.sgd(batch_size=np.int64(1)).batch_size == 1


# ----------------------------------------------------------------------------- 7. torch.optim, step by step

N = 6
_rng = np.random.default_rng(2024)
_A = _rng.normal(size=(N, N))
TORCH_Q = _A @ _A.T / N + 0.5 * np.eye(N)
TORCH_C = _rng.normal(size=N)
TORCH_X0 = _rng.normal(size=N)


def torch_problem_grad(x):
    return TORCH_Q @ x - TORCH_C


# (our optimizer, torch.optim class name, that class's keyword arguments)
TORCH_CASES = {
    "sgd_plain": (optim.gd(lr=0.1), "SGD", {"lr": 0.1}),
    "sgd_weight_decay": (optim.gd(lr=0.1, weight_decay=0.2), "SGD", {"lr": 0.1, "weight_decay": 0.2}),
    "sgd_momentum": (optim.momentum(lr=0.05, momentum=0.9), "SGD", {"lr": 0.05, "momentum": 0.9}),
    "sgd_dampening": (
        optim.momentum(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1),
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1},
    ),
    "sgd_nesterov": (optim.nesterov(lr=0.05, momentum=0.9), "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "sgd_factory_nesterov_wd": (
        optim.sgd(lr=0.05, batch_size=8, momentum=0.8, weight_decay=0.1, nesterov=True),
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.1, "nesterov": True},
    ),
    "adagrad": (optim.adagrad(lr=0.5), "Adagrad", {"lr": 0.5}),
    "adagrad_lr_decay": (
        optim.adagrad(lr=0.5, lr_decay=0.05, initial_accumulator_value=0.1, weight_decay=0.01, eps=1e-6),
        "Adagrad",
        {"lr": 0.5, "lr_decay": 0.05, "initial_accumulator_value": 0.1, "weight_decay": 0.01, "eps": 1e-6},
    ),
    "rmsprop": (optim.rmsprop(lr=0.01), "RMSprop", {"lr": 0.01}),
    "rmsprop_centered_momentum": (
        optim.rmsprop(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
        "RMSprop",
        {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    ),
    "rmsprop_centered_small_alpha": (
        optim.rmsprop(lr=0.01, alpha=0.3, centered=True),
        "RMSprop",
        {"lr": 0.01, "alpha": 0.3, "centered": True},
    ),
    "adam": (optim.adam(lr=0.05), "Adam", {"lr": 0.05}),
    "adam_amsgrad": (optim.adam(lr=0.05, amsgrad=True), "Adam", {"lr": 0.05, "amsgrad": True}),
    "adam_small_beta1_wd": (
        optim.adam(lr=0.05, betas=(0.3, 0.9), weight_decay=0.01),
        "Adam",
        {"lr": 0.05, "betas": (0.3, 0.9), "weight_decay": 0.01},
    ),
    "adam_beta1_zero": (optim.adam(lr=0.05, betas=(0.0, 0.99)), "Adam", {"lr": 0.05, "betas": (0.0, 0.99)}),
}


@pytest.mark.parametrize("ours, torch_class, torch_kwargs", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_iterates_match_torch_optim(ours, torch_class, torch_kwargs):
    torch = pytest.importorskip("torch")
    param = torch.tensor(TORCH_X0, dtype=torch.float64, requires_grad=True)
    reference = getattr(torch.optim, torch_class)([param], **torch_kwargs)
    x, state = TORCH_X0.copy(), ours.init(TORCH_X0)
    worst = 0.0
    for _ in range(50):
        param.grad = torch.from_numpy(torch_problem_grad(param.detach().numpy().copy()))
        reference.step()
        x, state = ours.update(torch_problem_grad(x), state, x)
        theirs = param.detach().numpy()
        worst = max(worst, np.max(np.abs(x - theirs)) / np.max(np.abs(theirs)))
    print(f"max relative discrepancy vs torch.optim.{torch_class}{torch_kwargs}: {worst:.3e}")
    assert np.max(np.abs(x - TORCH_X0)) > 0.1, "the iterates should have moved"
    assert worst < 1e-12


@pytest.mark.parametrize(
    "ours, torch_class",
    [(optim.sgd, "SGD"), (optim.adagrad, "Adagrad"), (optim.rmsprop, "RMSprop"), (optim.adam, "Adam")],
)
def test_names_and_defaults_match_torch_optim(ours, torch_class):
    import inspect

    torch = pytest.importorskip("torch")
    theirs = inspect.signature(getattr(torch.optim, torch_class)).parameters
    for name, parameter in inspect.signature(ours).parameters.items():
        if name == "batch_size":  # ours only: sgd runs on minibatch gradients
            continue
        assert name in theirs, name
        assert parameter.default == theirs[name].default, name


# ----------------------------------------------------------------------------- stability on quadratics

STABLE_CASES = {  # factory, hyperparameters besides lr (each momentum value gets its own limit)
    "gd": ("gd", {}),
    "gd_weight_decay": ("gd", {"weight_decay": 0.05}),
    "momentum_0.3": ("momentum", {"momentum": 0.3}),
    "momentum_0.9": ("momentum", {"momentum": 0.9}),
    "momentum_dampening": ("momentum", {"momentum": 0.6, "dampening": 0.5, "weight_decay": 0.05}),
    "nesterov_0.3": ("nesterov", {"momentum": 0.3}),
    "nesterov_0.9": ("nesterov", {"momentum": 0.9}),
    "nesterov_weight_decay": ("nesterov", {"momentum": 0.6, "weight_decay": 0.05}),
}


def _final_ratio(factory, lr: float, hyper: dict, L: float, steps: int = 4000) -> float:
    """|x_steps| / |x_0| of the optimizer on f(x) = L x^2 / 2 in 1-D."""
    with np.errstate(over="ignore", invalid="ignore"):  # above the limit it overflows, as it should
        x = descend(factory(lr=lr, **hyper), lambda x: L * x, [1.0], steps)[-1]
    return float(abs(x[0]))


@pytest.mark.parametrize("name, hyper", STABLE_CASES.values(), ids=STABLE_CASES.keys())
def test_stable_lr_separates_converging_from_diverging_runs_on_a_quadratic(name, hyper):
    L = 2.0 / 9.0  # the shifted quadratic's largest Hessian eigenvalue
    factory = optim.OPTIMIZERS[name]
    limit = float(factory.stable_lr(L, **hyper))
    assert _final_ratio(factory, 0.97 * limit, hyper, L) < 1e-6  # just below: converges
    grown = _final_ratio(factory, 1.03 * limit, hyper, L)
    assert not math.isfinite(grown) or grown > 1e6  # just above: blows up


def test_stable_lr_is_the_iteration_matrix_spectral_radius_one():
    """At lr = stable_lr the linear step on f = L x^2 / 2 has spectral radius 1, below it less.

    The step maps (x, buffer) linearly; its matrix is read off by applying one update to the
    unit vectors, through the optimizer itself (not through the formula under test).
    """
    L = 0.7
    for name, hyper in STABLE_CASES.values():
        factory = optim.OPTIMIZERS[name]
        for scale, below in ((1.0, False), (0.9, True)):
            lr = scale * float(factory.stable_lr(L, **hyper))
            opt = factory(lr=lr, **hyper)
            uses_buffer = hyper.get("momentum", 0.0) > 0

            def step(x, buf, opt=opt, uses_buffer=uses_buffer):
                state = opt.init(np.array([x]))
                if uses_buffer:
                    state = optim.SGDState(np.array([buf]))
                new_x, new_state = opt.update(L * np.array([x]), state, np.array([x]))
                return [new_x[0]] + ([new_state.momentum_buffer[0]] if uses_buffer else [])

            matrix = np.array([step(1.0, 0.0), step(0.0, 1.0)] if uses_buffer else [step(1.0, 0.0)]).T
            radius = max(abs(np.linalg.eigvals(matrix)))
            if below:
                assert radius < 1 - 1e-6, (name, hyper)
            else:
                assert radius == pytest.approx(1.0, abs=1e-9), (name, hyper)


def test_stable_lr_takes_an_array_of_momenta_and_nesterov_at_momentum_0_is_gd():
    L = 2.0 / 9.0
    m = np.array([0.0, 0.3, 0.9])
    heavy, nesterov = optim.momentum.stable_lr(L, momentum=m), optim.nesterov.stable_lr(L, momentum=m)
    for i, mi in enumerate(m):
        close(heavy[i], optim.momentum.stable_lr(L, momentum=float(mi)))
        close(nesterov[i], optim.nesterov.stable_lr(L, momentum=float(mi)))
    close(nesterov[0], optim.gd.stable_lr(L))
    close(heavy[0], optim.gd.stable_lr(L))
    assert np.all(nesterov[1:] < heavy[1:])  # the look-ahead step is the less tolerant one
    assert optim.gd.stable_lr(0.0) is None and optim.momentum.stable_lr(1.0, dampening=1.0) is None


def test_the_registry_names_every_gradient_optimizer_and_only_known_limits():
    conf = {p.stem for p in (Path(__file__).parents[1] / "conf" / "optimizer").glob("*.yaml")}
    assert set(optim.OPTIMIZERS) == conf - {"scipy"}
    assert all(factory.__name__ == name for name, factory in optim.OPTIMIZERS.items())
    with_limit = {name for name, factory in optim.OPTIMIZERS.items() if getattr(factory, "stable_lr", None)}
    assert with_limit == {"gd", "momentum", "nesterov"}
    for name in with_limit:  # the limit names its hyperparameters as the factory does
        limit_keys = set(inspect.signature(optim.OPTIMIZERS[name].stable_lr).parameters) - {"L"}
        assert limit_keys == set(inspect.signature(optim.OPTIMIZERS[name]).parameters) - {"lr"}
        assert "L" in optim.OPTIMIZERS[name].stable_lr.formula()
