"""scipy.optimize.minimize behind the adapter: analytic gradients, bounds, every method, same trace rows."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import quartic, shifted_quadratic, sin_cos
from runner.errors import ConfigError
from runner.scipy_minimize import METHODS, TAKES_BOUNDS, minimize_scipy, scipy_method


def test_lbfgsb_on_sin_cos_uses_the_analytic_gradient():
    objective = sin_cos(seed=0)
    result = minimize_scipy(objective, scipy_method("L-BFGS-B"), max_iter=1000, tol=0)
    assert result.status == "converged"
    nit = result.details["nit"]
    # With finite differences nfev would be about (n + 1) = 51 times nit.
    assert nit > 10 and result.nfev <= nit + 5 and result.ngev == result.nfev
    assert np.all(result.x <= objective.upper)
    assert result.trace.iterations == nit
    assert result.trace.grad_norm[-1] < 1e-3  # scipy's own ftol stops it, not our rules


@pytest.mark.parametrize("method", METHODS)
def test_every_method_minimises_the_shifted_quadratic(method):
    objective = shifted_quadratic()
    result = minimize_scipy(objective, scipy_method(method), max_iter=5000, tol=0)
    assert result.status in ("converged", "max_iter"), result.message
    assert np.allclose(result.x, objective.x_star, atol=2e-3), (method, result.x)
    trace = result.trace
    assert np.array_equal(trace.x[0], objective.x0)
    assert np.array_equal(trace.f, objective.value(trace.x))
    assert np.all(np.diff(trace.nfev) >= 0)


def test_tol_rule_stops_scipy_through_the_callback():
    result = minimize_scipy(shifted_quadratic(), scipy_method("Nelder-Mead"), max_iter=5000, tol=1e-3)
    assert result.status == "converged" and "tol" in result.message
    assert abs(result.trace.f[-1] - result.trace.f[-2]) < 1e-3


def test_max_iter_is_scipys_maxiter():
    result = minimize_scipy(sin_cos(seed=0), scipy_method("L-BFGS-B"), max_iter=3, tol=0)
    assert result.status == "max_iter" and result.iterations == 3


def test_method_names_are_case_insensitive_and_null_is_scipys_choice():
    assert scipy_method("l-bfgs-b").method == "L-BFGS-B"
    result = minimize_scipy(sin_cos(seed=0), scipy_method(None), max_iter=1000, tol=0)
    assert result.details["method"] == "L-BFGS-B"
    result = minimize_scipy(quartic(x0=[-6.0]), scipy_method(None), max_iter=1000, tol=0)
    assert result.details["method"] == "BFGS"
    assert result.x[0] == pytest.approx(quartic().x_star[0], abs=1e-5)


def test_bad_scipy_input():
    with pytest.raises(ConfigError, match=r"optimizer.method=Adamax: expected one of Nelder-Mead, .*trust-krylov"):
        scipy_method("Adamax")
    unbounded = sorted(set(METHODS) - TAKES_BOUNDS)
    with pytest.raises(ConfigError, match="optimizer.method=BFGS: expected a method that takes bounds"):
        minimize_scipy(sin_cos(), scipy_method("BFGS"), max_iter=10)
    assert "BFGS" in unbounded
    with pytest.raises(ConfigError, match=r"optimizer.options=.*Unknown solver options: ftoll"):
        minimize_scipy(shifted_quadratic(), scipy_method("L-BFGS-B", {"ftoll": 1e-3}), max_iter=10)
    with pytest.raises(ConfigError, match="optimizer.options.maxiter"):
        scipy_method("BFGS", {"maxiter": 3})
