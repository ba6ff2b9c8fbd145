"""The 1-D quartic of the notes (eq. 2.4), a small non-convex test problem.

    f(x) = x^4 + 7x^3 + 5x^2 - 17x + 3,    f'(x) = 4x^3 + 21x^2 + 10x - 17.

f' has three real roots: the global minimum near -4.48, a local maximum near
-1.43 and a local minimum near 0.66 (f'' = 12x^2 + 42x + 10 is positive,
negative, positive there). Plain gradient descent started right of the local
maximum ends in the local minimum, which is what makes the problem useful.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from objectives.base import Objective, as_x0

# The global minimiser, the root of f' near -4.48 computed to 40 digits
# (mpmath.findroot) and rounded to the nearest double; f at it, likewise.
X_STAR = -4.4802684803736428
F_STAR = -47.074790099636495


def quartic(x0: Sequence[float] | None = None) -> Objective:
    """f(x) = x^4 + 7x^3 + 5x^2 - 17x + 3 on R (notes eq. 2.4).

    Args:
        x0: starting point, a number or a list of one number; default ``[0.0]``.

    Returns:
        An unbounded 1-D ``Objective`` with ``x_star = [X_STAR]`` (the global
        minimum, -4.48...) and ``f_star = F_STAR``.

    Example:
        >>> f, g = quartic().value_and_grad(np.array([1.0]))
        >>> float(f), g
        (-1.0, array([18.]))
    """

    def value_and_grad(x):
        x = np.asarray(x, dtype=float)
        t = x[..., 0]
        f = (((t + 7.0) * t + 5.0) * t - 17.0) * t + 3.0  # Horner form
        g = ((4.0 * t + 21.0) * t + 10.0) * t - 17.0
        return f, g[..., None]

    return Objective(
        name="quartic",
        value_and_grad=value_and_grad,
        x0=as_x0(x0, np.zeros(1)),
        x_star=np.array([X_STAR]),
        f_star=F_STAR,
    )
