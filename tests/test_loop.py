"""The iteration loop: stopping rules, trace rows, projection, minibatches, convergence."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import least_squares, quartic, shifted_quadratic, sin_cos, two_layer_net
from runner.errors import ConfigError
from runner.loop import EpochSampler, minimize
from runner.optimizers import Optimizer, adam, gd, momentum, sgd
from runner.stopping import Stop, stop_reason
from runner.trace import STATUSES, STOP_REASONS


def test_rows_are_x0_then_one_per_update():
    objective = shifted_quadratic()
    result = minimize(objective, gd(lr=0.1), max_iter=5)
    trace = result.trace
    assert result.status == "max_iter" and result.iterations == 5
    assert result.stop_reason == "max_iter" and result.message == "reached max_iter = 5"
    assert np.array_equal(trace.x[0], objective.x0)
    x = objective.x0.copy()
    for k in range(1, 6):  # row k is the iterate after k updates of x <- x - lr * g
        x = x - 0.1 * objective.grad(x)
        assert np.array_equal(trace.x[k], x)
    f, g = objective.value_and_grad(trace.x)
    assert np.array_equal(trace.f, f)
    assert np.allclose(trace.grad_norm, np.linalg.norm(g, axis=-1), rtol=1e-12, atol=0)
    assert list(trace.nfev) == [1, 2, 3, 4, 5, 6] and list(trace.ngev) == [1, 2, 3, 4, 5, 6]
    assert np.all(np.diff(trace.time_s) >= 0)


def test_stop_reason_applies_the_rules_in_order_and_names_each():
    rules = {"tol": 1e-3, "grad_tol": 1e-2, "max_iter": 10}
    # Every rule fires at once: the first in order wins.
    assert stop_reason(10, np.inf, 1.0, 0.0, **rules)[:2] == ("diverged", "diverged")
    assert stop_reason(10, 1.0, 1.0, np.nan, **rules)[:2] == ("diverged", "diverged")
    assert stop_reason(10, 1.0, 1.0, 1e-3, **rules)[:2] == ("converged", "grad_tol")
    assert stop_reason(10, 1.0, 1.0, 1.0, **rules)[:2] == ("converged", "tol")
    assert stop_reason(10, 1.0, 2.0, 1.0, **rules) == Stop("max_iter", "max_iter", "reached max_iter = 10")
    assert stop_reason(9, 1.0, 2.0, 1.0, **rules) is None
    # tol looks back one iterate: never at k = 0; grad_tol = 0 and tol = 0 never fire.
    assert stop_reason(0, 1.0, 1.0, 1.0, **rules) is None
    assert stop_reason(5, 1.0, 1.0, 0.0, tol=0.0, grad_tol=0.0, max_iter=10) is None
    stop = stop_reason(3, 1.0, 1.0 + 1e-4, 1.0, **rules)
    assert stop.status in STATUSES and stop.reason in STOP_REASONS
    assert stop.message == "|f_k - f_(k-1)| = 0.0001 < tol = 0.001"


def test_ctrl_c_ends_the_run_as_interrupted_with_its_rows():
    def update(g, state, x):
        if state == 3:
            raise KeyboardInterrupt
        return x - 0.1 * g, state + 1

    result = minimize(shifted_quadratic(), Optimizer(lambda x: 0, update, "gd3", {}), max_iter=100, tol=0)
    assert (result.status, result.stop_reason) == ("interrupted", "interrupted")
    assert result.iterations == 3 and result.message == "interrupted after iteration 3"


def test_momentum_zero_is_gd_through_the_loop():
    objective = sin_cos(seed=3)
    a = minimize(objective, gd(lr=0.01), max_iter=200, tol=0)
    b = minimize(objective, momentum(lr=0.01, momentum=0.0), max_iter=200, tol=0)
    assert np.array_equal(a.trace.x, b.trace.x) and np.array_equal(a.trace.f, b.trace.f)


def test_tol_rule_stops_at_the_first_small_change():
    result = minimize(shifted_quadratic(), gd(lr=0.5), max_iter=100_000, tol=1e-6)
    f = result.trace.f
    assert result.status == "converged" and result.stop_reason == "tol"
    assert abs(f[-1] - f[-2]) < 1e-6
    assert np.all(np.abs(np.diff(f[:-1])) >= 1e-6)


def test_grad_tol_rule():
    result = minimize(shifted_quadratic(), gd(lr=1.0), max_iter=100_000, tol=0, grad_tol=1e-8)
    assert result.status == "converged" and result.stop_reason == "grad_tol"
    assert result.trace.grad_norm[-1] <= 1e-8 < result.trace.grad_norm[-2]


def test_divergence_is_recorded_with_its_trace():
    # L = 2/9 for the shifted quadratic: gd is unstable for lr > 2/L = 9.
    result = minimize(shifted_quadratic(), gd(lr=20.0), max_iter=100_000, tol=0)
    assert result.status == "diverged" and result.stop_reason == "diverged"
    assert not np.isfinite(result.trace.f[-1])
    assert np.all(np.isfinite(result.trace.f[:-1]))
    assert np.all(np.diff(result.trace.f[:-1]) > 0)  # it grew every step until it overflowed
    assert result.iterations == len(result.trace.f) - 1


def test_projection_keeps_iterates_feasible():
    objective = sin_cos(seed=0)
    result = minimize(objective, adam(lr=0.5), max_iter=300, tol=0)
    x = result.trace.x
    assert np.all(x <= objective.upper + 0.0)
    assert np.any(x[-1] == objective.upper)  # some bound is active at the end
    # The gradient norm is the projected one: small at the constrained optimum though g is not.
    assert result.trace.grad_norm[-1] < 1e-2 < np.linalg.norm(objective.grad(x[-1]))


def test_convergence_to_known_minimisers():
    objective = shifted_quadratic()
    result = minimize(objective, gd(lr=1.0), max_iter=20_000, tol=1e-14)
    assert np.allclose(result.x, objective.x_star, atol=1e-5)
    objective = least_squares(seed=1)
    result = minimize(objective, momentum(lr=1e-3, momentum=0.9), max_iter=20_000, tol=1e-13)
    assert result.status == "converged"
    assert np.allclose(result.x, objective.x_star, atol=1e-5)
    assert result.f == pytest.approx(objective.f_star, rel=1e-8)


@pytest.mark.parametrize("x0, expected", [(-6.0, -4.48027), (2.0, 0.66238)])
def test_quartic_reaches_the_minimum_of_its_basin(x0, expected):
    objective = quartic(x0=[x0])
    result = minimize(objective, gd(lr=1e-3), max_iter=20_000, tol=1e-12)
    assert result.status == "converged"
    assert result.x[0] == pytest.approx(expected, abs=1e-4)
    if expected < 0:
        assert result.x[0] == pytest.approx(objective.x_star[0], abs=1e-4)


def test_epoch_sampler_covers_every_sample_once_per_epoch():
    sampler = EpochSampler(10, 3, np.random.default_rng(0))
    epoch = np.concatenate([sampler.next() for _ in range(3)])
    assert len(set(epoch.tolist())) == 9  # 3 full batches, the tail of 1 dropped
    assert all(len(sampler.next()) == 3 for _ in range(5))


def test_sgd_is_reproducible_from_the_seed_and_converges_near_the_optimum():
    objective = least_squares(seed=0)
    runs = [
        minimize(objective, sgd(lr=1e-3, batch_size=10), max_iter=2000, tol=0, rng=np.random.default_rng(s))
        for s in (5, 5, 6)
    ]
    assert np.array_equal(runs[0].trace.x, runs[1].trace.x)
    assert not np.array_equal(runs[0].trace.x, runs[2].trace.x)
    assert runs[0].f < 1.5 * objective.f_star  # noise floor of constant-step sgd, far below f(x0)
    assert runs[0].trace.f[0] > 10 * objective.f_star
    assert list(runs[0].trace.ngev[:3]) == [0, 1, 2]  # minibatch gradients used to reach row k


def test_sgd_needs_samples_and_a_batch_that_fits():
    with pytest.raises(ConfigError, match="optimizer="):
        minimize(shifted_quadratic(), sgd(lr=0.1), max_iter=1, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"optimizer.batch_size=500: expected an integer in \[1, 200\]"):
        minimize(two_layer_net(m=200), sgd(lr=0.1, batch_size=500), max_iter=1, rng=np.random.default_rng(0))


def test_trace_x_can_be_dropped():
    result = minimize(shifted_quadratic(), gd(lr=0.1), max_iter=3, record_x=False)
    assert result.trace.x.shape == (4, 0)
    assert result.x.shape == (2,)


def test_more_than_1000_coordinates_are_thinned_evenly():
    objective = two_layer_net(m=20, n=5, p=300)  # 300 * 5 + 2 * 300 + 1 = 2101 parameters
    result = minimize(objective, gd(lr=1e-4), max_iter=2)
    coords = result.trace.coords
    assert objective.dim == 2101 and len(coords) == 1000
    assert coords[0] == 0 and coords[-1] == 2100 and np.all(np.diff(coords) > 0)
    x = np.stack([objective.x0, result.x])  # rows 0 and 2 hold the traced coordinates of x0 and x_2
    assert np.array_equal(result.trace.x[[0, 2]], x[:, coords])
