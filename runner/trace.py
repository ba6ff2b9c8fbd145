"""The record a run produces: its trace (one row per iterate) and its outcome.

The loop and the scipy adapter both fill a :class:`TraceRecorder`; neither
does I/O. :mod:`runner.store` turns a :class:`RunResult` into files. A run's summary,
alone or batched, is :func:`summary_record`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

STATUSES = ("converged", "max_iter", "stopped", "diverged", "failed", "interrupted")
# The rule that ended a run: the loop's rules, scipy's own ending ("solver"), Ctrl-C, or an error.
STOP_REASONS = ("tol", "grad_tol", "max_iter", "diverged", "solver", "interrupted", "error")
# A run that ended in one of these is a result; failed and interrupted runs are run again on resume.
FINAL_STATUSES = ("converged", "max_iter", "stopped", "diverged")

MAX_TRACED_COORDS = 1000


def traced_coordinates(dim: int, record_x: bool) -> np.ndarray:
    """Which coordinates get an ``x_i`` column: all, an even thinning past 1,000, or none."""
    if not record_x:
        return np.arange(0)
    if dim <= MAX_TRACED_COORDS:
        return np.arange(dim)
    return np.unique(np.linspace(0, dim - 1, MAX_TRACED_COORDS).round().astype(int))


SCHEDULES = ("all", "log")


@dataclass(frozen=True)
class Sampling:
    """Which iterations a trace keeps (``trace.every``, ``trace.schedule``, ``trace.points``).

    ``schedule="all"`` keeps every ``every``-th iteration (0, N, 2N, ...); ``schedule="log"`` keeps
    iteration 0 and about ``points - 1`` iterations log-spaced over ``[1, max_iter]`` (every
    iteration when ``max_iter < points``). Whatever the schedule, a driver also keeps the run's last
    row: the iteration where a stop rule fired, or where the run was interrupted. The rows kept
    are the rows the full trace has at those iterations, with their true ``iteration`` numbers.
    """

    every: int = 1
    schedule: str = "all"
    points: int = 100

    @property
    def keeps_all(self) -> bool:
        return self.schedule == "all" and self.every == 1

    def next_kept(self, k: int, max_iter: int) -> int:
        """The first kept iteration ``>= k`` (past ``max_iter`` for none)."""
        if self.schedule == "all":
            return -(-k // self.every) * self.every
        kept = log_iterations(max_iter, self.points)
        j = int(np.searchsorted(kept, k))
        return int(kept[j]) if j < len(kept) else max_iter + 1

    def kept(self, iterations: np.ndarray, max_iter: int) -> np.ndarray:
        """Whether each of ``iterations`` is kept by the schedule (the last row aside)."""
        iterations = np.asarray(iterations, dtype=np.int64)
        if self.schedule == "all":
            return iterations % self.every == 0
        return np.isin(iterations, log_iterations(max_iter, self.points))

    def rows(self, max_iter: int) -> int:
        """How many rows a trace of ``max_iter`` iterations keeps at most (the last row included)."""
        if self.schedule == "all":
            return max_iter // self.every + 1 + (max_iter % self.every != 0)
        return len(log_iterations(max_iter, self.points))  # max_iter among them


EVERY_ITERATION = Sampling()


@functools.lru_cache(maxsize=64)
def log_iterations(max_iter: int, points: int) -> np.ndarray:
    """0 and about ``points - 1`` distinct iterations log-spaced over ``[1, max_iter]``, ascending: the
    rounded ``geomspace(1, max_iter, n)`` with ``n`` grown until rounding leaves ``points - 1`` distinct
    ones (it merges the first ones), so that a trace of ``max_iter >= points - 1`` keeps about ``points``
    rows; every iteration when there are no more than ``points``."""
    if max_iter + 1 <= points:
        kept = np.arange(max_iter + 1, dtype=np.int64)
        kept.flags.writeable = False
        return kept
    want = points - 1
    n = want
    while True:
        kept = np.unique(np.rint(np.geomspace(1, max_iter, n)).astype(np.int64))
        if len(kept) >= want:
            break
        n += want - len(kept)
    kept = np.concatenate([[0], kept])
    kept.flags.writeable = False
    return kept


class TraceRecorder:
    """Rows appended one iterate at a time into preallocated, doubling arrays.

    Iterate k is written at row ``size``, which moves on only when ``sampling`` keeps k: an
    iterate it does not keep stays there until the next one overwrites it, so the last iterate
    is always there (``pending``).
    """

    def __init__(
        self,
        dim: int,
        *,
        coords: np.ndarray,
        capacity: int = 1024,
        sampling: Sampling = EVERY_ITERATION,
        max_iter: int = 0,
    ):
        self.coords = coords
        self.size = 0
        self.count = 0  # iterates appended so far: the next one's iteration number
        self.pending = False
        self.sampling, self.max_iter = sampling, max_iter
        self.next_kept = 0
        self._all_coords = len(coords) == dim
        capacity = max(int(capacity), 1)
        self.f = np.empty(capacity)
        self.grad_norm = np.empty(capacity)
        self.nfev = np.empty(capacity, dtype=np.int64)
        self.ngev = np.empty(capacity, dtype=np.int64)
        self.time_s = np.empty(capacity)
        self.x = np.empty((capacity, len(coords)))
        self.iteration = np.empty(capacity, dtype=np.int64)

    def append(self, f: float, grad_norm: float, x: np.ndarray, nfev: int, ngev: int, time_s: float) -> None:
        k = self.size
        if k == len(self.f):
            self.grow()
        self.iteration[k] = self.count
        self.f[k] = f
        self.grad_norm[k] = grad_norm
        self.nfev[k] = nfev
        self.ngev[k] = ngev
        self.time_s[k] = time_s
        if self._all_coords:
            self.x[k] = x
        elif len(self.coords):
            self.x[k] = x[self.coords]
        if self.count == self.next_kept:
            self.size, self.pending = k + 1, False
            self.next_kept = self.sampling.next_kept(self.count + 1, self.max_iter)
        else:
            self.pending = True
        self.count += 1

    def columns(self) -> tuple[np.ndarray, ...]:
        """The arrays rows are written into, for a loop that writes them in place (then it sets
        :attr:`size` to the rows written, the last one included, before :meth:`finish`)."""
        return self.f, self.grad_norm, self.nfev, self.ngev, self.time_s, self.x, self.iteration

    def grow(self) -> tuple[np.ndarray, ...]:
        """Double the capacity, keeping the rows so far; return the new :meth:`columns`."""
        for name in ("f", "grad_norm", "nfev", "ngev", "time_s", "x", "iteration"):
            old = getattr(self, name)
            new = np.empty((2 * len(old), *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        return self.columns()

    def finish(self) -> Trace:
        n = self.size + self.pending
        return Trace(
            iteration=self.iteration[:n].copy(),
            f=self.f[:n].copy(),
            grad_norm=self.grad_norm[:n].copy(),
            nfev=self.nfev[:n].copy(),
            ngev=self.ngev[:n].copy(),
            time_s=self.time_s[:n].copy(),
            x=self.x[:n].copy(),
            coords=self.coords,
        )


@dataclass(frozen=True, eq=False)
class Trace:
    """Row j is the iterate after ``iteration[j]`` updates (row 0 is x0); every iterate, or those
    a :class:`Sampling` keeps and the last.

    ``x[:, j]`` holds coordinate ``coords[j]``; counts are the evaluations the
    method had asked for when the row was recorded.
    """

    iteration: np.ndarray
    f: np.ndarray
    grad_norm: np.ndarray
    nfev: np.ndarray
    ngev: np.ndarray
    time_s: np.ndarray
    x: np.ndarray
    coords: np.ndarray

    @property
    def iterations(self) -> int:
        return int(self.iteration[-1]) if len(self.iteration) else -1


@dataclass(frozen=True, eq=False)
class RunResult:
    """How a run ended: one of :data:`STATUSES`, the rule that ended it (one of
    :data:`STOP_REASONS`), the final point and the counts.

    ``f`` and ``x`` are the last recorded iterate (for a diverged run, the
    first non-finite one). ``details`` holds method-specific extras, e.g.
    scipy's own ``nit``, ``status`` and ``success``.
    """

    status: str
    stop_reason: str
    message: str
    x: np.ndarray
    f: float
    iterations: int
    nfev: int
    ngev: int
    wall_time_s: float
    trace: Trace
    details: dict = field(default_factory=dict)


def summary_record(
    *,
    run_id: str,
    config_hash: str,
    config_id: str,
    objective: str,
    optimizer: str,
    status: str,
    stop_reason: str,
    message: str,
    error: str | None = None,
    traceback: str | None = None,
    f: float | None = None,
    f_star: float | None = None,
    iterations: int | None = None,
    nfev: int | None = None,
    ngev: int | None = None,
    wall_time_s: float | None = None,
    **extra,
) -> dict:
    """A run's summary (``summary.json``, and the runs-table row built from it), for a run alone and a
    batched one alike: its identity, how it ended, and, for a run that has a result (``iterations``
    given), f, ``f_gap = f - f_star`` and the counts; then ``extra`` (config, started_at, ...)."""
    record = {
        "run_id": run_id,
        "config_hash": config_hash,
        "config_id": config_id,
        "status": status,
        "stop_reason": stop_reason,
        "message": message,
        "error": error,
        "traceback": traceback,
        "objective": objective,
        "optimizer": optimizer,
    }
    if iterations is not None:
        record.update(
            f=f,
            f_star=f_star,
            f_gap=None if f_star is None else f - f_star,
            iterations=iterations,
            nfev=nfev,
            ngev=ngev,
            wall_time_s=wall_time_s,
        )
    return {**record, **extra}
