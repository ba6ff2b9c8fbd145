"""The record every objective factory returns, and the checks they share.

An objective is plain data plus functions over arrays. Batch support is part
of the contract: ``value_and_grad(x)`` takes ``x`` of shape ``(..., n)`` and
returns ``f`` of shape ``(...)`` and the gradient of shape ``(..., n)``, so a
whole grid of runs can be evaluated as one array computation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from runner.errors import ConfigError

ValueAndGrad = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]
MinibatchValueAndGrad = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]
# What an ``x0`` argument takes (the config check reads it): a list of numbers, a number for
# a 1-D problem, or None for the objective's default.
StartingPoint = list[float] | float | None


@dataclass(frozen=True, eq=False)
class Objective:
    """A differentiable objective f: R^n -> R and what is known about it.

    Attributes:
        name: registry name, e.g. ``"quartic"``.
        value_and_grad: ``x (..., n) -> (f (...), grad (..., n))``, analytic.
        x0: default starting point, shape ``(n,)``.
        lower, upper: box bounds, shape ``(n,)`` (``-inf``/``+inf`` where a
            coordinate is free), or ``None`` when the problem is unbounded.
        x_star, f_star: the known minimiser and minimum, or ``None``.
        n_samples: for data objectives, the number of samples ``m``.
        minibatch_value_and_grad: for data objectives,
            ``(x (..., n), idx (..., s)) -> (f_hat (...), g_hat (..., n))``,
            unbiased estimates of the full-data f and gradient from the
            samples ``idx``: the sum over the minibatch scaled by ``m / s``.
        hessian_max_eig: the largest Hessian eigenvalue ``L`` for quadratic
            objectives (used for stability boundaries), else ``None``.
        hessian: the constant Hessian ``(n, n)`` of a quadratic objective, from its own
            data, else ``None``: f(x) = f* + (x - x*)^T H (x - x*) / 2 exactly.
        hessian_eigenvalues: the eigenvalues of ``hessian``, ascending (``runner.theory``
            reads them: the rates and the optimal hyperparameters), else ``None``.
    """

    name: str
    value_and_grad: ValueAndGrad
    x0: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    x_star: np.ndarray | None = None
    f_star: float | None = None
    n_samples: int | None = None
    minibatch_value_and_grad: MinibatchValueAndGrad | None = None
    hessian_max_eig: float | None = None
    hessian: np.ndarray | None = None
    hessian_eigenvalues: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.x0.shape[-1])

    @property
    def has_bounds(self) -> bool:
        return self.lower is not None

    def value(self, x: np.ndarray) -> np.ndarray:
        return self.value_and_grad(x)[0]

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.value_and_grad(x)[1]

    def project(self, x: np.ndarray) -> np.ndarray:
        """Euclidean projection onto the box; the identity when unbounded."""
        if self.lower is None:
            return x
        return np.clip(x, self.lower, self.upper)


def as_x0(x0, default: np.ndarray, *, key: str = "objective.x0") -> np.ndarray:
    """The starting point a user gave (any sequence), or the default, as floats.

    A user's x0 must have the default's length; a scalar is accepted for 1-D
    problems (``objective.x0=-6``).
    """
    if x0 is None:
        return np.array(default, dtype=float)
    try:
        raw = np.asarray(list(x0) if not np.isscalar(x0) else x0)
        if raw.dtype.kind not in "iuf":  # true/false, text, or integers past int64 are not coordinates
            raise TypeError(raw.dtype)
        x = np.atleast_1d(raw.astype(float))
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(key, x0, f"a list of {len(default)} numbers") from None
    if x.ndim != 1 or x.shape[0] != len(default):
        raise ConfigError(key, x0, f"a list of {len(default)} numbers (got {x.size})")
    if not np.all(np.isfinite(x)):
        raise ConfigError(key, x0, "finite numbers")
    return x


def check_within(x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, key: str = "objective.x0") -> None:
    """Refuse a starting point outside the box, naming the first bad coordinate."""
    outside = np.flatnonzero((x0 < lower) | (x0 > upper))
    if outside.size:
        i = int(outside[0])
        raise ConfigError(
            key,
            f"x0[{i}]={x0[i]:g}",
            f"values within the bounds [{lower[i]:g}, {upper[i]:g}] for coordinate {i}",
        )


def check_real(value, key: str, *, minimum: float = -np.inf) -> float:
    """A finite real number >= ``minimum`` (bools and strings are refused)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or (isinstance(value, int) and not -(2**63) <= value < 2**63)  # past int64: no table stores it
        or not np.isfinite(value)
        or value < minimum
    ):
        allowed = "a finite number" if minimum == -np.inf else f"a finite number >= {minimum:g}"
        raise ConfigError(key, value, allowed)
    return float(value)
