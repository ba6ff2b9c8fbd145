"""The stopping rules and the progress call that every driver shares: the loop, the scipy adapter, the batch.

The rules, in order, each as status (stop reason), at iterate ``k``:

* ``diverged`` (``diverged``): ``f_k`` or the gradient is not finite (the row is kept);
* ``converged`` (``grad_tol``): the projected gradient norm is ``<= grad_tol`` (``grad_tol > 0``);
* ``converged`` (``tol``): ``|f_k - f_{k-1}| < tol`` (``tol > 0``, the notes' rule);
* ``max_iter`` (``max_iter``): ``k == max_iter``.

scipy decides its own ending (:mod:`runner.scipy_driver`) and reports it as a :class:`Stop` too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from objectives.base import Objective

Progress = Callable[[int, float], None]
PROGRESS_EVERY_S = 0.5  # a driver calls progress(k, f) about this often


def gradient_norm(objective: Objective, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``||x - P(x - g)||``: the gradient norm, projected onto the box when there is one.

    It is zero exactly at the first-order optimum of the bounded problem (the
    measure L-BFGS-B's ``pgtol`` uses), and equals ``||g||`` without bounds.
    Works over leading batch axes.
    """
    if objective.has_bounds:
        g = x - objective.project(x - g)
    return np.sqrt(np.vecdot(g, g))


class Stop(NamedTuple):
    """How a run ends: its status (:data:`runner.trace.STATUSES`), the rule that ended it
    (:data:`runner.trace.STOP_REASONS`) and a message saying so with numbers."""

    status: str
    reason: str
    message: str


def stop_reason(
    k: int, f: float, f_prev: float, gnorm: float, *, tol: float, grad_tol: float, max_iter: int
) -> Stop | None:
    """The stopping rules, in order, at iterate k: a :class:`Stop`, or None to go on.

    ``f_prev`` is f at iterate k - 1 (unused at k = 0); ``gnorm`` is the
    gradient norm at iterate k, projected onto the bounds if there are any.
    """
    if not math.isfinite(f + gnorm):
        return Stop("diverged", "diverged", f"f or its gradient is not finite at iteration {k}")
    if grad_tol > 0 and gnorm <= grad_tol:
        return Stop("converged", "grad_tol", f"gradient norm {gnorm:.3g} <= grad_tol = {grad_tol:g}")
    if k > 0 and abs(f - f_prev) < tol:
        return Stop("converged", "tol", f"|f_k - f_(k-1)| = {abs(f - f_prev):.3g} < tol = {tol:g}")
    if k >= max_iter:
        return Stop("max_iter", "max_iter", f"reached max_iter = {max_iter}")
    return None
