"""Gradient optimizers as ``(init, update)`` pairs of pure functions over arrays.

Every factory follows ``torch.optim``: the same hyperparameter names, the same
defaults and the same formulas, operation for operation, so that an iterate
sequence from here matches one from torch to rounding.

Conventions shared by all of them:

* ``init(x) -> state`` and ``update(grad, state, x) -> (new_x, new_state)``;
  nothing is modified in place.
* The state holds what torch keeps in ``optimizer.state``: ``step`` counts the
  updates taken so far where torch counts them (Adagrad, RMSprop, Adam); SGD's
  ``momentum_buffer`` is None until the first step with momentum, as in torch.
* Hyperparameters are scalars, or arrays of a batch shape ``B``: with ``x`` of
  shape ``B + (n,)`` each config of the batch gets its own value. This is what
  lets a whole sweep grid run as one computation.
* ``weight_decay`` adds ``weight_decay * x`` to the gradient first (L2, as torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from runner.errors import ConfigError, check_count


class Optimizer(NamedTuple):
    """An update rule.

    Attributes:
        init: ``x -> state``.
        update: ``(grad, state, x) -> (new_x, new_state)``.
        name: registry name.
        hyperparams: the values in effect, defaults included (trace columns).
        batch_size: minibatch size when the rule runs on sample gradients
            (``sgd``), else ``None`` for full gradients.
    """

    init: Callable[[np.ndarray], Any]
    update: Callable[[np.ndarray, Any, np.ndarray], tuple[np.ndarray, Any]]
    name: str
    hyperparams: dict
    batch_size: int | None = None

    # Its update works over a leading batch axis (hyperparameters of shape (B,)): a sweep may run
    # many configs of it as one computation (runner.batched). It has no own driver: runner.loop runs it.
    batchable = True


class SGDState(NamedTuple):
    momentum_buffer: np.ndarray | None


class AdagradState(NamedTuple):
    step: int
    sum: np.ndarray


class RMSpropState(NamedTuple):
    step: int
    square_avg: np.ndarray
    grad_avg: np.ndarray
    momentum_buffer: np.ndarray


class AdamState(NamedTuple):
    step: int
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    max_exp_avg_sq: np.ndarray


# ----------------------------------------------------------------------------- checks


def _per_config(value) -> float | np.ndarray:
    """A hyperparameter ready to broadcast against x (B..., n).

    A single value stays a Python float (the fast path of a single run); an
    array of a batch shape B gets a trailing axis.
    """
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array[..., np.newaxis]


def _number(value, key: str) -> np.ndarray:
    if isinstance(value, bool) or value is None:
        raise ConfigError(key, value, "a number")
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "iuf":  # true/false, text ("0.1"), or integers past int64
            raise TypeError(array.dtype)
        array = array.astype(float)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(key, value, "a number") from None
    if not np.all(np.isfinite(array)):
        raise ConfigError(key, value, "a finite number")
    return array


def _check(value, key: str, ok: Callable[[np.ndarray], np.ndarray], allowed: str) -> np.ndarray:
    array = _number(value, key)
    if not np.all(ok(array)):
        raise ConfigError(key, value, allowed)
    return array


def _lr(lr):
    return _check(lr, "lr", lambda v: v > 0, "a number > 0")


def _weight_decay(weight_decay):
    return _check(weight_decay, "optimizer.weight_decay", lambda v: v >= 0, "a number >= 0")


def _eps(eps):
    return _check(eps, "optimizer.eps", lambda v: v >= 0, "a number >= 0")


def _unit_interval(value, key: str):
    """A decay rate in [0, 1), torch's allowed range for momentum and betas."""
    return _check(value, key, lambda v: (v >= 0) & (v < 1), "a number in [0, 1)")


def _flag(value, key: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(key, value, "true or false")
    return bool(value)


def _batch_size(batch_size) -> int:
    return check_count(batch_size, "optimizer.batch_size")


def _hyperparams(**values) -> dict:
    """Plain Python values for the trace columns (scalars stay scalars)."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in values.items()}


def _lerp(start, end, weight):
    """torch.lerp: ``start + weight * (end - start)``, with torch's two branches.

    For ``weight >= 0.5`` torch evaluates ``end - (end - start) * (1 - weight)``, so that
    weight 1 gives ``end`` exactly (Adam with beta1 = 0 keeps ``exp_avg`` equal to the gradient).
    """
    if isinstance(weight, float):
        return start + weight * (end - start) if weight < 0.5 else end - (end - start) * (1 - weight)
    return np.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


def _decay(weight_decay: np.ndarray) -> float | np.ndarray | None:
    """``weight_decay`` per config, or None when it is zero everywhere.

    Skipping the add when it is zero keeps gd bitwise equal to ``x - lr * g``.
    """
    return _per_config(weight_decay) if np.any(weight_decay) else None


def _with_weight_decay(grad, x, weight_decay):
    return grad if weight_decay is None else grad + weight_decay * x


# ----------------------------------------------------------------------------- SGD family


def _sgd_rule(lr, momentum, dampening, weight_decay, nesterov):
    """torch.optim.SGD.

    With ``g = grad + weight_decay * x``::

        b_1 = g;   b_t = momentum * b_{t-1} + (1 - dampening) * g      (momentum > 0)
        d   = g + momentum * b_t  if nesterov  else  b_t               (d = g when momentum = 0)
        x  <- x - lr * d
    """
    lr_v, momentum_v, dampening_v = (
        _lr(lr),
        _unit_interval(momentum, "optimizer.momentum"),
        _number(dampening, "optimizer.dampening"),
    )
    weight_decay_v = _weight_decay(weight_decay)
    nesterov = _flag(nesterov, "optimizer.nesterov")
    if nesterov and (np.any(momentum_v <= 0) or np.any(dampening_v != 0)):
        raise ConfigError("optimizer.momentum", momentum, "a number in (0, 1) with dampening 0 for nesterov")
    # torch keeps no buffer at momentum 0 (d = g), so dampening has no effect there. In a batch
    # that mixes momentum 0 with momentum > 0, those configs take the buffer path below, which
    # reduces to b_t = 0 * b_{t-1} + 1 * g = g only if their dampening is 0.
    dampening_v = np.where(momentum_v == 0, 0.0, dampening_v)
    lr_c, mom_c, damp_c = map(_per_config, (lr_v, momentum_v, dampening_v))
    wd_c = _decay(weight_decay_v)
    uses_momentum = bool(np.any(momentum_v != 0))

    def init(x):
        return SGDState(momentum_buffer=None)

    def update(grad, state, x):
        g = _with_weight_decay(grad, x, wd_c)
        if not uses_momentum:
            # Plain gradient descent keeps no state, so the state passes through unchanged:
            # this is the hot path of every gd run.
            return x - lr_c * g, state
        # torch.optim.SGD: the buffer starts as the first gradient, undamped
        buf = g if state.momentum_buffer is None else mom_c * state.momentum_buffer + (1 - damp_c) * g
        direction = g + mom_c * buf if nesterov else buf
        return x - lr_c * direction, SGDState(buf)

    return init, update


def gd(lr: float = 1e-3, weight_decay: float = 0.0) -> Optimizer:
    """Gradient descent (notes eq. 2.7): ``x <- x - lr * g``. torch.optim.SGD with momentum 0."""
    rule = _sgd_rule(lr, 0.0, 0.0, weight_decay, False)
    return Optimizer(*rule, "gd", _hyperparams(lr=lr, weight_decay=weight_decay))


def _gd_stable_lr(L: float, weight_decay: float = 0.0) -> float | None:
    """The largest stable lr of gd on a quadratic whose Hessian's largest eigenvalue is ``L``: 2/(L + wd).

    On that eigendirection x <- (1 - lr (L + wd)) x, which shrinks iff lr (L + wd) < 2.
    None where L + wd <= 0 (no curvature to bound the step).
    """
    curvature = L + float(weight_decay or 0.0)
    return 2.0 / curvature if curvature > 0 else None


def _curvature_text(weight_decay: float = 0.0, dampening: float = 0.0) -> str:
    """The curvature the limits below divide by, as their formulas write it: L, (L + wd), ((1 - d) L)."""
    text = f"(L + {float(weight_decay):g})" if weight_decay else "L"
    return f"((1 - {float(dampening):g}) {text})" if dampening else text


_gd_stable_lr.formula = lambda weight_decay=0.0: "2/" + _curvature_text(weight_decay)
gd.stable_lr = _gd_stable_lr


def _gd_rate_block(curvature, lr, weight_decay=0.0):
    """gd's iteration matrix on one eigendirection of a quadratic, curvature ``curvature`` (an
    eigenvalue of the Hessian): ``e <- (1 - lr (curvature + wd)) e`` for ``e = x - x*``, shape ``(..., 1, 1)``.
    Arguments broadcast (one block per element)."""
    h = np.asarray(lr, float) * (np.asarray(curvature, float) + np.asarray(weight_decay, float))
    return (1.0 - h)[..., None, None]


def _gd_optimal(mu: float, L: float, weight_decay: float = 0.0) -> dict:
    """The lr of the smallest rate on a quadratic whose Hessian's eigenvalues lie in [mu, L]:
    lr* = 2/(L + mu) (curvatures shifted by wd), where |1 - lr mu| = |1 - lr L|; rate (κ - 1)/(κ + 1)."""
    return {"lr": 2.0 / (L + mu + 2.0 * float(weight_decay or 0.0))}


gd.rate_block = _gd_rate_block
gd.optimal = _gd_optimal


def momentum(lr: float = 1e-3, momentum: float = 0.9, dampening: float = 0.0, weight_decay: float = 0.0) -> Optimizer:
    """Heavy ball, torch.optim.SGD convention: ``z <- momentum*z + g;  x <- x - lr*z``.

    This is the notes' momentum with alpha = momentum; ``momentum=0`` is exactly gd.
    """
    rule = _sgd_rule(lr, momentum, dampening, weight_decay, False)
    hyper = _hyperparams(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    return Optimizer(*rule, "momentum", hyper)


def _momentum_stable_lr(L: float, momentum=0.9, dampening: float = 0.0, weight_decay: float = 0.0):
    """The largest stable lr of heavy ball on a quadratic whose Hessian's largest eigenvalue is ``L``:
    2 (1 + momentum) / ((1 - dampening) (L + wd)); ``momentum`` may be an array (one limit each).

    On that eigendirection, with h = lr (1 - dampening) (L + wd), the step is
    ``(x, z) <- (x - lr z', z')`` with ``z' = m z + (1 - d)(L + wd) x``: its matrix has
    trace 1 + m - h and determinant m, both roots inside the unit circle iff 0 < h < 2 (1 + m)
    (the Jury conditions, with 0 <= m < 1). None where (1 - dampening)(L + wd) <= 0.
    """
    curvature = (1.0 - float(dampening or 0.0)) * (L + float(weight_decay or 0.0))
    if curvature <= 0:
        return None
    return 2.0 * (1.0 + np.asarray(momentum, dtype=float)) / curvature


_momentum_stable_lr.formula = lambda momentum=None, dampening=0.0, weight_decay=0.0: (
    "2(1 + momentum)/" + _curvature_text(weight_decay, dampening)
)
momentum.stable_lr = _momentum_stable_lr


def _momentum_rate_block(curvature, lr, momentum=0.9, dampening=0.0, weight_decay=0.0):
    """Heavy ball's iteration matrix on one eigendirection of a quadratic, shape ``(..., 2, 2)``.

    With e = x - x*, the state u = lr z (z the buffer before the step), c = (1 - d)(curvature + wd)
    and h = lr c, torch's step ``z' = m z + (1 - d) g``, ``x' = x - lr z'`` is
    ``u' = m u + h e``, ``e' = e - u' = (1 - h) e - m u``::

        [e']   [1 - h   -m] [e]
        [u'] = [  h      m] [u]

    (trace 1 + m - h, determinant m). Torch's first step (the buffer starts as g, undamped) is
    this map from u = 0 when dampening is 0. Arguments broadcast (one block per element).
    """
    m = np.asarray(momentum, float)
    c = (1.0 - np.asarray(dampening, float)) * (np.asarray(curvature, float) + np.asarray(weight_decay, float))
    h = np.asarray(lr, float) * c
    h, m = np.broadcast_arrays(h, m)
    return np.stack([np.stack([1.0 - h, -m], -1), np.stack([h, m], -1)], -2)


def _momentum_optimal(mu: float, L: float, dampening: float = 0.0, weight_decay: float = 0.0) -> dict:
    """Polyak's heavy ball on a quadratic whose Hessian's eigenvalues lie in [mu, L], in torch's convention.

    Polyak writes ``x' = x - alpha g + beta (x - x_prev)``, tuned as alpha* = 4/(sqrt(L) + sqrt(mu))^2,
    beta* = ((sqrt(κ) - 1)/(sqrt(κ) + 1))^2, κ = L/mu, rate sqrt(beta*) = (sqrt(κ) - 1)/(sqrt(κ) + 1).
    Torch's ``z' = m z + (1 - d) g``, ``x' = x - lr z'`` is the same method: ``lr z = x_prev - x``, so
    ``x' = x - lr (1 - d) g + m (x - x_prev)``, i.e. alpha = lr (1 - d) and beta = m (lr = alpha and
    momentum = beta for dampening 0). Curvatures are shifted by wd.
    """
    wd = float(weight_decay or 0.0)
    root_mu, root_L = np.sqrt(mu + wd), np.sqrt(L + wd)
    alpha = 4.0 / (root_L + root_mu) ** 2
    return {"lr": alpha / (1.0 - float(dampening or 0.0)), "momentum": ((root_L - root_mu) / (root_L + root_mu)) ** 2}


momentum.rate_block = _momentum_rate_block
momentum.optimal = _momentum_optimal


def nesterov(lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0) -> Optimizer:
    """torch.optim.SGD with ``nesterov=True``: ``z <- momentum*z + g;  x <- x - lr*(g + momentum*z)``."""
    rule = _sgd_rule(lr, momentum, 0.0, weight_decay, True)
    return Optimizer(*rule, "nesterov", _hyperparams(lr=lr, momentum=momentum, weight_decay=weight_decay))


def _nesterov_stable_lr(L: float, momentum=0.9, weight_decay: float = 0.0):
    """The largest stable lr of torch's Nesterov on a quadratic whose Hessian's largest eigenvalue is ``L``:
    2 (1 + momentum) / ((1 + 2 momentum) (L + wd)); ``momentum`` may be an array (one limit each).

    On that eigendirection, with h = lr (L + wd) and u = lr z, one step maps
    ``(x, u) <- ((1 - h (1 + m)) x - m^2 u,  h x + m u)``: trace 1 + m - h (1 + m),
    determinant m (1 - h). The Jury conditions |det| < 1 and |trace| < 1 + det hold iff
    0 < h < 2 (1 + m) / (1 + 2 m) (the bound |det| < 1 is looser, h < 1 + 1/m). At
    momentum 0 it is gd's 2/L. None where L + wd <= 0.
    """
    curvature = L + float(weight_decay or 0.0)
    if curvature <= 0:
        return None
    m = np.asarray(momentum, dtype=float)
    return 2.0 * (1.0 + m) / ((1.0 + 2.0 * m) * curvature)


_nesterov_stable_lr.formula = lambda momentum=None, weight_decay=0.0: (
    f"2(1 + momentum)/((1 + 2 momentum) {_curvature_text(weight_decay)})"
)
nesterov.stable_lr = _nesterov_stable_lr


def _nesterov_rate_block(curvature, lr, momentum=0.9, weight_decay=0.0):
    """Torch's Nesterov iteration matrix on one eigendirection of a quadratic, shape ``(..., 2, 2)``.

    With e = x - x*, u = lr z (the buffer before the step) and h = lr (curvature + wd), the step
    ``z' = m z + g``, ``x' = x - lr (g + m z')`` is ``u' = m u + h e``,
    ``e' = (1 - h (1 + m)) e - m^2 u``::

        [e']   [1 - h (1 + m)   -m^2] [e]
        [u'] = [      h           m ] [u]

    (trace 1 + m - h (1 + m), determinant m (1 - h)). Arguments broadcast.
    """
    m = np.asarray(momentum, float)
    h = np.asarray(lr, float) * (np.asarray(curvature, float) + np.asarray(weight_decay, float))
    h, m = np.broadcast_arrays(h, m)
    return np.stack([np.stack([1.0 - h * (1.0 + m), -m * m], -1), np.stack([h, m], -1)], -2)


def _nesterov_optimal(mu: float, L: float, weight_decay: float = 0.0) -> dict:
    """Nesterov's tuning of smallest rate on a quadratic whose Hessian's eigenvalues lie in [mu, L]
    (Lessard, Recht & Packard 2016, sec. 3.2): lr* = 4/(3L + mu), momentum* = (sqrt(3κ + 1) - 2)/(sqrt(3κ + 1) + 2),
    rate 1 - 2/sqrt(3κ + 1). Torch's Nesterov step is ``y = x + m (x - x_prev)``, ``x' = y - lr g(y)``
    with the same lr and m (its characteristic polynomial z^2 - (1 + m)(1 - h) z + m (1 - h) is that
    method's). Curvatures are shifted by wd.
    """
    wd = float(weight_decay or 0.0)
    root = np.sqrt(3.0 * (L + wd) / (mu + wd) + 1.0)
    return {"lr": 4.0 / (3.0 * (L + wd) + mu + wd), "momentum": (root - 2.0) / (root + 2.0)}


nesterov.rate_block = _nesterov_rate_block
nesterov.optimal = _nesterov_optimal


def sgd(
    lr: float = 1e-3,
    batch_size: int = 32,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> Optimizer:
    """torch.optim.SGD on minibatch gradients of ``batch_size`` samples (notes eq. 2.10).

    The update rule is the SGD family's above; the loop feeds it an unbiased
    estimate of the full gradient from a minibatch drawn with the run's seed.
    """
    batch_size = _batch_size(batch_size)
    rule = _sgd_rule(lr, momentum, dampening, weight_decay, nesterov)
    hyper = _hyperparams(
        lr=lr,
        batch_size=batch_size,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )
    return Optimizer(*rule, "sgd", hyper, batch_size)


# ----------------------------------------------------------------------------- adaptive


def adagrad(
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
) -> Optimizer:
    """torch.optim.Adagrad.

    With ``g = grad + weight_decay * x`` and t the step (1-based)::

        clr   = lr / (1 + (t - 1) * lr_decay)
        s_t   = s_{t-1} + g * g                       (s_0 = initial_accumulator_value)
        x    <- x - clr * g / (sqrt(s_t) + eps)
    """
    lr_c = _per_config(_lr(lr))
    lr_decay_c = _per_config(_check(lr_decay, "optimizer.lr_decay", lambda v: v >= 0, "a number >= 0"))
    wd_c = _decay(_weight_decay(weight_decay))
    init_acc = _check(
        initial_accumulator_value, "optimizer.initial_accumulator_value", lambda v: v >= 0, "a number >= 0"
    )
    eps_c = _per_config(_eps(eps))

    def init(x):
        return AdagradState(0, np.full_like(x, 0.0, dtype=float) + _per_config(init_acc))

    def update(grad, state, x):
        g = _with_weight_decay(grad, x, wd_c)
        clr = lr_c / (1 + state.step * lr_decay_c)
        total = state.sum + g * g
        return x - clr * (g / (np.sqrt(total) + eps_c)), AdagradState(state.step + 1, total)

    hyper = _hyperparams(
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        initial_accumulator_value=initial_accumulator_value,
        eps=eps,
    )
    return Optimizer(init, update, "adagrad", hyper)


def rmsprop(
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
) -> Optimizer:
    """torch.optim.RMSprop.

    With ``g = grad + weight_decay * x``::

        v_t = alpha * v_{t-1} + (1 - alpha) * g^2
        avg = sqrt(v_t - m_t^2) + eps,  m_t = alpha * m_{t-1} + (1 - alpha) * g   (centered)
        avg = sqrt(v_t) + eps                                                    (otherwise)
        b_t = momentum * b_{t-1} + g / avg;  x <- x - lr * b_t                   (momentum > 0)
        x  <- x - lr * g / avg                                                   (otherwise)
    """
    lr_c = _per_config(_lr(lr))
    alpha_v = _check(alpha, "optimizer.alpha", lambda v: (v >= 0) & (v <= 1), "a number in [0, 1]")
    alpha_c, eps_c = _per_config(alpha_v), _per_config(_eps(eps))
    wd_c = _decay(_weight_decay(weight_decay))
    momentum_v = _unit_interval(momentum, "optimizer.momentum")
    mom_c = _per_config(momentum_v)
    centered = _flag(centered, "optimizer.centered")
    uses_momentum = bool(np.any(momentum_v != 0))

    def init(x):
        zeros = np.zeros_like(x, dtype=float)
        return RMSpropState(0, zeros, zeros, zeros)

    def update(grad, state, x):
        g = _with_weight_decay(grad, x, wd_c)
        square_avg = alpha_c * state.square_avg + (1 - alpha_c) * (g * g)
        grad_avg = state.grad_avg
        if centered:
            grad_avg = _lerp(state.grad_avg, g, 1 - alpha_c)  # torch: grad_avg.lerp_(grad, 1 - alpha)
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps_c
        else:
            avg = np.sqrt(square_avg) + eps_c
        buf = state.momentum_buffer
        if uses_momentum:
            buf = mom_c * buf + g / avg
            new_x = x - lr_c * buf
        else:
            new_x = x - lr_c * (g / avg)
        return new_x, RMSpropState(state.step + 1, square_avg, grad_avg, buf)

    hyper = _hyperparams(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)
    return Optimizer(init, update, "rmsprop", hyper)


def adam(
    lr: float = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
) -> Optimizer:
    """torch.optim.Adam.

    With ``g = grad + weight_decay * x`` and t the step (1-based)::

        m_t = m_{t-1} + (1 - beta1) * (g - m_{t-1})          (torch: exp_avg.lerp_)
        v_t = beta2 * v_{t-1} + (1 - beta2) * g^2
        v^  = max(v^_{t-1}, v_t) if amsgrad else v_t
        x  <- x - lr / (1 - beta1^t) * m_t / (sqrt(v^) / sqrt(1 - beta2^t) + eps)
    """
    lr_c = _per_config(_lr(lr))
    if not isinstance(betas, (list, tuple, np.ndarray)) or len(betas) != 2:
        raise ConfigError("optimizer.betas", betas, "a pair [beta1, beta2] of numbers in [0, 1)")
    beta1_c = _per_config(_unit_interval(betas[0], "optimizer.betas[0]"))
    beta2_c = _per_config(_unit_interval(betas[1], "optimizer.betas[1]"))
    eps_c, wd_c = _per_config(_eps(eps)), _decay(_weight_decay(weight_decay))
    amsgrad = _flag(amsgrad, "optimizer.amsgrad")

    def init(x):
        zeros = np.zeros_like(x, dtype=float)
        return AdamState(0, zeros, zeros, zeros)

    def update(grad, state, x):
        g = _with_weight_decay(grad, x, wd_c)
        step = state.step + 1
        exp_avg = _lerp(state.exp_avg, g, 1 - beta1_c)  # torch: exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq = beta2_c * state.exp_avg_sq + (1 - beta2_c) * (g * g)
        # Powers through numpy for a single config too: Python's float ** int can round
        # differently, and a batched run must equal each of its configs run alone.
        bias_correction1 = 1 - np.power(beta1_c, step)
        bias_correction2_sqrt = np.sqrt(1 - np.power(beta2_c, step))
        max_exp_avg_sq = state.max_exp_avg_sq
        if amsgrad:
            max_exp_avg_sq = np.maximum(max_exp_avg_sq, exp_avg_sq)
            denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps_c
        else:
            denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps_c
        step_size = lr_c / bias_correction1
        return x - step_size * (exp_avg / denom), AdamState(step, exp_avg, exp_avg_sq, max_exp_avg_sq)

    hyper = _hyperparams(
        lr=lr, betas=[_hyperparams(b=b)["b"] for b in betas], eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
    )
    return Optimizer(init, update, "adam", hyper)


# ----------------------------------------------------------------------------- registry

# The gradient optimizers by registry name (== factory name == ``conf/optimizer/<name>.yaml``).
# A factory whose stability on quadratics is known carries ``stable_lr(L, **hyperparams)``: the
# largest stable lr for a Hessian whose largest eigenvalue is L, its hyperparameters named as the
# factory's (lr aside; momentum may be an array, one limit each), or None where it has no bound;
# ``stable_lr.formula(**hyperparams)`` writes the rule out (``"2(1 + momentum)/L"``). Those also carry
# ``rate_block(curvature, lr, **hyperparams)``, the step's iteration matrix on one eigendirection of a
# quadratic, and ``optimal(mu, L, **hyperparams)``, the lr (and momentum) of the smallest rate
# (:mod:`runner.theory` reads both). The adaptive
# ones (and sgd, whose steps are noisy) carry none: their step depends on the gradients seen, not
# on lr and L alone.
OPTIMIZERS = {f.__name__: f for f in (gd, momentum, nesterov, sgd, adagrad, rmsprop, adam)}
