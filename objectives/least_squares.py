"""Linear least squares, the notes' linear-regression objective (eq. 2.3).

    f(theta) = ||A theta - b||^2 = sum_{k=1..m} (a_k . theta - b_k)^2,
    grad f(theta) = 2 A^T (A theta - b),    Hessian = 2 A^T A.

The loss is a sum (not a mean) over the m samples, as in the notes; a
minibatch of s samples estimates it as (m / s) times the sum over the batch.
"""

from __future__ import annotations

import numpy as np

from objectives.base import Objective, StartingPoint, as_x0, check_real
from objectives.data import load_xy, minibatch_estimator
from runner.errors import check_count


def least_squares(
    m: int = 100,
    n: int = 10,
    noise: float = 0.1,
    data: str | None = None,
    target: str = "y",
    x0: StartingPoint = None,
    seed: int = 0,
) -> Objective:
    """f(theta) = ||A theta - b||^2 on synthetic or user data (notes eq. 2.3).

    Args:
        m, n: samples and features of the synthetic problem.
        noise: standard deviation of the noise added to the synthetic targets.
        data: path to a .npz/.csv/.parquet file (see ``objectives.data.load_xy``)
            holding A (the features) and b (the column or array ``target``).
            When given, the file wins: m and n are the file's, and m, n,
            noise and seed are not used (they are still validated).
        target: name of b's column or array in ``data``.
        x0: starting point of length n; default zeros.
        seed: synthetic data come from ``np.random.default_rng(seed)``, drawn
            in this order: A (m x n), theta_true (n), noise (m), all standard
            normal; b = A theta_true + noise * eps.

    Returns:
        An ``Objective`` with ``x_star``/``f_star`` from ``numpy.linalg.lstsq``
        (the minimum-norm minimiser when A is rank deficient),
        ``hessian`` = 2 A^T A, its ``hessian_eigenvalues`` (``numpy.linalg.eigvalsh``)
        and ``hessian_max_eig``, the largest of them,
        ``n_samples = m`` and ``minibatch_value_and_grad``.
    """
    m = check_count(m, "objective.m")
    n = check_count(n, "objective.n")
    noise = check_real(noise, "objective.noise", minimum=0.0)
    seed = check_count(seed, "objective.seed", minimum=0)
    if data is None:
        rng = np.random.default_rng(seed)
        A = rng.standard_normal((m, n))
        theta_true = rng.standard_normal(n)
        b = A @ theta_true + noise * rng.standard_normal(m)
    else:
        A, b = load_xy(data, target)
        m, n = A.shape
    A.flags.writeable = b.flags.writeable = False  # closed over below; nobody may change the data

    def loss_and_grad(x, A_s, b_s):
        # A_s (..., s, n) or (s, n); x (..., n). matmul broadcasts the leading axes.
        r = (A_s @ x[..., :, None])[..., 0] - b_s
        return np.sum(r * r, axis=-1), 2.0 * (r[..., None, :] @ A_s)[..., 0, :]

    def value_and_grad(x):
        return loss_and_grad(np.asarray(x, dtype=float), A, b)

    x_star = np.linalg.lstsq(A, b, rcond=None)[0]
    hessian = 2.0 * A.T @ A
    eigenvalues = np.linalg.eigvalsh(hessian)
    hessian.flags.writeable = eigenvalues.flags.writeable = False
    return Objective(
        name="least_squares",
        value_and_grad=value_and_grad,
        x0=as_x0(x0, np.zeros(n)),
        x_star=x_star,
        f_star=float(value_and_grad(x_star)[0]),
        n_samples=m,
        minibatch_value_and_grad=minibatch_estimator(loss_and_grad, A, b),
        hessian_max_eig=float(eigenvalues[-1]),
        hessian=hessian,
        hessian_eigenvalues=eigenvalues,
    )
