"""The iteration loop for ``(init, update)`` optimizers. It records rows and does no I/O.

One pass per iterate ``x_k``: evaluate ``f_k`` and ``g_k``, record row ``k``,
apply the stopping rules (:mod:`runner.stopping`), then step. The stopping rules,
in order, each as status (stop reason):

* ``diverged`` (``diverged``): ``f_k`` or the gradient is not finite (the row is kept);
* ``converged`` (``grad_tol``): the projected gradient norm is ``<= grad_tol`` (``grad_tol > 0``);
* ``converged`` (``tol``): ``|f_k - f_{k-1}| < tol`` (``tol > 0``, the notes' rule);
* ``max_iter`` (``max_iter``): ``k == max_iter``.

On an objective with bounds every step is followed by the projection onto the
box, so iterates stay feasible.
"""

from __future__ import annotations

import math
from time import perf_counter
from typing import TYPE_CHECKING

import numpy as np

from runner.errors import ConfigError
from runner.optimizers import Optimizer
from runner.stopping import PROGRESS_EVERY_S, Progress, stop_reason
from runner.trace import EVERY_ITERATION, RunResult, Sampling, TraceRecorder, traced_coordinates

if TYPE_CHECKING:
    from objectives.base import Objective


class EpochSampler:
    """Minibatch indices without replacement, as ``DataLoader(shuffle=True, drop_last=True)``.

    Each epoch draws one permutation of the samples from ``rng`` and hands out
    consecutive slices of ``batch_size``; the incomplete tail is dropped, so
    every minibatch is a uniform random subset of exactly ``batch_size``.
    """

    def __init__(self, n_samples: int, batch_size: int, rng: np.random.Generator):
        self.n_samples, self.batch_size, self.rng = n_samples, batch_size, rng
        self.batches_per_epoch = n_samples // batch_size
        self._order = np.empty(0, dtype=np.int64)
        self._next = self.batches_per_epoch

    def next(self) -> np.ndarray:
        if self._next == self.batches_per_epoch:
            self._order = self.rng.permutation(self.n_samples)
            self._next = 0
        start = self._next * self.batch_size
        self._next += 1
        return self._order[start : start + self.batch_size]


def minibatch_sampler(objective: Objective, optimizer: Optimizer, rng: np.random.Generator) -> EpochSampler | None:
    """The sampler a minibatch optimizer needs, after checking the objective has samples."""
    if optimizer.batch_size is None:
        return None
    if objective.minibatch_value_and_grad is None:
        raise ConfigError(
            "optimizer",
            optimizer.name,
            f"a full-gradient optimizer for objective {objective.name}, which has no samples",
        )
    if optimizer.batch_size > objective.n_samples:
        raise ConfigError(
            "optimizer.batch_size",
            optimizer.batch_size,
            f"an integer in [1, {objective.n_samples}] (objective {objective.name} has {objective.n_samples} samples)",
        )
    return EpochSampler(objective.n_samples, optimizer.batch_size, rng)


def minimize(
    objective: Objective,
    optimizer: Optimizer,
    *,
    max_iter: int,
    tol: float = 0.0,
    grad_tol: float = 0.0,
    rng: np.random.Generator | None = None,
    record_x: bool = True,
    sampling: Sampling = EVERY_ITERATION,
    progress: Progress | None = None,
) -> RunResult:
    """Run ``optimizer`` on ``objective`` from ``objective.x0``; return the outcome and its trace.

    The trace keeps the rows ``sampling`` keeps and the last one; the run itself (its updates,
    rules and outcome) is the same whatever it keeps.
    ``rng`` draws the minibatches of a minibatch optimizer. ``progress(k, f)``
    is called about every half second. Ctrl-C ends the run with status
    ``interrupted`` and the rows recorded so far.
    """
    sampler = minibatch_sampler(objective, optimizer, rng if rng is not None else np.random.default_rng())
    x = np.array(objective.x0, dtype=float)
    coords = traced_coordinates(objective.dim, record_x)
    recorder = TraceRecorder(objective.dim, coords=coords, capacity=min(sampling.rows(max_iter), 1024))
    value_and_grad = objective.value_and_grad
    minibatch = objective.minibatch_value_and_grad
    update = optimizer.update
    lower, upper = objective.lower, objective.upper
    bounded = objective.has_bounds
    status, reason, message = None, None, ""
    nfev = ngev = k = 0
    f_prev = math.nan
    x_last, rows, row = x, 0, 0  # rows written (the last one included); row: where iterate k goes
    next_kept = 0
    isfinite = math.isfinite
    start = perf_counter()
    next_report = PROGRESS_EVERY_S
    # The recorder's columns, written in place: this loop is the hot path of every run.
    F, GN, NF, NG, T, X, K = recorder.columns()
    capacity, all_coords = len(F), len(coords) == objective.dim
    try:
        state = optimizer.init(x)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while True:
                f_k, g = value_and_grad(x)
                f = float(f_k)
                nfev += 1
                if sampler is None:
                    ngev += 1
                projected = x - np.clip(x - g, lower, upper) if bounded else g  # as gradient_norm()
                gnorm = math.sqrt(projected @ projected)
                if row == capacity:
                    F, GN, NF, NG, T, X, K = recorder.grow()
                    capacity = len(F)
                now = perf_counter() - start
                F[row], GN[row], NF[row], NG[row], T[row], K[row] = f, gnorm, nfev, ngev, now, k
                X[row] = x if all_coords else x[coords]
                rows, x_last = row + 1, x
                if k == next_kept:  # else the next iterate overwrites this row, unless this is the last
                    row += 1
                    next_kept = sampling.next_kept(k + 1, max_iter)

                # A cheap test, true whenever a rule may fire; stop_reason then decides.
                if k >= max_iter or not (isfinite(f + gnorm) and gnorm > grad_tol and abs(f - f_prev) >= tol):
                    stop = stop_reason(k, f, f_prev, gnorm, tol=tol, grad_tol=grad_tol, max_iter=max_iter)
                    if stop is not None:
                        status, reason, message = stop
                        break

                if sampler is not None:
                    g = minibatch(x, sampler.next())[1]
                    ngev += 1
                x, state = update(g, state, x)
                if bounded:
                    x = np.clip(x, lower, upper)
                f_prev = f
                k += 1
                if progress is not None and now >= next_report:
                    progress(k, f)
                    next_report = now + PROGRESS_EVERY_S
    except KeyboardInterrupt:
        last = int(K[rows - 1]) if rows else -1
        status, reason, message = "interrupted", "interrupted", f"interrupted after iteration {last}"
    recorder.size = rows
    trace = recorder.finish()
    return RunResult(
        status=status,
        stop_reason=reason,
        message=message,
        x=np.array(x_last),
        f=float(trace.f[-1]) if rows else math.nan,
        iterations=trace.iterations,
        nfev=int(trace.nfev[-1]) if rows else 0,
        ngev=int(trace.ngev[-1]) if rows else 0,
        wall_time_s=perf_counter() - start,
        trace=trace,
    )
