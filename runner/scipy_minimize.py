"""``scipy.optimize.minimize`` as one more optimizer, emitting the same trace rows as the loop.

scipy gets the analytic gradient (``jac=True`` on ``value_and_grad``) for the
methods that use one, the objective's bounds, and, for the methods that need
a Hessian, one built by central differences of the analytic gradient (one
batched gradient call over ``x +- h e_i``). Each iteration is recorded
through the ``callback(intermediate_result)`` hook, which also applies the
runner's own stopping rules (``tol``, ``grad_tol``, ``max_iter``) by raising
``StopIteration``, so every optimizer stops by the same rules.
"""

from __future__ import annotations

import math
import warnings
from time import perf_counter
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from runner.errors import ConfigError
from runner.loop import PROGRESS_EVERY_S, Progress, gradient_norm, stop_reason
from runner.trace import RunResult, TraceRecorder, traced_coordinates

if TYPE_CHECKING:
    from objectives.base import Objective

METHODS = (
    "Nelder-Mead", "Powell", "CG", "BFGS", "Newton-CG", "L-BFGS-B", "TNC", "COBYLA",
    "COBYQA", "SLSQP", "trust-constr", "dogleg", "trust-ncg", "trust-exact", "trust-krylov",
)  # fmt: skip
_CANONICAL = {m.lower(): m for m in METHODS}
USES_GRADIENT = {"CG", "BFGS", "Newton-CG", "L-BFGS-B", "TNC", "SLSQP", "trust-constr",
                 "dogleg", "trust-ncg", "trust-exact", "trust-krylov"}  # fmt: skip
NEEDS_HESSIAN = {"dogleg", "trust-ncg", "trust-exact", "trust-krylov"}
TAKES_BOUNDS = {"Nelder-Mead", "Powell", "L-BFGS-B", "TNC", "COBYLA", "COBYQA", "SLSQP", "trust-constr"}
# TNC calls callback(xk) only and ignores StopIteration: the runner's tol rule cannot stop it.
CALLBACK_CANNOT_STOP = {"TNC"}


class ScipyMethod(NamedTuple):
    """A ``scipy.optimize.minimize`` method and its ``options``, validated."""

    method: str | None
    options: dict
    name: str = "scipy"

    @property
    def hyperparams(self) -> dict:
        return {"method": self.method, "options": dict(self.options)}


def scipy_method(method: str | None = None, options: dict | None = None) -> ScipyMethod:
    """``method`` is any of :data:`METHODS` (case-insensitive), or ``None`` for
    scipy's own choice (BFGS, or L-BFGS-B with bounds)."""
    if method is not None:
        if not isinstance(method, str) or method.lower() not in _CANONICAL:
            raise ConfigError("optimizer.method", method, "one of " + ", ".join(METHODS))
        method = _CANONICAL[method.lower()]
    if options is not None and not isinstance(options, dict):
        raise ConfigError("optimizer.options", options, "a mapping of scipy's options, e.g. {gtol: 1e-8}")
    options = dict(options or {})
    if "maxiter" in options:
        raise ConfigError("optimizer.options.maxiter", options["maxiter"], "the top-level max_iter key instead")
    return ScipyMethod(method, options)


class _Diverged(Exception):
    pass


class _Evaluations:
    """The objective as scipy sees it: counted evaluations, with the latest points cached.

    scipy asks again for points it has already evaluated (x0, accepted line
    search points); those are answered from the cache and not counted, so
    ``nfev`` counts distinct evaluations. The trace's gradient norm at a
    callback point comes from the same cache, or an uncounted evaluation.
    """

    def __init__(self, objective: Objective, uses_gradient: bool):
        self.objective = objective
        self.uses_gradient = uses_gradient
        self.nfev = 0
        self.ngev = 0
        self._cache: dict[bytes, tuple[float, np.ndarray]] = {}

    def lookup(self, x: np.ndarray, *, counted: bool) -> tuple[float, np.ndarray]:
        key = np.asarray(x, dtype=float).tobytes()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        with np.errstate(over="ignore", invalid="ignore"):
            f, g = self.objective.value_and_grad(np.asarray(x, dtype=float))
        hit = (float(f), np.asarray(g, dtype=float))
        if len(self._cache) >= 8:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = hit
        if counted:
            self.nfev += 1
            self.ngev += self.uses_gradient
        return hit

    def fun(self, x):
        f, g = self.lookup(x, counted=True)
        if not math.isfinite(f):
            raise _Diverged(f"f is not finite at x with |x| = {np.linalg.norm(x):.3g}")
        return (f, g) if self.uses_gradient else f

    def hess(self, x):
        """Central differences of the analytic gradient, all 2n points in one batched call."""
        n = len(x)
        h = 1e-5 * np.maximum(1.0, np.abs(x))
        steps = np.diag(h)
        _, grads = self.objective.value_and_grad(np.concatenate([x + steps, x - steps]))
        self.ngev += 2 * n
        hessian = (grads[:n] - grads[n:]) / (2 * h[:, None])
        return 0.5 * (hessian + hessian.T)


def minimize_scipy(
    objective: Objective,
    solver: ScipyMethod,
    *,
    max_iter: int,
    tol: float = 0.0,
    grad_tol: float = 0.0,
    record_x: bool = True,
    progress: Progress | None = None,
    rng=None,
) -> RunResult:
    """Run ``scipy.optimize.minimize`` from ``objective.x0`` and record each iteration."""
    import scipy.optimize  # here, not at the top: it alone costs every process about 0.4 s to import

    method = solver.method or ("L-BFGS-B" if objective.has_bounds else "BFGS")
    if objective.has_bounds and method not in TAKES_BOUNDS:
        raise ConfigError(
            "optimizer.method",
            method,
            f"a method that takes bounds for objective {objective.name}: " + ", ".join(sorted(TAKES_BOUNDS)),
        )
    evaluations = _Evaluations(objective, method in USES_GRADIENT)
    recorder = TraceRecorder(objective.dim, coords=traced_coordinates(objective.dim, record_x))
    start = perf_counter()
    x0 = np.array(objective.x0, dtype=float)
    stop = {"status": None, "message": ""}
    last = {"x": x0, "f": math.nan}
    next_report = [PROGRESS_EVERY_S]

    def record(x: np.ndarray, counted: bool, apply_rules: bool = True) -> None:
        f, g = evaluations.lookup(x, counted=counted)
        gnorm = float(gradient_norm(objective, x, g))
        now = perf_counter() - start
        recorder.append(f, gnorm, x, evaluations.nfev, evaluations.ngev, now)
        k = recorder.size - 1
        f_prev = last["f"]
        last["x"], last["f"] = np.array(x, dtype=float), f
        if progress is not None and now >= next_report[0]:
            progress(k, f)
            next_report[0] = now + PROGRESS_EVERY_S
        if not apply_rules:
            return
        reason = stop_reason(k, f, f_prev, gnorm, tol=tol, grad_tol=grad_tol, max_iter=max_iter)
        if reason is not None:
            stop.update(status=reason[0], message=reason[1])
            raise StopIteration

    def callback(intermediate_result):
        # Most methods pass an OptimizeResult; TNC passes the bare iterate.
        x = getattr(intermediate_result, "x", intermediate_result)
        record(np.asarray(x, dtype=float), counted=False)

    details: dict = {"method": method}
    kwargs = dict(method=method, jac=method in USES_GRADIENT, callback=callback,
                  options={"maxiter": max_iter, **solver.options})  # fmt: skip
    if method == "TNC":  # TNC counts function evaluations, not iterations
        kwargs["options"] = {"maxfun": max_iter, **solver.options}
    if method in TAKES_BOUNDS and objective.has_bounds:
        kwargs["bounds"] = scipy.optimize.Bounds(objective.lower, objective.upper)
    if method in NEEDS_HESSIAN:
        kwargs["hess"] = evaluations.hess
    try:
        record(x0, counted=True)
    except StopIteration:  # x0 already meets a stopping rule (or is not finite)
        pass
    else:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message="Unknown solver options", category=scipy.optimize.OptimizeWarning)
                result = scipy.optimize.minimize(evaluations.fun, x0, **kwargs)
        except scipy.optimize.OptimizeWarning as warning:
            raise ConfigError("optimizer.options", solver.options, f"options of {method} ({warning})") from None
        except _Diverged as diverged:
            stop.update(status="diverged", message=str(diverged))
        except KeyboardInterrupt:
            stop.update(status="interrupted", message=f"interrupted after iteration {recorder.size - 1}")
        else:
            details.update(nit=int(getattr(result, "nit", -1)), status=int(result.status), success=bool(result.success),
                           message=str(result.message))  # fmt: skip
            if stop["status"] is None:
                _status_from_scipy(result, stop, max_iter)
            if not np.array_equal(result.x, last["x"]):
                # Some methods (TNC) end on a point no callback saw: it is the last row.
                record(np.asarray(result.x, dtype=float), counted=False, apply_rules=False)
    trace = recorder.finish()
    return RunResult(
        status=stop["status"],
        message=stop["message"],
        x=last["x"],
        f=last["f"],
        iterations=trace.iterations,
        nfev=evaluations.nfev,
        ngev=evaluations.ngev,
        wall_time_s=perf_counter() - start,
        trace=trace,
        details=details,
    )


def _status_from_scipy(result, stop: dict, max_iter: int) -> None:
    """Map scipy's ending onto the runner's statuses; scipy's own message is kept."""
    message = str(result.message)
    if result.success:
        status = "converged"
    elif getattr(result, "nit", 0) >= max_iter or "limit" in message.lower() or "maximum number" in message.lower():
        status = "max_iter"
    elif not np.isfinite(result.fun):
        status = "diverged"
    else:
        status = "failed"
    stop.update(status=status, message=f"scipy: {message}")
