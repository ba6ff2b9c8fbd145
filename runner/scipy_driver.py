"""``scipy.optimize.minimize`` as one more optimizer, with its own driver: the same trace rows as the loop.

The factory :func:`scipy` (``optimizer=scipy``) returns a :class:`ScipyMethod`, which is not an
``(init, update)`` rule: it carries its own driver, :meth:`ScipyMethod.drive`, which a single run
calls instead of :func:`runner.loop.minimize`, and says it cannot be batched (``batchable``).

scipy gets the analytic gradient (``jac=True`` on ``value_and_grad``) for the
methods that use one, the objective's bounds, and, for the methods that need
a Hessian, one built by central differences of the analytic gradient (one
batched gradient call over ``x +- h e_i``). Each iteration scipy reports
through its ``callback`` is a trace row; the callback only records.

scipy keeps its own meaning. The runner's settings are handed to it as
``minimize`` documents them, and scipy alone decides when to stop:

* ``tol > 0`` is ``minimize(tol=tol)``, which sets each method's own tolerances;
* ``grad_tol > 0`` is the method's gradient tolerance, option ``gtol`` (in the
  method's own norm: the largest ``|g_i|``, projected onto the bounds, for most; ``||g||``
  for the trust-region methods); a method without one (:data:`GRADIENT_TOLERANCE`) refuses it;
* ``max_iter`` is option ``maxiter``, or ``maxfun`` for TNC, which counts only
  function evaluations (COBYLA's ``maxiter`` counts evaluations too): either way it
  bounds the iterations.

The run's status is scipy's verdict: ``converged`` when ``success``, ``max_iter``
when scipy reports an iteration or evaluation limit (:data:`LIMIT_STATUSES`),
``stopped`` for any other ending, all with scipy's message; ``diverged`` when the
final f or its gradient is not finite.
"""

from __future__ import annotations

import math
import warnings
from time import perf_counter
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from runner.errors import ConfigError
from runner.stopping import PROGRESS_EVERY_S, Progress, Stop, gradient_norm
from runner.trace import EVERY_ITERATION, RunResult, Sampling, TraceRecorder, traced_coordinates

if TYPE_CHECKING:
    from objectives.base import Objective

METHODS = (
    "Nelder-Mead",
    "Powell",
    "CG",
    "BFGS",
    "Newton-CG",
    "L-BFGS-B",
    "TNC",
    "COBYLA",
    "COBYQA",
    "SLSQP",
    "trust-constr",
    "dogleg",
    "trust-ncg",
    "trust-exact",
    "trust-krylov",
)
_CANONICAL = {m.lower(): m for m in METHODS}
USES_GRADIENT = {
    "CG",
    "BFGS",
    "Newton-CG",
    "L-BFGS-B",
    "TNC",
    "SLSQP",
    "trust-constr",
    "dogleg",
    "trust-ncg",
    "trust-exact",
    "trust-krylov",
}
NEEDS_HESSIAN = {"dogleg", "trust-ncg", "trust-exact", "trust-krylov"}
TAKES_BOUNDS = {"Nelder-Mead", "Powell", "L-BFGS-B", "TNC", "COBYLA", "COBYQA", "SLSQP", "trust-constr"}
# The methods whose options have a gradient tolerance, gtol: where grad_tol goes.
GRADIENT_TOLERANCE = {
    "CG",
    "BFGS",
    "L-BFGS-B",
    "TNC",
    "trust-constr",
    "dogleg",
    "trust-ncg",
    "trust-exact",
    "trust-krylov",
}
# The option bounding the iterations where it is not maxiter: TNC has only a budget of evaluations.
ITERATION_LIMIT = {"TNC": "maxfun"}
# The result.status values by which each method says it reached an iteration or evaluation limit
# (scipy's codes; TNC's MAXFUN is 3, COBYLA's MAXFUN_REACHED 3 and MAXTR_REACHED 20, COBYQA's
# MAX_EVAL_WARNING 5 and MAX_ITER_WARNING 6, SLSQP's "Iteration limit reached" 9, trust-constr's 0).
LIMIT_STATUSES = {
    "Nelder-Mead": {1, 2},
    "Powell": {1, 2},
    "CG": {1},
    "BFGS": {1},
    "Newton-CG": {1},
    "L-BFGS-B": {1},
    "TNC": {3},
    "COBYLA": {3, 20},
    "COBYQA": {5, 6},
    "SLSQP": {9},
    "trust-constr": {0},
    "dogleg": {1},
    "trust-ncg": {1},
    "trust-exact": {1},
    "trust-krylov": {1},
}


class ScipyMethod(NamedTuple):
    """A ``scipy.optimize.minimize`` method and its ``options``, validated.

    Its capabilities, which the drivers read instead of its type: ``drive`` runs it (a single
    run calls it in place of the loop), and ``batchable`` is false (a sweep runs it job by job).
    """

    method: str | None
    options: dict
    name: str = "scipy"

    batchable = False  # scipy's own loop runs one x at a time

    @property
    def hyperparams(self) -> dict:
        return {"method": self.method, "options": dict(self.options)}

    def drive(self, objective: Objective, **settings) -> RunResult:
        """Run it on ``objective``: :func:`minimize_scipy` with the run's ``settings``."""
        return minimize_scipy(objective, self, **settings)


def scipy(method: str | None = None, options: dict | None = None) -> ScipyMethod:
    """``scipy.optimize.minimize`` with any of its methods (``optimizer=scipy``).

    ``method`` is any of :data:`METHODS` (case-insensitive), or ``None`` for scipy's own
    choice (BFGS, or L-BFGS-B with bounds). ``options`` go to scipy as ``options=``; the
    runner's ``max_iter`` is its ``maxiter``. There is no learning rate."""
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
    sampling: Sampling = EVERY_ITERATION,
    progress: Progress | None = None,
    rng=None,
) -> RunResult:
    """Run ``scipy.optimize.minimize`` from ``objective.x0`` and record each iteration.

    The final x and f, and the iteration count, are those of ``minimize(fun, x0,
    method=..., jac=..., bounds=..., hess=..., tol=tol or None, options=...)`` called
    directly with the options the module docstring gives: the count is scipy's ``nit``
    (COBYLA has none: there it is the callback's reports). The trace is x0, each point
    scipy's callback reports, and scipy's final x when no callback reported it. Most
    methods report once per iteration; COBYLA and COBYQA at each evaluation after
    their initial ones, and Nelder-Mead's ``nit`` counts its initial simplex too, so
    there the trace's rows and the count differ. ``sampling`` keeps some of these rows (by row
    number, the ``iteration`` column) and always the last; scipy's run is the same whatever it keeps.
    """
    from scipy import optimize  # here, not at the top: it alone costs every process about 0.4 s to import

    method = solver.method or ("L-BFGS-B" if objective.has_bounds else "BFGS")
    if objective.has_bounds and method not in TAKES_BOUNDS:
        raise ConfigError(
            "optimizer.method",
            method,
            f"a method that takes bounds for objective {objective.name}: " + ", ".join(sorted(TAKES_BOUNDS)),
        )
    options = {ITERATION_LIMIT.get(method, "maxiter"): max_iter, **solver.options}
    if grad_tol > 0:
        if method not in GRADIENT_TOLERANCE:
            with_one = ", ".join(sorted(GRADIENT_TOLERANCE))
            raise ConfigError(
                "grad_tol",
                grad_tol,
                f"0 for optimizer.method={method}, which has no gradient tolerance (methods with one: {with_one})",
            )
        if "gtol" in solver.options:
            raise ConfigError(
                "optimizer.options.gtol", solver.options["gtol"], f"no gtol beside grad_tol={grad_tol:g}, which sets it"
            )
        options["gtol"] = grad_tol
    evaluations = _Evaluations(objective, method in USES_GRADIENT)
    recorder = TraceRecorder(
        objective.dim, coords=traced_coordinates(objective.dim, record_x), sampling=sampling, max_iter=max_iter
    )
    start = perf_counter()
    x0 = np.array(objective.x0, dtype=float)
    last = {"x": x0, "f": math.nan, "gnorm": math.nan}
    next_report = [PROGRESS_EVERY_S]

    def record(x: np.ndarray, counted: bool) -> None:
        f, g = evaluations.lookup(x, counted=counted)
        with np.errstate(over="ignore", invalid="ignore"):
            gnorm = float(gradient_norm(objective, x, g))
        now = perf_counter() - start
        recorder.append(f, gnorm, x, evaluations.nfev, evaluations.ngev, now)
        last.update(x=np.array(x, dtype=float), f=f, gnorm=gnorm)
        if progress is not None and now >= next_report[0]:
            progress(recorder.count - 1, f)
            next_report[0] = now + PROGRESS_EVERY_S

    def callback(intermediate_result):
        # Most methods pass an OptimizeResult; TNC passes the bare iterate.
        x = getattr(intermediate_result, "x", intermediate_result)
        record(np.asarray(x, dtype=float), counted=False)

    details: dict = {"method": method}
    kwargs = {
        "method": method,
        "jac": method in USES_GRADIENT,
        "callback": callback,
        "tol": tol if tol > 0 else None,
        "options": options,
    }
    if method in TAKES_BOUNDS and objective.has_bounds:
        kwargs["bounds"] = optimize.Bounds(objective.lower, objective.upper)
    if method in NEEDS_HESSIAN:
        kwargs["hess"] = evaluations.hess
    record(x0, counted=True)
    if not math.isfinite(last["f"] + last["gnorm"]):  # nothing to minimise from: the loop's rule at iteration 0
        stop = Stop("diverged", "diverged", "f or its gradient is not finite at iteration 0")
    else:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message="Unknown solver options", category=optimize.OptimizeWarning)
                result = optimize.minimize(evaluations.fun, x0, **kwargs)
        except optimize.OptimizeWarning as warning:
            raise ConfigError("optimizer.options", solver.options, f"options of {method} ({warning})") from None
        except KeyboardInterrupt:
            stop = Stop("interrupted", "interrupted", f"interrupted after iteration {recorder.count - 1}")
        else:
            nit = result.get("nit")
            details.update(
                nit=None if nit is None else int(nit),
                status=int(result.status),
                success=bool(result.success),
                message=str(result.message),
            )
            if not np.array_equal(result.x, last["x"]):
                record(np.asarray(result.x, dtype=float), counted=False)  # a final point no callback reported
            stop = scipy_stop(result, method, last["f"] + last["gnorm"])
    trace = recorder.finish()
    return RunResult(
        status=stop.status,
        stop_reason=stop.reason,
        message=stop.message,
        x=last["x"],
        f=last["f"],
        iterations=trace.iterations if details.get("nit") is None else details["nit"],
        nfev=evaluations.nfev,
        ngev=evaluations.ngev,
        wall_time_s=perf_counter() - start,
        trace=trace,
        details=details,
    )


def scipy_stop(result, method: str, final: float) -> Stop:
    """scipy's ending as the runner's: ``success`` is ``converged``, a limit of iterations or
    evaluations ``max_iter``, any other ending ``stopped``, each with scipy's message; a final
    f or gradient that is not finite (``final`` is their sum) is ``diverged`` whatever scipy said."""
    message = str(result.message)
    if not math.isfinite(final):
        return Stop("diverged", "diverged", f"f or its gradient is not finite at scipy's final x ({message})")
    if result.success:
        return Stop("converged", "solver", message)
    if int(result.status) in LIMIT_STATUSES[method]:
        return Stop("max_iter", "max_iter", message)
    return Stop("stopped", "solver", message)
