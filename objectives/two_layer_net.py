"""A two-layer ReLU regression net with squared loss (notes eqs. 1.9-1.10).

For samples X (m x n) and targets y (m), with p hidden units:

    Z = X W1^T + b1            (m x p)      hidden pre-activations
    H = relu(Z)                (m x p)
    y_hat = H w2 + b2          (m)
    J = ||y_hat - y||^2        summed over samples, as the notes' eq. 1.10

The parameter vector theta has dim = p*n + 2p + 1 entries, in this order:
W1 (p x n, row-major: W1[j, k] is theta[j*n + k]), b1 (p), w2 (p), b2 (1).

The gradient is backpropagation written out (r = y_hat - y):

    dJ/dy_hat = 2r,   dJ/db2 = sum(2r),   dJ/dw2 = H^T 2r,
    dJ/dZ = (2r w2^T) * [Z > 0],   dJ/db1 = column sums of dJ/dZ,   dJ/dW1 = (dJ/dZ)^T X.

relu'(0) is taken as 0 (the kink is crossed with probability zero).
"""

from __future__ import annotations

import numpy as np

from objectives.base import Objective, StartingPoint, as_x0, check_real
from objectives.data import load_xy, minibatch_estimator
from runner.errors import check_count


def two_layer_net(
    m: int = 200,
    n: int = 5,
    p: int = 16,
    noise: float = 0.1,
    data: str | None = None,
    target: str = "y",
    x0: StartingPoint = None,
    seed: int = 0,
) -> Objective:
    """Squared loss of a one-hidden-layer ReLU net on synthetic or user data.

    Args:
        m, n: samples and input features of the synthetic problem.
        p: hidden units.
        noise: standard deviation of the noise added to the synthetic targets.
        data: path to a .npz/.csv/.parquet file (see ``objectives.data.load_xy``)
            holding X and y (the column or array ``target``). When given, the
            file wins: m and n are the file's, and m, n and noise are not used
            (they are still validated).
        target: name of y's column or array in ``data``.
        x0: starting point of length p*n + 2p + 1 (order in the module
            docstring); default: torch ``nn.Linear``'s initialisation,
            W1, b1 ~ U(-1/sqrt(n), 1/sqrt(n)) and w2, b2 ~ U(-1/sqrt(p), 1/sqrt(p)).
        seed: everything random comes from one ``np.random.default_rng(seed)``,
            drawn in this order: synthetic X (m x n); the teacher net's W1, b1,
            w2, b2, all standard normal; the noise eps (m), with
            y = teacher(X) + noise * eps; then the default x0's W1, b1, w2, b2.
            With ``data`` the synthetic draws are skipped and x0 comes first.

    Returns:
        An ``Objective`` with ``n_samples = m`` and ``minibatch_value_and_grad``;
        the minimiser is unknown (``x_star = f_star = None``).
    """
    m = check_count(m, "objective.m")
    n = check_count(n, "objective.n")
    p = check_count(p, "objective.p")
    noise = check_real(noise, "objective.noise", minimum=0.0)
    seed = check_count(seed, "objective.seed", minimum=0)
    rng = np.random.default_rng(seed)
    if data is None:
        X = rng.standard_normal((m, n))
        teacher = rng.standard_normal(p * n + 2 * p + 1)
        y = _forward(teacher, X, n, p)[0] + noise * rng.standard_normal(m)
    else:
        X, y = load_xy(data, target)
        m, n = X.shape
    X.flags.writeable = y.flags.writeable = False  # closed over below; nobody may change the data

    def loss_and_grad(x, X_s, y_s):
        # X_s (s, n) or (..., s, n); x (..., dim). matmul broadcasts the leading axes.
        y_hat, Z, H = _forward(x, X_s, n, p)
        _, _, w2, _ = _unpack(x, n, p)
        r = y_hat - y_s  # (..., s)
        d = 2.0 * r  # dJ/dy_hat
        g_b2 = np.sum(d, axis=-1)
        g_w2 = (d[..., None, :] @ H)[..., 0, :]
        dZ = d[..., :, None] * w2[..., None, :] * (Z > 0)
        g_b1 = np.sum(dZ, axis=-2)
        g_W1 = np.swapaxes(dZ, -1, -2) @ X_s  # (..., p, n)
        lead = g_W1.shape[:-2]
        g = np.concatenate([g_W1.reshape((*lead, p * n)), g_b1, g_w2, g_b2[..., None]], axis=-1)
        return np.sum(r * r, axis=-1), g

    def value_and_grad(x):
        return loss_and_grad(np.asarray(x, dtype=float), X, y)

    bound1, bound2 = 1.0 / np.sqrt(n), 1.0 / np.sqrt(p)
    default = np.concatenate(
        [
            rng.uniform(-bound1, bound1, p * n),  # W1, row-major
            rng.uniform(-bound1, bound1, p),  # b1
            rng.uniform(-bound2, bound2, p),  # w2
            rng.uniform(-bound2, bound2, 1),  # b2
        ]
    )
    return Objective(
        name="two_layer_net",
        value_and_grad=value_and_grad,
        x0=as_x0(x0, default),
        n_samples=m,
        minibatch_value_and_grad=minibatch_estimator(loss_and_grad, X, y),
    )


def _unpack(x: np.ndarray, n: int, p: int):
    """Views of W1 (..., p, n), b1 (..., p), w2 (..., p), b2 (...) in theta (..., dim)."""
    pn = p * n
    W1 = x[..., :pn].reshape((*x.shape[:-1], p, n))
    return W1, x[..., pn : pn + p], x[..., pn + p : pn + 2 * p], x[..., pn + 2 * p]


def _forward(x: np.ndarray, X: np.ndarray, n: int, p: int):
    """Predictions y_hat (..., s), pre-activations Z and activations H (..., s, p)."""
    W1, b1, w2, b2 = _unpack(x, n, p)
    Z = X @ np.swapaxes(W1, -1, -2) + b1[..., None, :]
    H = np.maximum(Z, 0.0)
    return (H @ w2[..., :, None])[..., 0] + b2[..., None], Z, H
