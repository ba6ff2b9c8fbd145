"""scipy.optimize.minimize behind the adapter: analytic gradients, bounds, every method, same trace rows.

The adapter must keep scipy's meaning: the same x, f and nit as ``scipy.optimize.minimize``
called directly, and the run's status from scipy's own verdict.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.optimize

import runner
from objectives import REGISTRY, least_squares, quartic, shifted_quadratic, sin_cos
from runner.errors import ConfigError
from runner.run import run, summary_line
from runner.scipy_driver import (
    GRADIENT_TOLERANCE,
    METHODS,
    NEEDS_HESSIAN,
    TAKES_BOUNDS,
    USES_GRADIENT,
    minimize_scipy,
)
from runner.scipy_driver import scipy as scipy_method  # the factory; ``scipy`` is scipy itself here
from runner.trace import STOP_REASONS
from tests.helpers import run_module

# Small instances, so that every method on every objective takes well under a second.
SMALL = {
    "sin_cos": {"n": 8, "seed": 0},
    "least_squares": {"m": 30, "n": 4, "seed": 0},
    "two_layer_net": {"m": 20, "n": 2, "p": 3, "seed": 0},
}
MAX_ITER = 25
# The option that bounds the iterations, as scipy's documentation of each method names it.
LIMIT_OPTION = {"TNC": "maxfun"}


def small(name: str):
    return REGISTRY[name](**SMALL.get(name, {}))


def central_difference_hessian(objective):
    """The Hessian the adapter hands the trust-region methods: central differences of the
    analytic gradient with steps 1e-5 max(1, |x_i|), symmetrised."""

    def hess(x):
        n = len(x)
        h = 1e-5 * np.maximum(1.0, np.abs(x))
        _, grads = objective.value_and_grad(np.concatenate([x + np.diag(h), x - np.diag(h)]))
        hessian = (grads[:n] - grads[n:]) / (2 * h[:, None])
        return 0.5 * (hessian + hessian.T)

    return hess


def direct(objective, method, *, max_iter, tol=0.0, grad_tol=0.0):
    """``scipy.optimize.minimize`` as a user would call it, and the points its callback saw."""
    if method in USES_GRADIENT:

        def fun(x):
            f, g = objective.value_and_grad(x)
            return float(f), np.asarray(g, dtype=float)
    else:

        def fun(x):
            return float(objective.value_and_grad(x)[0])

    seen = []

    def callback(intermediate_result):  # TNC passes the bare x
        seen.append(np.array(getattr(intermediate_result, "x", intermediate_result), dtype=float))

    options = {LIMIT_OPTION.get(method, "maxiter"): max_iter}
    if grad_tol > 0:
        options["gtol"] = grad_tol
    kwargs = {
        "method": method,
        "jac": method in USES_GRADIENT,
        "tol": tol or None,
        "options": options,
        "callback": callback,
    }
    if objective.has_bounds:
        kwargs["bounds"] = scipy.optimize.Bounds(objective.lower, objective.upper)
    if method in NEEDS_HESSIAN:
        kwargs["hess"] = central_difference_hessian(objective)
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = scipy.optimize.minimize(fun, np.array(objective.x0, dtype=float), **kwargs)
    return result, seen


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_on_every_objective_equals_a_direct_scipy_call(name, method):
    objective = small(name)
    if objective.has_bounds and method not in TAKES_BOUNDS:
        pytest.skip(f"{name} has bounds and {method} takes none")
    # The runner's default tol, and grad_tol wherever the method has a gradient tolerance.
    settings = {"max_iter": MAX_ITER, "tol": 1e-6, "grad_tol": 1e-5 if method in GRADIENT_TOLERANCE else 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = minimize_scipy(objective, scipy_method(method), **settings)
    reference, seen = direct(objective, method, **settings)

    assert np.array_equal(result.x, reference.x)
    assert result.f == float(reference.fun)
    assert result.details["nit"] == reference.get("nit")
    assert (result.details["status"], result.details["success"]) == (reference.status, reference.success)
    assert result.details["message"] == str(reference.message) == result.message
    # The trace: x0, every point the callback saw, and scipy's answer if the callback did not see it.
    rows = [objective.x0, *seen]
    if not np.array_equal(rows[-1], reference.x):
        rows.append(reference.x)
    assert np.array_equal(result.trace.x, np.array(rows))
    assert result.iterations == reference.get("nit", len(rows) - 1)  # COBYLA has no nit
    assert np.array_equal(result.trace.f, objective.value(result.trace.x))
    assert np.all(np.diff(result.trace.nfev) >= 0)
    # The status is scipy's verdict.
    assert (result.status == "converged") == bool(reference.success)
    assert result.status in ("converged", "max_iter", "stopped")
    assert result.stop_reason == ("max_iter" if result.status == "max_iter" else "solver")


def test_the_issue_runs_no_longer_converge_at_their_start():
    """Nelder-Mead and trust-constr repeat f between callbacks: the runner's |f_k - f_(k-1)| rule
    stopped them at x0 and called it converged. Now scipy decides."""
    objective = shifted_quadratic()
    for method in ("Nelder-Mead", "trust-constr"):
        result = minimize_scipy(objective, scipy_method(method), max_iter=10_000, tol=1e-6)
        assert result.status == "converged" and result.details["success"]
        assert result.f < 1e-10 and result.iterations > 5
    result = minimize_scipy(sin_cos(seed=0), scipy_method("trust-constr"), max_iter=10_000, tol=1e-6)
    assert result.status == "converged" and result.f < 0.25 * result.trace.f[0]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_that_reaches_its_limit_is_max_iter(method):
    objective = small("two_layer_net" if method not in ("dogleg", "trust-exact") else "least_squares")
    max_iter = 2 if method not in ("dogleg", "trust-exact") else 1
    result = minimize_scipy(objective, scipy_method(method), max_iter=max_iter, tol=0)
    assert not result.details["success"], result.message
    assert (result.status, result.stop_reason) == ("max_iter", "max_iter"), result.message
    assert result.iterations <= max_iter
    if method not in ("COBYLA", "COBYQA"):  # they report at every evaluation, not every iteration
        assert result.trace.iterations <= max_iter + 1


def test_a_run_that_ends_without_success_is_stopped_with_scipys_message():
    result = minimize_scipy(quartic(), scipy_method("Newton-CG"), max_iter=1000, tol=1e-6)
    assert (result.status, result.stop_reason) == ("stopped", "solver")
    assert (
        result.message == result.details["message"] == "Warning: " + "Desired error not necessarily achieved "
        "due to precision loss."
    )
    result = minimize_scipy(small("two_layer_net"), scipy_method("dogleg"), max_iter=100, tol=0)
    assert (result.status, result.stop_reason) == ("stopped", "solver") and "linalg" in result.message


def test_tnc_runs_with_a_trace_row_per_iteration():
    objective = sin_cos(seed=0)
    result = minimize_scipy(objective, scipy_method("TNC"), max_iter=10_000, tol=1e-6)
    assert result.status == "converged" and result.stop_reason == "solver"
    assert result.iterations == result.details["nit"] > 10
    assert np.all(result.trace.x <= objective.upper)


def test_a_non_finite_start_is_diverged_at_iteration_0():
    result = minimize_scipy(quartic(x0=[1e80]), scipy_method("BFGS"), max_iter=100)
    assert (result.status, result.stop_reason, result.iterations) == ("diverged", "diverged", 0)


def test_grad_tol_is_the_methods_gtol_and_tol_is_minimizes_tol():
    objective = least_squares(seed=1)
    loose = minimize_scipy(objective, scipy_method("BFGS"), max_iter=1000, tol=0, grad_tol=1.0)
    tight = minimize_scipy(objective, scipy_method("BFGS"), max_iter=1000, tol=0, grad_tol=1e-9)
    assert loose.iterations < tight.iterations
    assert np.max(np.abs(objective.grad(loose.x))) <= 1.0 < np.max(np.abs(objective.grad(loose.trace.x[-2])))
    coarse = minimize_scipy(objective, scipy_method("Nelder-Mead"), max_iter=10_000, tol=1e-1)
    fine = minimize_scipy(objective, scipy_method("Nelder-Mead"), max_iter=10_000, tol=1e-8)
    assert coarse.status == fine.status == "converged" and coarse.iterations < fine.iterations
    assert fine.f - objective.f_star < coarse.f - objective.f_star


def test_the_option_tables_agree_with_scipy():
    """scipy warns of an option a method does not take: gtol exactly where grad_tol goes, the
    iteration limit always, and it warns of bounds a method ignores."""
    objective = quartic()
    for method in METHODS:
        kwargs = {"method": method, "jac": method in USES_GRADIENT or None}
        if method in NEEDS_HESSIAN:
            kwargs["hess"] = central_difference_hessian(objective)
        fun = (lambda x: objective.value_and_grad(x)) if method in USES_GRADIENT else objective.value
        for options, unknown in (
            ({"gtol": 1e-5}, method not in GRADIENT_TOLERANCE),
            ({LIMIT_OPTION.get(method, "maxiter"): 3}, False),
        ):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scipy.optimize.minimize(fun, objective.x0, options=options, **kwargs)
            assert any("Unknown solver options" in str(w.message) for w in caught) == unknown, (method, options)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scipy.optimize.minimize(fun, objective.x0, bounds=[(-10, 10)], options={"maxiter": 3}, **kwargs)
        ignored = any("bounds" in str(w.message) for w in caught)
        assert ignored == (method not in TAKES_BOUNDS), method


def test_lbfgsb_on_sin_cos_uses_the_analytic_gradient():
    objective = sin_cos(seed=0)
    result = minimize_scipy(objective, scipy_method("L-BFGS-B"), max_iter=1000, tol=0)
    assert result.status == "converged"
    nit = result.details["nit"]
    # With finite differences nfev would be about (n + 1) = 51 times nit.
    assert nit > 10 and result.nfev <= nit + 5 and result.ngev == result.nfev
    assert np.all(result.x <= objective.upper)
    assert result.trace.iterations == nit
    assert result.trace.grad_norm[-1] < 1e-3  # scipy's own ftol stops it


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


def test_max_iter_is_scipys_maxiter():
    result = minimize_scipy(sin_cos(seed=0), scipy_method("L-BFGS-B"), max_iter=3, tol=0)
    assert result.status == "max_iter" and result.iterations == 3
    assert result.stop_reason == "max_iter" and result.message == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"


def test_method_names_are_case_insensitive_and_null_is_scipys_choice():
    assert scipy_method("l-bfgs-b").method == "L-BFGS-B"
    result = minimize_scipy(sin_cos(seed=0), scipy_method(None), max_iter=1000, tol=0)
    assert result.details["method"] == "L-BFGS-B"
    result = minimize_scipy(quartic(x0=[-6.0]), scipy_method(None), max_iter=1000, tol=0)
    assert result.details["method"] == "BFGS"
    assert result.x[0] == pytest.approx(quartic().x_star[0], abs=1e-5)


def test_bad_scipy_input():
    with pytest.raises(ConfigError, match=r"optimizer\.method=Adamax: expected one of Nelder-Mead, .*trust-krylov"):
        scipy_method("Adamax")
    unbounded = sorted(set(METHODS) - TAKES_BOUNDS)
    with pytest.raises(ConfigError, match=r"optimizer\.method=BFGS: expected a method that takes bounds"):
        minimize_scipy(sin_cos(), scipy_method("BFGS"), max_iter=10)
    assert "BFGS" in unbounded
    with pytest.raises(ConfigError, match=r"optimizer\.options=.*Unknown solver options: ftoll"):
        minimize_scipy(shifted_quadratic(), scipy_method("L-BFGS-B", {"ftoll": 1e-3}), max_iter=10)
    with pytest.raises(ConfigError, match=r"optimizer\.options\.maxiter"):
        scipy_method("BFGS", {"maxiter": 3})
    with pytest.raises(
        ConfigError,
        match=r"^grad_tol=0.001: expected 0 for optimizer.method=SLSQP, which has no "
        r"gradient tolerance \(methods with one: BFGS, CG, L-BFGS-B",
    ):
        minimize_scipy(shifted_quadratic(), scipy_method("SLSQP"), max_iter=10, grad_tol=1e-3)
    with pytest.raises(ConfigError, match=r"^optimizer.options.gtol=0.1: expected no gtol beside grad_tol=0.001"):
        minimize_scipy(shifted_quadratic(), scipy_method("BFGS", {"gtol": 0.1}), max_iter=10, grad_tol=1e-3)


def scipy_config(objective: dict, method: str, **settings) -> dict:
    return {
        "objective": objective,
        "optimizer": {"_target_": "runner.scipy_driver.scipy", "method": method, "options": {}},
        "lr": None,
        "max_iter": 1000,
        "tol": 1e-6,
        "grad_tol": 0.0,
        "seed": 0,
        "trace": {"x": True},
        **settings,
    }


def test_the_summary_records_the_stop_reason_and_the_end_line_says_it(tmp_path):
    quartic_node = {"_target_": "objectives.quartic", "x0": None}
    summary = run(scipy_config(quartic_node, "Newton-CG"), tmp_path / "stopped")
    assert (summary["status"], summary["stop_reason"]) == ("stopped", "solver")
    assert summary_line(summary).startswith(f"stopped (solver: {summary['details']['message']}): f = ")
    on_disk = json.loads((tmp_path / "stopped" / "summary.json").read_text())
    assert on_disk["stop_reason"] == "solver" and on_disk["message"] == summary["details"]["message"]
    summary = run(scipy_config(quartic_node, "L-BFGS-B", max_iter=2, tol=0), tmp_path / "limit")
    assert (summary["status"], summary["stop_reason"]) == ("max_iter", "max_iter")
    assert summary_line(summary).startswith("max_iter: f = ")
    summary = run(scipy_config({**quartic_node, "x0": [1e80]}, "BFGS"), tmp_path / "diverged")
    assert (summary["status"], summary["stop_reason"], summary["iterations"]) == ("diverged", "diverged", 0)
    summary = run(scipy_config(quartic_node, "SLSQP", grad_tol=1e-3), tmp_path / "bad")
    assert (summary["status"], summary["stop_reason"]) == ("failed", "error")
    assert summary["stop_reason"] in STOP_REASONS


def test_a_run_without_success_exits_0_and_its_end_line_says_why(tmp_path):
    newton = ("objective=quartic", "optimizer=scipy", "optimizer.method=Newton-CG", "hydra.run.dir=run")
    done = run_module("runner", *newton, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "stopped (solver: Warning: Desired error not necessarily achieved due to "
        "precision loss.): f = -3.8399 after 4 iterations"
    )


def test_a_sweep_over_methods_has_the_statuses_of_scipys_own_success(tmp_path):
    """``-m optimizer.method=<every method>`` on the quartic: each run is converged exactly when
    a direct ``minimize`` call with the same settings says ``success``, and never failed."""
    sweep_dir = tmp_path / "sweep"
    methods = f"optimizer.method={','.join(METHODS)}"
    sweep = ("objective=quartic", "optimizer=scipy", methods, f"max_iter={MAX_ITER}", "tol=1e-9")
    done = run_module("runner", "-m", *sweep, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = {row["optimizer.method"]: row for row in runner.load_runs(sweep_dir).to_dict("records")}
    assert sorted(runs) == sorted(METHODS)
    for method in METHODS:
        result, _ = direct(quartic(), method, max_iter=MAX_ITER, tol=1e-9)
        run_row = runs[method]
        assert (run_row["status"] == "converged") == bool(result.success), (method, run_row["message"])
        assert run_row["status"] in ("converged", "max_iter", "stopped"), (method, run_row["message"])
        assert run_row["f"] == pytest.approx(float(result.fun), rel=1e-12, abs=1e-12), method
