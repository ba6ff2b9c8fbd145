"""The shifted, axis-scaled quadratic of the notes' gradient-descent example (eq. 2.8).

    f(x) = ((x1 - a) / 4)^2 + ((x2 - b) / 3)^2
    grad f(x) = ((x1 - a) / 8,  2 (x2 - b) / 9)
    Hessian = diag(1/8, 2/9),   so L = hessian_max_eig = 2/9.

Note on the source: the notes' code uses ``dfdx1 = (x1 - a) / 2`` and
``dfdx2 = 2 * (x2 - b) / 3``. That is not the gradient of this f (it is 4x
and 3x too large); it is the gradient of (x1 - a)^2 / 4 + (x2 - b)^2 / 3. We
use the true gradient, so learning rates and iteration counts differ from the
notes' figures (gd is stable here for lr < 2 / L = 9, not lr < 3).
"""

from __future__ import annotations

import numpy as np

from objectives.base import Objective, StartingPoint, as_x0, check_real

_SCALE = np.array([4.0, 3.0])
_GRAD_SCALE = 2.0 / _SCALE
_HESSIAN = np.diag(2.0 / _SCALE**2)  # d/dx of the gradient u * 2 / scale, u = (x - center) / scale
_HESSIAN.flags.writeable = False  # one array shared by every objective built


def shifted_quadratic(a: float = 2.0, b: float = -3.0, x0: StartingPoint = None) -> Objective:
    """f(x) = ((x1 - a)/4)^2 + ((x2 - b)/3)^2 on R^2 (notes eq. 2.8).

    Args:
        a, b: the minimiser's coordinates.
        x0: starting point, default ``[8, 9]`` (the notes' initial guess).

    Returns:
        An unbounded 2-D ``Objective`` with ``x_star = (a, b)``, ``f_star = 0``,
        ``hessian = diag(1/8, 2/9)``, its ``hessian_eigenvalues`` and ``hessian_max_eig = 2/9``.

    Example:
        >>> f, g = shifted_quadratic().value_and_grad(np.array([6.0, 0.0]))
        >>> float(f), g
        (2.0, array([0.5       , 0.66666667]))
    """
    center = np.array([check_real(a, "objective.a"), check_real(b, "objective.b")])

    def value_and_grad(x):
        u = (np.asarray(x, dtype=float) - center) / _SCALE
        return np.vecdot(u, u), u * _GRAD_SCALE

    return Objective(
        name="shifted_quadratic",
        value_and_grad=value_and_grad,
        x0=as_x0(x0, np.array([8.0, 9.0])),
        x_star=center,
        f_star=0.0,
        hessian_max_eig=float(np.max(2.0 / _SCALE**2)),
        hessian=_HESSIAN,
        hessian_eigenvalues=np.sort(np.diag(_HESSIAN)),
    )
