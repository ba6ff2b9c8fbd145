"""Theory beside the measurement: the rates of gd, heavy ball and Nesterov on quadratic objectives.

On a quadratic f(x) = f* + (x - x*)^T H (x - x*) / 2 each of these methods is a linear map of its
state (the error e = x - x* and, with momentum, the buffer), and in the eigenbasis of H that map
splits into one small block per eigenvalue (its optimizer's ``rate_block``, see
:data:`runner.optimizers.OPTIMIZERS`). The spectral radius of the whole map, the largest over the
blocks, is the asymptotic linear rate ρ of ‖x_k − x*‖: ‖x_k − x*‖ ~ C ρ^k, and f_k − f* ~ C' ρ^(2k).

The convention is the runner's, torch.optim.SGD's: ``z <- momentum z + g;  x <- x - lr z`` (heavy
ball) and ``x <- x - lr (g + momentum z)`` (Nesterov). Heavy ball in this convention is Polyak's
``x' = x - alpha g + beta (x - x_prev)`` with alpha = lr, beta = momentum (dampening 0).

What has a theory is said by capabilities, never by names: an objective with ``hessian_eigenvalues``
(``shifted_quadratic``, ``least_squares``), an optimizer whose factory carries ``rate_block`` and
``optimal`` (``gd``, ``momentum``, ``nesterov``). Anything else gets None.

Functions: :func:`rate`, :func:`optimal`, :func:`iterations_to_tol` (and its rule,
:func:`iterations_for`), :func:`measured_rate` (the fit of a trace) and :func:`run_rates` (the
``rate_theory`` and ``rate_measured`` columns of a run). Plain numpy over the core layer.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from runner.optimizers import OPTIMIZERS

EPS = np.finfo(float).eps
# The floor of f - f*: rounding of f near a nonzero minimum (first term), and of x near x*
# (second term, relative to the start's gap), each with a margin of a thousand.
FLOOR_MARGIN = 1e3
MIN_TAIL_ROWS = 4


def hessian_eigenvalues(objective) -> np.ndarray | None:
    """The objective's Hessian eigenvalues (ascending), or None where it does not know its Hessian."""
    values = getattr(objective, "hessian_eigenvalues", None)
    return None if values is None else np.asarray(values, float)


def _curvatures(objective) -> np.ndarray | None:
    """The eigenvalues that count for the rate: the positive ones. A zero curvature (rank-deficient
    least squares) is a direction where no gradient acts: x neither moves nor changes f there, so
    ‖x_k − x_∞‖ and f − f* converge at the rate of the others."""
    values = hessian_eigenvalues(objective)
    if values is None or not len(values):
        return None
    positive = values[values > len(values) * EPS * np.max(np.abs(values))]
    return positive if len(positive) else None


def _factory_and_hyperparams(optimizer, hyperparams: dict):
    """``(factory, hyperparams)``: ``optimizer`` is a registry name, a factory of
    :data:`runner.optimizers.OPTIMIZERS`, or a built optimizer (its ``name`` and ``hyperparams``,
    which ``hyperparams`` override)."""
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer}: expected one of {', '.join(OPTIMIZERS)}")
        return OPTIMIZERS[optimizer], dict(hyperparams)
    if callable(optimizer):
        return optimizer, dict(hyperparams)
    built = getattr(optimizer, "hyperparams", None) or {}
    return OPTIMIZERS.get(getattr(optimizer, "name", None)), {**built, **hyperparams}


def _arguments(function, factory, hyperparams: dict, skip: tuple[str, ...]) -> dict:
    """The factory's defaults, overridden by ``hyperparams``, for the keys ``function`` takes.

    A key the factory does not take is refused; one it takes that ``function`` does not (sgd's
    ``batch_size``) makes no difference to a quadratic's rate and is left out.
    """
    taken = inspect.signature(factory).parameters
    unknown = [k for k in hyperparams if k not in taken]
    if unknown:
        key = unknown[0]
        raise ValueError(f"{key}={hyperparams[key]}: expected a key {factory.__name__} takes: {', '.join(taken)}")
    values = {k: p.default for k, p in taken.items() if p.default is not inspect.Parameter.empty}
    values.update(hyperparams)
    wanted = inspect.signature(function).parameters
    return {k: v for k, v in values.items() if k in wanted and k not in skip}


def spectral_radius(blocks: np.ndarray) -> np.ndarray:
    """The largest |eigenvalue| of each square matrix of ``blocks`` (..., k, k).

    1x1 and 2x2 blocks in closed form (a 2x2 block's eigenvalues are the roots of
    z^2 - trace z + det: complex ones have modulus sqrt(det)), exact at a double root
    where an eigenvalue solver loses half the digits; larger ones by ``numpy.linalg.eigvals``.
    """
    blocks = np.asarray(blocks, float)
    k = blocks.shape[-1]
    if k == 1:
        return np.abs(blocks[..., 0, 0])
    if k == 2:
        with np.errstate(over="ignore", invalid="ignore"):  # lr = 1e300: an infinite radius, said quietly
            trace = blocks[..., 0, 0] + blocks[..., 1, 1]
            det = blocks[..., 0, 0] * blocks[..., 1, 1] - blocks[..., 0, 1] * blocks[..., 1, 0]
            disc = trace * trace - 4.0 * det
            real = (np.abs(trace) + np.sqrt(np.maximum(disc, 0.0))) / 2.0
            return np.where(disc >= 0, real, np.sqrt(np.abs(det)))
    return np.max(np.abs(np.linalg.eigvals(blocks)), axis=-1)


def rate(objective, optimizer, **hyperparams) -> float | np.ndarray | None:
    """ρ, the asymptotic linear rate of ‖x_k − x*‖ of ``optimizer`` on a quadratic ``objective``.

    ρ is the spectral radius of the method's iteration matrix: the largest, over the Hessian's
    positive eigenvalues λ, of the spectral radius of the optimizer's ``rate_block(λ, lr, ...)``
    (gd: |1 − lr λ|; heavy ball and Nesterov: a 2x2 block, see :mod:`runner.optimizers`).
    ρ < 1 converges, ρ > 1 diverges. In the runner's (torch's) convention.

    Args:
        objective: a built objective (``objectives.REGISTRY[name](...)``).
        optimizer: a registry name (``"momentum"``), its factory, or a built optimizer (whose
            hyperparameters are used).
        **hyperparams: the factory's keys (``lr``, ``momentum``, ``dampening``, ``weight_decay``),
            missing ones at the factory's defaults. Numbers or arrays, which broadcast: the result
            has their shape (a grid of lr x momentum in one call).

    Returns:
        ρ (a float, or an array of the hyperparameters' shape), or None where the objective does
        not know its Hessian or the optimizer has no ``rate_block`` (adaptive methods, sgd, scipy).

    Example:
        >>> from objectives import shifted_quadratic
        >>> rate(shifted_quadratic(), "gd", lr=4.0)   # |1 - 4 / 8|: the flatter direction, λ = 1/8
        0.5
    """
    factory, hyperparams = _factory_and_hyperparams(optimizer, hyperparams)
    block = getattr(factory, "rate_block", None)
    curvatures = _curvatures(objective)
    if block is None or curvatures is None:
        return None
    args = _arguments(block, factory, hyperparams, skip=("curvature",))
    if "lr" not in args:
        raise ValueError(f"lr=None: expected a learning rate for {factory.__name__}")
    # One block per eigenvalue, along a last axis: hyperparameters of shape S give S + (n, k, k).
    args = {k: np.asarray(v, float)[..., None] for k, v in args.items()}
    radius = spectral_radius(block(curvatures, **args)).max(axis=-1)
    return float(radius) if radius.ndim == 0 else radius


def optimal(objective, optimizer, **hyperparams) -> dict | None:
    """The hyperparameters of the smallest ρ on a quadratic ``objective``, in the runner's convention.

    With mu and L the smallest positive and the largest Hessian eigenvalues, κ = L/mu:

    * gd: lr* = 2/(L + mu), ρ* = (κ − 1)/(κ + 1);
    * heavy ball (``momentum``): Polyak's lr* = 4/(sqrt(L) + sqrt(mu))^2, momentum* =
      ((sqrt(κ) − 1)/(sqrt(κ) + 1))^2, ρ* = sqrt(momentum*). Polyak's method
      ``x' = x − alpha g + beta (x − x_prev)`` is torch's ``z' = m z + g; x' = x − lr z'``
      with alpha = lr and beta = m: lr z' = lr g + m (lr z) = lr g + m (x_prev − x). So lr* = alpha*
      and momentum* = beta*, unchanged (with dampening d, lr* = alpha*/(1 − d));
    * Nesterov: lr* = 4/(3L + mu), momentum* = (sqrt(3κ + 1) − 2)/(sqrt(3κ + 1) + 2),
      ρ* = 1 − 2/sqrt(3κ + 1) (Lessard, Recht & Packard 2016).

    ``hyperparams``: the other keys, held fixed (``weight_decay`` shifts the curvatures).
    Returns ``{"lr": ..., "momentum": ...}`` (gd: ``{"lr": ...}``), or None without a theory.
    """
    factory, hyperparams = _factory_and_hyperparams(optimizer, hyperparams)
    tune = getattr(factory, "optimal", None)
    curvatures = _curvatures(objective)
    if tune is None or curvatures is None:
        return None
    args = _arguments(tune, factory, hyperparams, skip=("mu", "L", "lr", "momentum"))
    return {k: float(v) for k, v in tune(float(curvatures.min()), float(curvatures.max()), **args).items()}


def iterations_for(rho, start_gap, tol) -> float | np.ndarray:
    """The rule of :func:`iterations_to_tol`: the least k with ρ^(2k) (f_0 − f*) ≤ tol.

    k = ceil(log(tol / (f_0 − f*)) / (2 log ρ)); 0 where f_0 − f* ≤ tol already, 1 where ρ = 0,
    inf where ρ ≥ 1 (never), NaN where ρ or the gap is unknown. It applies the asymptotic rate
    from the start: the constant of the transient (the start's mix of eigendirections, the
    non-normal momentum blocks) is left out, so a run may take a few iterations more or fewer.
    """
    rho, start_gap, tol = np.broadcast_arrays(*(np.asarray(v, float) for v in (rho, start_gap, tol)))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.ceil(np.log(tol / start_gap) / (2.0 * np.log(rho)))
    k = np.where(rho >= 1, np.inf, np.where(rho == 0, 1.0, k))
    k = np.where(start_gap <= tol, 0.0, k)
    k = np.where(np.isnan(rho) | np.isnan(start_gap), np.nan, k)
    return float(k) if k.ndim == 0 else k


def iterations_to_tol(objective, optimizer, tol: float, *, x0=None, **hyperparams) -> float | np.ndarray | None:
    """The theoretical iterations for f − f* to fall below ``tol`` from ``x0`` (default: the
    objective's start): :func:`iterations_for` with ρ = :func:`rate` and f_0 − f* = f(x0) − f*.
    None without a theory (or an unknown f*)."""
    rho = rate(objective, optimizer, **hyperparams)
    if rho is None or getattr(objective, "f_star", None) is None:
        return None
    x0 = objective.x0 if x0 is None else np.asarray(x0, float)
    start_gap = float(objective.value(x0)) - objective.f_star
    return iterations_for(rho, start_gap, tol)


def measured_rate(f, f_star, last=None, *, iterations=None, present=None) -> float | np.ndarray | None:
    """The rate of ‖x_k − x*‖ fitted on the tail of a trace: sqrt of the per-iteration ratio of f − f*.

    The rule, for each run (``f`` of shape (K,), or (K, B) for B runs; row j is the iterate after
    ``iterations[j]`` (or ``iterations[j, b]``) updates, default j, so a sampled trace
    (``trace.every``, ``trace.schedule``) is fitted at its true iteration numbers; ``present[j, b]``
    False leaves row j out of run b's trace; ``last[b]`` is run b's last iteration, default every row):

    * the gap g_k = f_k − f*; the floor is 1e3 eps |f*| + (1e3 eps)^2 (f_0 − f*): below it
      f − f* is the rounding of f near a nonzero f*, or of x near x* (for ‖x*‖ up to about
      ‖x0 − x*‖), not the iterate's distance;
    * the usable rows run from row 0 up to the last row, iteration k_end, before the gap first
      falls to the floor or stops being finite (a diverged run: before it overflowed);
    * the tail is the later half of these, iterations ceil(k_end / 2) .. k_end, where the faster
      eigendirections have died out; it needs at least 4 rows;
    * a least-squares line through (k, log g_k) over the tail has slope s: f − f* shrinks by e^s
      an iteration, and ‖x_k − x*‖ by ρ = e^(s/2) (f − f* is quadratic in x − x*).

    Returns ρ (> 1 for a run that grows), or None (NaN in an array) where f* is unknown, the
    start is at the floor already, or the tail is too short to fit.
    """
    f = np.asarray(f, float)
    single = f.ndim == 1
    f2 = f[:, None] if single else f
    rows, runs = f2.shape
    if f_star is None or rows == 0 or not math.isfinite(float(f_star)):
        return None if single else np.full(runs, np.nan)
    k = np.arange(rows, dtype=float) if iterations is None else np.asarray(iterations, float)
    k = k[:, None] if k.ndim == 1 else k  # one iteration number a row, or (K, B): one a row and run
    considered = k <= (np.inf if last is None else np.asarray(last, float).reshape(runs))
    if present is not None:
        considered = considered & np.asarray(present, bool).reshape(rows, runs)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        gap = f2 - float(f_star)
        floor = FLOOR_MARGIN * EPS * abs(float(f_star)) + (FLOOR_MARGIN * EPS) ** 2 * np.abs(gap[0])
        ends = considered & ~((gap > floor) & np.isfinite(gap))  # the rows that end the usable range
        first_end = np.where(ends.any(axis=0), np.argmax(ends, axis=0), rows)
        usable = considered & (np.arange(rows)[:, None] < first_end)
        k_end = np.max(np.where(usable, k, -1.0), axis=0)
        tail = usable & (k >= np.ceil(k_end / 2))
        # Sums down the rows for all B runs at once, whatever their tails, about each tail's mean
        # iteration (no cancellation). They add in row order (cumsum), so a run fitted in a batch,
        # with rows it does not keep as exact zeros, gets the bits it gets fitted alone.
        n = tail.sum(axis=0)
        k_mean = _sum_rows(np.where(tail, k, 0.0)) / n
        centred = np.where(tail, k - k_mean, 0.0)
        y = np.log(np.where(tail, gap, 1.0))
        slope = _sum_rows(centred * y) / _sum_rows(centred * centred)
        rho = np.exp(slope / 2.0)
    rho = np.where(n >= MIN_TAIL_ROWS, rho, np.nan)
    if single:
        value = float(rho[0])
        return value if math.isfinite(value) else None
    return rho


def _sum_rows(values: np.ndarray) -> np.ndarray:
    """Column sums added in row order, whatever the array's shape (numpy's sum adds in another order
    for one column than for many). Many columns are added a row at a time: numpy's cumsum down the
    rows of a C-ordered array reads it column by column, several times slower, to the same bits."""
    if values.shape[1] < 64:  # a few columns: one cumsum call costs less than a loop over the rows
        return np.cumsum(values, axis=0)[-1]
    total = values[0].copy()
    for row in values[1:]:
        total += row
    return total


def run_rates(objective, optimizer, f, last=None, *, iterations=None, present=None) -> tuple:
    """A run's (or B runs') ``rate_theory`` and ``rate_measured`` columns: :func:`rate` of the built
    ``optimizer`` (its hyperparameters, arrays for a batch) and :func:`measured_rate` of its trace ``f``
    (``last``, ``iterations``, ``present`` as there), None where there is none or it is not finite
    (lr = 1e300) (a list of B values for a batch)."""
    theory = rate(objective, optimizer)
    measured = measured_rate(f, getattr(objective, "f_star", None), last, iterations=iterations, present=present)
    if np.ndim(f) == 1:
        return (theory if theory is not None and math.isfinite(theory) else None), measured
    runs = np.shape(f)[1]
    theory = np.broadcast_to(np.nan if theory is None else np.asarray(theory, float), (runs,))
    return _nullable(theory), _nullable(measured)


def _nullable(values: np.ndarray) -> list:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, float)]
