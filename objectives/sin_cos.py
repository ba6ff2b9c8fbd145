"""The bound-constrained sin-cos sum of the notes' scipy example (eq. 2.17).

    f(x) = sum_{i=1..n} 0.1 (x_i - i)^2 + sin(x_i) cos(x_{i+1}) + exp(-x_i^2),

with the cyclic neighbour x_{n+1} = x_1 (as the notes' code,
``x[(i + 1) % 50]``). Each x_i appears in its own term and, through
cos(x_i), in term i-1, so

    df/dx_i = 0.2 (x_i - i) + cos(x_i) cos(x_{i+1}) - sin(x_{i-1}) sin(x_i)
              - 2 x_i exp(-x_i^2)        (indices cyclic).

Bounds: x_i <= 1 for i <= 10 and x_i <= 20 otherwise; no lower bound.
The minimiser is not known in closed form (``x_star = f_star = None``).
"""

from __future__ import annotations

import numpy as np

from objectives.base import Objective, StartingPoint, as_x0, check_within
from runner.errors import check_count

_TIGHT = 10  # coordinates 1..10 are bounded by 1, the rest by 20


def sin_cos(n: int = 50, x0: StartingPoint = None, seed: int = 0) -> Objective:
    """The notes' eq. 2.17 objective in n dimensions, with its box bounds.

    Args:
        n: dimension (the notes use 50).
        x0: starting point of length n within the bounds; default
            ``np.random.default_rng(seed).uniform(0, 1, n)`` (the notes'
            ``np.random.rand(50)``, drawn from our seeded generator).
        seed: seeds the default x0 only.

    Returns:
        A bounded ``Objective``: ``lower = -inf``, ``upper = [1]*10 + [20]*(n-10)``.
    """
    n = check_count(n, "objective.n")
    seed = check_count(seed, "objective.seed", minimum=0)
    i = np.arange(1, n + 1, dtype=float)
    lower = np.full(n, -np.inf)
    upper = np.where(i <= _TIGHT, 1.0, 20.0)

    def value_and_grad(x):
        x = np.asarray(x, dtype=float)
        sin_x, cos_x = np.sin(x), np.cos(x)
        # Cyclic neighbours by slicing (np.roll costs several times more at n = 50).
        cos_next = np.concatenate((cos_x[..., 1:], cos_x[..., :1]), axis=-1)  # cos(x_{i+1})
        sin_prev = np.concatenate((sin_x[..., -1:], sin_x[..., :-1]), axis=-1)  # sin(x_{i-1})
        gauss = np.exp(-x * x)
        d = x - i
        f = np.add.reduce(0.1 * d * d + sin_x * cos_next + gauss, axis=-1)
        g = 0.2 * d + cos_x * cos_next - sin_prev * sin_x - 2.0 * x * gauss
        return f, g

    default = np.random.default_rng(seed).uniform(0.0, 1.0, n)
    start = as_x0(x0, default)
    check_within(start, lower, upper)
    return Objective(
        name="sin_cos",
        value_and_grad=value_and_grad,
        x0=start,
        lower=lower,
        upper=upper,
    )
