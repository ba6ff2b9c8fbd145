"""A sweep at array speed: the jobs that share an objective and an optimizer run as one computation.

Jobs that differ only in numeric optimizer hyperparameters (``lr``, ``optimizer.momentum``,
``optimizer.betas`` ...), in ``objective.x0``, in the stopping settings (``max_iter``, ``tol``,
``grad_tol``) or in the seed of their minibatches run together: x gets a leading batch
axis, x of shape (B, n), and each varying hyperparameter becomes an array of shape (B,),
which every optimizer factory takes (see :mod:`runner.optimizers`). Each config stops by
its own rule, :func:`runner.stopping.stop_reason`, the rule :func:`runner.loop.minimize`
applies; a stopped config is frozen (its x no longer moves and its trace ends there), not
dropped from the arrays.

Jobs are grouped by what cannot become an array: the objective's config except ``x0``
(other data, or synthetic data from another seed, is another objective), the optimizer's
factory and its non-numeric keys (flags, ``batch_size``), ``trace.x`` and the trace's sampling
(``trace.every``, ``trace.schedule``, ``trace.points``). A group runs in
chunks of at most ``chunk_size`` configs, fewer when their traces would pass
``max_chunk_bytes``, and each chunk's rows are written before the next chunk starts, as
``parts/<name>.runs.parquet`` (runs-table rows, :func:`runner.tables.run_record`) and
``parts/<name>.traces.parquet`` (trace rows with the columns of a job's ``trace.parquet``,
plus ``status`` and ``job``), the layout :func:`runner.tables.collect` reads.

What cannot be batched runs one job at a time through ``fallback``, by default
:func:`runner.run.run` into ``sweep_dir/<job>`` (the per-job layout): a scipy optimizer, a
config that does not build or validate (its failure is recorded exactly as a lone run
records it), and every config of a chunk whose objective raised. What can be batched is what its
optimizer says (``batchable``), never its type.

Each batched run equals the same config run alone: the same trace (bitwise, as long as the
objective and the optimizer compute each row of a batch as they compute a single x, which
:mod:`objectives` and :mod:`runner.optimizers` do), status, message, counts and the same
minibatches, drawn from the generator :func:`runner.run.run` seeds. Only the timing
columns differ: ``time_s`` and ``wall_time_s`` count from the start of the chunk.

This module is plain Python; the Hydra launcher (``hydra/launcher=batched``) composes the
jobs and calls :func:`run_jobs`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import numpy as np
import pyarrow as pa

from runner.columns import is_number, typed_array, utc_iso
from runner.config import build, build_optimizer, check_config, config_columns, config_ids, registry_name, run_rng
from runner.errors import ConfigError, check_count
from runner.loop import minibatch_sampler
from runner.optimizers import Optimizer
from runner.run import run
from runner.stopping import gradient_norm, stop_reason
from runner.store import (
    SUMMARY_FILE,
    TRACES_FILE,
    TracesJoin,
    chunk_files,
    drop_job_run,
    drop_runs,
    earlier_runs,
    finished_run,
    package_versions,
    write_part,
    write_summary,
)
from runner.tables import record_types, run_record, runs_table
from runner.theory import run_rates
from runner.trace import EVERY_ITERATION, Sampling, summary_record, traced_coordinates

CHUNK_SIZE = 1024
# Trace memory of one chunk: configs x rows kept (max_iter + 1 by default) x (coordinates + 6) float64 columns.
MAX_CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Job:
    """One job of a sweep.

    Attributes:
        config: its resolved config, a plain dict (as :func:`runner.config.plain` gives).
        name: its folder below the sweep dir in the per-job layout (Hydra's
            ``hydra.sweep.subdir``, e.g. ``lr=0.1/optimizer=momentum``); the ``job`` column.
        config_hash, config_id: as :func:`runner.config.config_ids` gives for the job's
            config; computed from ``config`` when not given. Pass them when the config
            had interpolations (``objective.seed: ${seed}``): ``config_id`` is computed
            from the unresolved config.
    """

    config: dict
    name: str
    config_hash: str | None = None
    config_id: str | None = None


@dataclass(frozen=True, eq=False)
class BatchResult:
    """How each of B configs ended, and the rows of their traces.

    The rows the sampling keeps are shared: row s of config b is iterate ``kept[s]``,
    ``f[s, b]``, ``grad_norm[s, b]``, ``x[s, b]`` (coordinates ``coords``) and ``time_s[s]``;
    it is part of b's trace when ``kept[s] < iterations[b]`` and ``in_schedule[s, b]`` (None:
    every config keeps every row). Each trace ends with its last row, iterate ``iterations[b]``:
    ``f_last[b]``, ``grad_norm_last[b]``, ``x_last[b]``, ``time_last[b]`` (:meth:`trace`).
    """

    statuses: list[str]
    stop_reasons: list[str]
    messages: list[str]
    iterations: np.ndarray
    kept: np.ndarray
    f: np.ndarray
    grad_norm: np.ndarray
    x: np.ndarray
    time_s: np.ndarray
    in_schedule: np.ndarray | None
    f_last: np.ndarray
    grad_norm_last: np.ndarray
    x_last: np.ndarray
    time_last: np.ndarray
    coords: np.ndarray
    x_final: np.ndarray
    wall_time_s: np.ndarray
    minibatch: bool
    interrupted: bool = False

    @property
    def f_final(self) -> np.ndarray:
        return self.f_last

    def rows_of(self) -> np.ndarray:
        """``(B, len(kept))``: which shared rows are part of each config's trace (its last row aside)."""
        rows = self.kept[None, :] < self.iterations[:, None]
        return rows if self.in_schedule is None else rows & self.in_schedule.T

    def trace(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Config b's trace: ``(iteration, f, grad_norm, x)``, one row per kept iterate."""
        if self.iterations[b] < 0:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros((0, len(self.coords)))
        s = np.flatnonzero(self.rows_of()[b])
        return (
            np.append(self.kept[s], self.iterations[b]),
            np.append(self.f[s, b], self.f_last[b]),
            np.append(self.grad_norm[s, b], self.grad_norm_last[b]),
            np.concatenate([self.x[s, b], self.x_last[b][None]]),
        )


class BatchSamplers:
    """:class:`runner.loop.EpochSampler` for B configs that draw in step.

    Config b draws from its own generator ``rngs[b]``: one permutation of the samples
    per epoch, handed out in consecutive slices of ``batch_size``, the incomplete tail
    dropped, exactly as its own EpochSampler would. As every config draws one batch per
    update, the epochs of all B start together; a config that stopped draws no more.
    """

    def __init__(self, n_samples: int, batch_size: int, rngs: Sequence[np.random.Generator]):
        self.n_samples, self.batch_size, self.rngs = n_samples, batch_size, list(rngs)
        self.batches_per_epoch = n_samples // batch_size
        self._order = np.zeros((len(self.rngs), n_samples), dtype=np.int64)
        self._next = self.batches_per_epoch

    def next(self, active: np.ndarray) -> np.ndarray:
        """The next minibatch of every config, shape (B, batch_size)."""
        if self._next == self.batches_per_epoch:
            for b in np.flatnonzero(active):
                self._order[b] = self.rngs[b].permutation(self.n_samples)
            self._next = 0
        start = self._next * self.batch_size
        self._next += 1
        return self._order[:, start : start + self.batch_size]


def minimize_batch(
    objective,
    optimizer: Optimizer,
    x0: np.ndarray,
    *,
    max_iter,
    tol=0.0,
    grad_tol=0.0,
    rngs: Sequence[np.random.Generator] | None = None,
    record_x: bool = True,
    sampling: Sampling = EVERY_ITERATION,
) -> BatchResult:
    """:func:`runner.loop.minimize` for B configs at once, from ``x0`` of shape (B, n).

    Each config's trace keeps the rows its lone run keeps with ``sampling`` (its schedule reads
    its own ``max_iter``), and only those are held: the rows any config's schedule keeps, in
    shared arrays, and each config's last row when it stops.

    ``optimizer`` holds the B configs' hyperparameters (arrays of shape (B,), or scalars
    they share); ``max_iter``, ``tol`` and ``grad_tol`` are per config (shape (B,)) or
    shared. ``rngs[b]`` draws config b's minibatches. Ctrl-C ends the configs still running
    with status ``interrupted`` and returns (``interrupted`` is then set).
    """
    x = np.array(x0, dtype=float)
    n_configs, dim = x.shape
    max_iter = np.broadcast_to(np.asarray(max_iter, dtype=np.int64), (n_configs,))
    tol = np.broadcast_to(np.asarray(tol, dtype=float), (n_configs,))
    grad_tol = np.broadcast_to(np.asarray(grad_tol, dtype=float), (n_configs,))
    samplers = None
    if optimizer.batch_size is not None:
        if rngs is None or len(rngs) != n_configs:
            raise ValueError(f"minibatch optimizer {optimizer.name}: expected one generator per config ({n_configs})")
        minibatch_sampler(objective, optimizer, rngs[0])  # the lone run's checks: samples, batch size
        samplers = BatchSamplers(objective.n_samples, optimizer.batch_size, rngs)
    coords = traced_coordinates(dim, record_x)
    all_coords = len(coords) == dim
    limits = [int(m) for m in np.unique(max_iter)]
    capacity = max(1, min(max(sampling.rows(m) for m in limits), 1024))
    F = np.empty((capacity, n_configs))
    GN = np.empty((capacity, n_configs))
    X = np.empty((capacity, n_configs, len(coords)))
    T = np.empty(capacity)
    K = np.empty(capacity, dtype=np.int64)
    FL, GL, TL = np.full(n_configs, math.nan), np.full(n_configs, math.nan), np.full(n_configs, math.nan)
    XL = np.full((n_configs, len(coords)), math.nan)
    row, next_kept = 0, 0
    current = None  # the latest iterate's (k, f, gnorm, x, time): the last row of a config Ctrl-C ends

    value_and_grad, minibatch, update = objective.value_and_grad, objective.minibatch_value_and_grad, optimizer.update
    active = np.ones(n_configs, dtype=bool)
    last = np.full(n_configs, -1, dtype=np.int64)
    wall = np.zeros(n_configs)
    statuses, reasons, messages = [""] * n_configs, [""] * n_configs, [""] * n_configs
    use_grad_tol = grad_tol > 0
    f_prev = np.full(n_configs, math.nan)
    rows = k = 0
    interrupted = False
    start = perf_counter()
    try:
        state = optimizer.init(x)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while True:
                f, g = value_and_grad(x)
                if np.shape(f) != (n_configs,) or np.shape(g) != x.shape:
                    raise ValueError(
                        f"objective {objective.name}: value_and_grad of x {x.shape} gave f "
                        f"{np.shape(f)}, gradient {np.shape(g)}; expected {(n_configs,)}, {x.shape}"
                    )
                gnorm = gradient_norm(objective, x, g)
                now = perf_counter() - start
                if k == next_kept:
                    if row == capacity:
                        F, GN, X, T, K = (_grown(a) for a in (F, GN, X, T, K))
                        capacity = len(T)
                    F[row], GN[row], T[row], K[row] = f, gnorm, now, k
                    X[row] = x if all_coords else x[:, coords]
                    row += 1
                    next_kept = min(sampling.next_kept(k + 1, m) for m in limits)
                current = (k, f, gnorm, x, now)
                rows = k + 1

                # The rules of runner.stopping.stop_reason, as masks: every config that may stop here.
                maybe = ~np.isfinite(f + gnorm) | (k >= max_iter) | (use_grad_tol & (gnorm <= grad_tol))
                if k > 0:
                    maybe |= np.abs(f - f_prev) < tol
                maybe &= active
                if maybe.any():
                    stopped = []
                    for b in np.flatnonzero(maybe):
                        stop = stop_reason(
                            k,
                            float(f[b]),
                            float(f_prev[b]),
                            float(gnorm[b]),
                            tol=float(tol[b]),
                            grad_tol=float(grad_tol[b]),
                            max_iter=int(max_iter[b]),
                        )
                        if stop is not None:
                            statuses[b], reasons[b], messages[b] = stop
                            active[b], last[b], wall[b] = False, k, now
                            stopped.append(b)
                    _last_rows((FL, GL, XL, TL), stopped, current, coords if not all_coords else None)
                    if not active.any():
                        break

                if samplers is not None:
                    g = minibatch(x, samplers.next(active))[1]
                    if np.shape(g) != x.shape:
                        raise ValueError(f"objective {objective.name}: minibatch gradient {np.shape(g)}, x {x.shape}")
                new_x, state = update(g, state, x)
                if objective.has_bounds:
                    new_x = objective.project(new_x)
                x = np.where(active[:, None], new_x, x)  # stopped configs stay where they stopped
                f_prev = f
                k += 1
    except KeyboardInterrupt:
        interrupted = True
        running = np.flatnonzero(active)
        for b in running:
            statuses[b], reasons[b] = "interrupted", "interrupted"
            messages[b] = f"interrupted after iteration {rows - 1}"
            last[b], wall[b] = rows - 1, perf_counter() - start
        if current is not None and current[0] == rows - 1:
            _last_rows((FL, GL, XL, TL), running, current, coords if not all_coords else None)
    in_schedule = None
    if sampling.schedule != "all" and len(limits) > 1:  # each config keeps the rows of its own max_iter
        in_schedule = np.empty((row, n_configs), dtype=bool)
        for m in limits:
            in_schedule[:, max_iter == m] = sampling.kept(K[:row], m)[:, None]
    return BatchResult(
        statuses=statuses,
        stop_reasons=reasons,
        messages=messages,
        iterations=last,
        kept=K[:row],
        f=F[:row],
        grad_norm=GN[:row],
        x=X[:row],
        time_s=T[:row],
        in_schedule=in_schedule,
        f_last=FL,
        grad_norm_last=GL,
        x_last=XL,
        time_last=TL,
        coords=coords,
        x_final=x,
        wall_time_s=wall,
        minibatch=samplers is not None,
        interrupted=interrupted,
    )


def _last_rows(arrays: tuple, configs, current: tuple, coords: np.ndarray | None) -> None:
    """Write the ``current`` iterate's row of each of ``configs`` into the last-row ``arrays``."""
    if len(configs) == 0:
        return
    FL, GL, XL, TL = arrays
    _, f, gnorm, x, now = current
    configs = np.asarray(configs)
    FL[configs], GL[configs], TL[configs] = f[configs], gnorm[configs], now
    XL[configs] = x[configs] if coords is None else x[configs][:, coords]


def _grown(a: np.ndarray) -> np.ndarray:
    new = np.empty((2 * len(a), *a.shape[1:]), dtype=a.dtype)
    new[: len(a)] = a
    return new


# ----------------------------------------------------------------------------- grouping


def _numeric(value) -> bool:
    """A hyperparameter that may become an array: a number, or a list of numbers (betas)."""
    return is_number(value) or (isinstance(value, list) and bool(value) and all(map(is_number, value)))


def group_key(cfg: dict, record_x: bool, sampling: Sampling = EVERY_ITERATION) -> str:
    """What the jobs of one batch share: all but numeric optimizer hyperparameters, x0 and the
    top-level run settings (lr, max_iter, tol, grad_tol, seed)."""
    objective = dict(cfg["objective"])
    x0 = objective.pop("x0", None)
    objective["x0"] = ["<list>", len(x0)] if isinstance(x0, list) else ["<value>", x0 is None]
    optimizer = {
        k: (["<number>", len(v) if isinstance(v, list) else 0] if _numeric(v) else v)
        for k, v in cfg["optimizer"].items()
    }
    sampled = [sampling.every, sampling.schedule, sampling.points]
    return json.dumps([objective, optimizer, record_x, sampled], sort_keys=True, default=str)


@dataclass
class _Group:
    """Jobs that run as one batch, with the objective they share."""

    indices: list[int]
    objective: object
    x0: list[np.ndarray]
    settings: list[dict]
    optimizer: Optimizer


def _batched_node(nodes: list[dict]) -> dict:
    """One optimizer node for many configs: a key whose value varies becomes an array."""
    node = dict(nodes[0])
    for key, value in nodes[0].items():
        if not _numeric(value):
            continue
        values = [n[key] for n in nodes]
        if isinstance(value, list):
            columns = list(zip(*values, strict=False))
            node[key] = [np.array(c) if len(set(c)) > 1 else c[0] for c in columns]
        elif len(set(values)) > 1:
            node[key] = np.array(values)
    return node


def _batched_optimizer(cfgs: list[dict]) -> Optimizer:
    return build_optimizer({"optimizer": _batched_node([c["optimizer"] for c in cfgs]), "lr": cfgs[0].get("lr")})


def _plan(jobs: Sequence[Job], todo: Sequence[int]) -> tuple[list[_Group], list[int]]:
    """Split jobs ``todo`` into batches and the jobs that run one by one."""
    objectives: dict[str, object] = {}
    groups: dict[str, list[tuple[int, dict]]] = {}
    alone: list[int] = []
    for i in todo:
        cfg = jobs[i].config
        try:
            settings = check_config(cfg)  # every check a lone run makes before any work
            objective = _cached_objective(objectives, cfg["objective"])
            key = group_key(cfg, settings["record_x"], settings["sampling"])
        except Exception:  # its lone run records the failure
            alone.append(i)
            continue
        groups.setdefault(key, []).append((i, {"settings": settings, "objective": objective}))

    batches: list[_Group] = []
    for members in groups.values():
        optimizer = _batched_optimizer_or_none(jobs, members)
        parts = [(members, optimizer)] if optimizer is not None else _buildable(jobs, _valid(jobs, members, alone))
        for part, optimizer in parts:
            if not getattr(optimizer, "batchable", False):  # scipy (its own driver), or no batch of these builds
                alone.extend(i for i, _ in part)
                continue
            first = part[0][1]["objective"]
            group = _Group(
                indices=[i for i, _ in part],
                objective=first,
                x0=[m["objective"].x0 for _, m in part],
                settings=[m["settings"] for _, m in part],
                optimizer=optimizer,
            )
            if optimizer.batch_size is not None:
                try:
                    minibatch_sampler(first, optimizer, np.random.default_rng(0))
                except ConfigError:
                    alone.extend(group.indices)
                    continue
            batches.append(group)
    return batches, sorted(alone)


def _batched_optimizer_or_none(jobs: Sequence[Job], members: list):
    """The members' optimizer with arrays for the values that vary, or None when it does not build."""
    try:
        return _batched_optimizer([jobs[i].config for i, _ in members])
    except Exception:
        return None


def _valid(jobs: Sequence[Job], members: list, alone: list[int]) -> list:
    """The members whose optimizer builds, as their lone runs would build it; the others go to ``alone``.

    Called when the members' optimizer does not build with arrays: each config is built on
    its own, to find the ones that fail.
    """
    valid = []
    for member in members:
        try:
            build_optimizer(jobs[member[0]].config)
            valid.append(member)
        except Exception:
            alone.append(member[0])
    return valid


def _buildable(jobs: Sequence[Job], members: list) -> list[tuple[list, object]]:
    """The members split so that each part's optimizer builds with arrays: ``[(part, optimizer)]``,
    the optimizer None for a part of one whose optimizer does not build.

    A key that varies as a count (``batch_size``) cannot be an array: split by the
    integer-valued keys, and past that run each config as a batch of one.
    """
    optimizer = _batched_optimizer_or_none(jobs, members) if members else None
    if optimizer is not None or len(members) <= 1:
        return [(members, optimizer)] if members else []
    nodes = [jobs[i].config["optimizer"] for i, _ in members]
    counts = [k for k, v in nodes[0].items() if is_number(v) and all(isinstance(n[k], int) for n in nodes)]
    parts: dict[str, list] = {}
    for member, node in zip(members, nodes, strict=False):
        parts.setdefault(json.dumps([node[k] for k in counts]), []).append(member)
    if len(parts) == 1:
        return [p for member in members for p in _buildable(jobs, [member])]
    return [p for part in parts.values() for p in _buildable(jobs, part)]


def _cached_objective(cache: dict, node: dict):
    key = json.dumps(node, sort_keys=True, default=str)
    if key not in cache:
        try:
            cache[key] = build(node, "objective")
        except Exception as err:
            cache[key] = err
    if isinstance(cache[key], Exception):
        raise cache[key]
    return cache[key]


# ----------------------------------------------------------------------------- tables


@dataclass
class _PieceRows:
    """A batch's trace rows, and what its runs-table rows take from them: each run's id and row count."""

    jobs: Sequence[Job]
    ids: list[tuple[str, str]]
    group: _Group
    result: BatchResult
    started: float
    run_ids: list[str]
    counts: np.ndarray  # each run's trace rows, its last row included
    config_cols: list[dict]
    types: dict
    traces: pa.Table


def _piece_traces(
    jobs: Sequence[Job], ids: list[tuple[str, str]], group: _Group, result: BatchResult, started: float
) -> _PieceRows:
    """A batch's trace rows, runs in order and each run's rows in order (:func:`_piece_runs` makes its runs rows)."""
    n = len(jobs)
    run_ids = [uuid.uuid4().hex[:12] for _ in range(n)]
    f_star = group.objective.f_star
    config_cols = [config_columns(job.config) for job in jobs]
    rows = len(result.kept)
    kept = result.rows_of()
    has_rows = result.iterations >= 0
    # Trace rows, run-major: run b's shared rows (those its trace keeps), then its last row.
    shared_rows = kept.sum(axis=1)
    counts = shared_rows + has_rows
    # The common case: every run keeps the same first m shared rows (all but the row of the last
    # iterate, which its last row repeats), then its last row.
    m = int(shared_rows[0]) if n else 0
    prefix = bool(has_rows.all() and (shared_rows == m).all() and kept[:, :m].all())
    if not prefix:
        ends = np.cumsum(counts)[has_rows] - 1  # where each run's last row goes
        owner_of_shared, slot = np.nonzero(kept)
        shared = np.ones(int(counts.sum()), dtype=bool)
        shared[ends] = False

    def column(matrix: np.ndarray, last: np.ndarray, kept_values: np.ndarray | None = None) -> np.ndarray:
        """``matrix[s, b]`` (shared row s of run b) and ``last[b]`` laid out in trace rows; ``kept_values``:
        the shared rows' values in trace order, where the caller has gathered them already."""
        if prefix:  # a transposed copy, three times faster than gathering the rows by index
            out = np.empty((n, m + 1), dtype=matrix.dtype)
            out[:, :m] = matrix[:m].T
            out[:, m] = last
            return out.reshape(-1)
        out = np.empty(len(shared), dtype=matrix.dtype)
        out[shared] = matrix[slot, owner_of_shared] if kept_values is None else kept_values
        out[ends] = last[has_rows]
        return out

    def per_row(values: np.ndarray) -> np.ndarray:  # one value per shared row, alike for every run
        return np.broadcast_to(values[:, None], (rows, n))

    iteration = column(per_row(result.kept), result.iterations)
    nfev = iteration + 1
    columns = {
        "iteration": iteration,
        "f": column(result.f, result.f_last),
        "grad_norm": column(result.grad_norm, result.grad_norm_last),
    }
    # Off the common case, the kept iterates' coordinates are gathered once, whole rows at a time.
    x_kept = None if prefix else result.x.reshape(rows * n, -1)[slot * n + owner_of_shared]
    for j, i in enumerate(result.coords):
        columns[f"x_{i}"] = column(result.x[:, :, j], result.x_last[:, j], None if prefix else x_kept[:, j])
    columns["time_s"] = column(per_row(result.time_s), result.time_last)
    columns["nfev"] = nfev
    columns["ngev"] = iteration if result.minibatch else nfev
    arrays = {name: pa.array(values) for name, values in columns.items()}
    # The jobs of a batch share an objective and an optimizer factory, so their config's types.
    types = record_types(jobs[0].config)
    constants = [
        {"run_id": run_id, "config_id": config_id, "f_star": f_star, **cols}
        for run_id, (_, config_id), cols in zip(run_ids, ids, config_cols, strict=False)
    ]
    names = list(dict.fromkeys(name for row in constants for name in row))
    spread: dict = {}  # columns with the same runs-to-values pattern share their row indices
    for name in names:
        values = [row.get(name) for row in constants]
        arrays[name] = _repeat(typed_array(values, types.get(name), coerced=name in types), counts, spread)
    arrays["status"] = _repeat(pa.array(result.statuses, type=pa.string()), counts, spread)
    arrays["job"] = _repeat(pa.array([job.name for job in jobs], type=pa.string()), counts, spread)
    return _PieceRows(jobs, ids, group, result, started, run_ids, counts, config_cols, types, pa.table(arrays))


def _piece_runs(piece: _PieceRows) -> pa.Table:
    """A batch's runs-table rows, one per run, in order."""
    result, group = piece.result, piece.group
    started_at = utc_iso(piece.started)
    f_final = result.f_final
    kept = result.rows_of()
    has_rows = result.iterations >= 0
    # The rates fit each run's trace as written, its last row included, as a lone run's does.
    with_last = np.vstack([result.f, result.f_last[None, :]])
    iterations = np.vstack(
        [np.broadcast_to(result.kept[:, None].astype(float), result.f.shape), result.iterations[None, :]]
    )
    present = np.vstack([kept.T, has_rows[None, :]])
    rate_theory, rate_measured = run_rates(
        group.objective, group.optimizer, with_last, iterations=iterations, present=present
    )
    records = []
    for b, (job, (config_hash, config_id)) in enumerate(zip(piece.jobs, piece.ids, strict=False)):
        iterations = int(result.iterations[b])
        summary = summary_record(
            run_id=piece.run_ids[b],
            config_hash=config_hash,
            config_id=config_id,
            objective=registry_name(job.config["objective"]),
            optimizer=registry_name(job.config["optimizer"]),
            status=result.statuses[b],
            stop_reason=result.stop_reasons[b],
            message=result.messages[b],
            f=float(f_final[b]),
            f_star=group.objective.f_star,
            iterations=iterations,
            nfev=iterations + 1,
            ngev=iterations if result.minibatch else iterations + 1,
            wall_time_s=float(result.wall_time_s[b]),
            started_at=started_at,
            config=job.config,
            rate_theory=rate_theory[b],
            rate_measured=rate_measured[b],
        )
        summary["trace_rows"] = int(piece.counts[b])
        records.append(run_record(summary, job.name, piece.config_cols[b]))
    return runs_table(records, piece.types, coerced=True)


def _repeat(values: pa.Array, counts: np.ndarray, spread: dict | None = None) -> pa.Array:
    """Each run's constant over its trace rows: ``values[b]`` repeated ``counts[b]`` times, runs in order.

    Dictionary-encoded, the runs' distinct values indexed over the rows: the repeated column is never built.
    Parquet stores such a column dictionary-encoded, and the file is written without its
    Arrow schema (:func:`runner.store.write_part`), so it reads back in the plain type (string, double,
    int64, bool), as a job's trace.parquet does. Every chunk encodes a column alike, so that
    chunks concatenate: a null is a null index, never a null in the dictionary; a float is told
    apart by its bits (-0.0 is not 0.0). Parquet has no dictionary of lists, so a list column
    (betas, x0) is repeated. All of it in numpy on the chunk's few runs: Arrow's dictionary_encode
    and take would import pyarrow.compute (0.1 s) into every sweep. ``spread``: the row indices
    already built for these ``counts``, by the runs' indices into their values; most columns of a
    chunk follow one of a few patterns (one value for all, or one per run), so each is built once.
    """
    python = values.to_pylist()
    if pa.types.is_list(values.type):
        return _repeat_lists(python, values.type, counts)
    codes, distinct = {}, []
    index = np.empty(len(python), dtype=np.int32)
    for i, value in enumerate(python):
        if value is None:
            index[i] = -1
            continue
        key = (float, struct.pack("<d", value)) if isinstance(value, float) else (type(value), value)
        if key not in codes:
            codes[key] = len(distinct)
            distinct.append(value)
        index[i] = codes[key]
    spread = {} if spread is None else spread
    pattern = index.tobytes()
    if pattern not in spread:
        rows = np.repeat(index, counts)
        missing = np.repeat(index < 0, counts) if len(distinct) < len(python) else None  # distinct: no null
        spread[pattern] = pa.array(
            rows, type=pa.int32(), mask=missing if missing is not None and missing.any() else None
        )
    return pa.DictionaryArray.from_arrays(spread[pattern], pa.array(distinct, type=values.type))


def _repeat_lists(python: list, type_: pa.ListType, counts: np.ndarray) -> pa.Array:
    """A list column's value of each run over its rows; a null list stays null. Built from its buffers:
    ListArray.from_arrays would import pyarrow.compute."""
    dtype = type_.value_type.to_pandas_dtype()
    lengths = np.array([0 if v is None else len(v) for v in python], dtype=np.int64)
    row_lengths = np.repeat(lengths, counts)
    offsets = np.zeros(len(row_lengths) + 1, dtype=np.int32)
    np.cumsum(row_lengths, out=offsets[1:])
    if lengths.any() and (lengths == lengths[0]).all():  # every run's list as long (x0, betas): rows of a matrix
        flat = np.repeat(np.array(python, dtype=dtype), counts, axis=0).reshape(-1)
    else:
        pieces = [np.tile(np.asarray(v or [], dtype=dtype), c) for v, c in zip(python, counts, strict=True)]
        flat = np.concatenate([np.empty(0, dtype=dtype), *pieces])
    missing = np.repeat(np.array([v is None for v in python], dtype=bool), counts)
    validity = pa.array(~missing).buffers()[1] if missing.any() else None
    return pa.Array.from_buffers(
        type_,
        len(row_lengths),
        [validity, pa.array(offsets).buffers()[1]],
        null_count=int(missing.sum()),
        children=[pa.array(flat, type=type_.value_type)],
    )


# ----------------------------------------------------------------------------- the sweep


def _chunk_size(group: _Group, chunk_size: int, max_chunk_bytes: int) -> int:
    """Configs per chunk of ``group``: ``chunk_size`` at most, fewer when their traces would pass max_chunk_bytes."""
    width = len(traced_coordinates(group.objective.dim, group.settings[0]["record_x"])) + 6
    longest = max(s["sampling"].rows(s["max_iter"]) for s in group.settings)
    return max(1, min(chunk_size, max_chunk_bytes // (8 * width * longest)))


def _run_alone(sweep_dir: Path):
    """The default fallback: job i runs by itself into its own folder, ``sweep_dir/<job.name>``."""

    def fallback(i: int, job: Job) -> dict:
        return run(job.config, sweep_dir / job.name)

    return fallback


def _say_rerun(sweep_dir: Path):
    """The line of a chunk file that resume found damaged: its runs run again."""

    def say(path: Path, what: str) -> None:
        print(f"rerun: {path.relative_to(sweep_dir).as_posix()} {what}", file=sys.stderr, flush=True)

    return say


def _job_ids(jobs: Sequence[Job]) -> list[tuple[str, str]]:
    """Each job's (config_hash, config_id): the launcher's, or computed from its config."""
    return [(job.config_hash, job.config_id) if job.config_id else config_ids(job.config, job.config) for job in jobs]


def plan_jobs(jobs: Sequence[Job], sweep_dir: str | Path, *, resume: bool = True) -> list[str]:
    """How :func:`run_jobs` would run each job, with nothing run and nothing written (a dry run):
    ``"done"`` (a finished run that resume keeps, in a chunk file or, for a job that runs alone,
    its folder), ``"batched"`` or ``"alone"`` (through ``fallback``), by the rules it runs them by."""
    sweep_dir = Path(sweep_dir)
    ids = _job_ids(jobs)
    finished = earlier_runs(sweep_dir, repair=False)[0] if resume else {}
    plan = ["done" if (job.name, ids[i][0]) in finished else "" for i, job in enumerate(jobs)]
    groups, alone = _plan(jobs, [i for i, p in enumerate(plan) if not p])
    for group in groups:
        for i in group.indices:
            plan[i] = "batched"
    for i in alone:
        plan[i] = "alone"
    # A finished run of the same config in a job's folder is kept: by the fallback's run() for a
    # job that runs alone, by _not_in_folders for a batched one (a chunk that failed on an engine).
    for i, how in enumerate(plan):
        if resume and how != "done" and finished_run(sweep_dir / jobs[i].name, ids[i][0])[0] is not None:
            plan[i] = "done"
    return plan


def run_jobs(
    jobs: Sequence[Job],
    sweep_dir: str | Path,
    *,
    chunk_size: int = CHUNK_SIZE,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    fallback: Callable[[int, Job], object] | None = None,
    part_prefix: str = "batch",
    resume: bool = True,
    progress: Callable[..., None] | None = None,
    engine: Callable | None = None,
    workers: int = 1,
    threads: int = 1,
) -> list:
    """Run every job of a sweep: batched where they share an objective and an optimizer, alone otherwise.

    Writes ``sweep_dir/parts/<part_prefix>-<launch>-<k>.{runs,traces}.parquet`` for the
    batched jobs, ``<launch>`` new for every call, so that nothing an earlier launch wrote
    is overwritten; ``fallback(i, job)`` runs job i alone (default: :func:`runner.run.run`
    into ``sweep_dir/<job.name>``). Returns one entry per job, in order: for a batched job
    ``{"status", "message", "f", "job", "batched": True}``, for the others what
    ``fallback`` returned. Ctrl-C writes the chunk in progress (its running configs
    ``interrupted``) and raises KeyboardInterrupt.

    ``engine(run_chunk, chunks)`` runs the chunks (:class:`Chunk`, each one part's pair of files)
    and yields ``(k, what run_chunk(chunks[k]) returned, or the exception it raised)`` as they end;
    by default one after another in this process, where an exception propagates. The chunks are
    planned here, the same for every engine, and each writes its own files, so that the tables
    are the same whatever ran them. A chunk an engine could not run (its worker died, its job
    timed out) records each of its runs as failed, in the job's folder as a failed lone run would
    (:func:`record_failed`); a resume runs them again. ``workers`` is how many chunks the engine runs
    at once: each group is cut into a multiple of it, evenly (:func:`plan_chunks`); ``threads``, how
    many threads each chunk may write its traces file with (:func:`runner.store.write_chunk_traces`).

    With ``resume``, as a sweep run again into its folder: a job that an earlier launch
    finished (same folder name, same config hash) is not run again (its entry has
    ``"skipped": True``); one it left interrupted, or ran with another config, is taken out
    of its chunk files (or its folder) and run again. The chunk files are read first, and a damaged one's runs
    run again, with a line naming it (:func:`runner.store.repair_parts`). Two calls into one
    folder at once are not guarded here: the launcher holds the folder's lock around its call.

    ``progress(statuses, iterations, chunk, chunks, budget)`` is called after each chunk: its
    configs' statuses, the iterations they ran, the chunk's number out of ``chunks``, and the
    most iterations all batched configs may run (the sum of their max_iter); first with chunk 0
    for the jobs an earlier launch finished, if any (:meth:`runner.progress.SweepProgress.chunk_ended`).
    """
    check_count(chunk_size, "chunk_size")
    sweep_dir = Path(sweep_dir)
    if fallback is None:
        fallback = _run_alone(sweep_dir)
    outcomes: list = [None] * len(jobs)
    ids = _job_ids(jobs)
    finished, earlier_jobs = earlier_runs(sweep_dir, _say_rerun(sweep_dir)) if resume else ({}, set())
    todo = []
    for i, job in enumerate(jobs):
        if (earlier := finished.get((job.name, ids[i][0]))) is not None:
            outcomes[i] = {**earlier, "job": job.name, "batched": True, "skipped": True}
        else:
            todo.append(i)
    drop_runs(sweep_dir, {jobs[i].name for i in todo} & earlier_jobs)
    groups, alone = _plan(jobs, todo)
    if resume:
        for group in groups:  # a job folder's run (a chunk that failed on an engine) is replaced by the batch's
            group.indices, group.x0, group.settings = _not_in_folders(sweep_dir, jobs, ids, group, outcomes)
        groups = [group for group in groups if group.indices]
    if progress is not None and any(outcome is not None for outcome in outcomes):  # finished by an earlier launch
        progress([outcome["status"] for outcome in outcomes if outcome is not None], 0, 0, 0, 0)
    budget = sum(s["max_iter"] for group in groups for s in group.settings)
    launch = f"{time.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:6]}"
    chunks = plan_chunks(
        jobs,
        ids,
        groups,
        str(sweep_dir),
        f"{part_prefix}-{launch}",
        chunk_size=chunk_size,
        max_chunk_bytes=max_chunk_bytes,
        workers=workers,
        threads=threads,
    )
    # A new sweep's traces.parquet is joined from its chunk files as they end, while the others still run.
    joining = TracesJoin(sweep_dir) if chunks and not chunk_files(sweep_dir, TRACES_FILE) else None
    ended = (engine or in_process)(run_chunk, chunks)
    try:
        try:
            for count, (k, done) in enumerate(ended, start=1):
                if isinstance(done, BaseException):  # the chunk never ran to its end: each of its runs failed
                    failed = record_failed(sweep_dir, chunks[k], done)
                    outcomes_of_chunk, iterations = failed, 0
                    if joining is not None:
                        joining.give_up()
                else:
                    outcomes_of_chunk, iterations = done.outcomes, done.iterations
                    alone.extend(done.alone)
                    if joining is not None:
                        joining.ended(k, chunks[k].name)
                for i, outcome in outcomes_of_chunk.items():
                    outcomes[i] = outcome
                if progress is not None:
                    statuses = [outcome["status"] for outcome in outcomes_of_chunk.values()]
                    progress(statuses, iterations, count, len(chunks), budget)
                if not isinstance(done, BaseException) and done.interrupted:
                    raise KeyboardInterrupt
        finally:  # stopped early (Ctrl-C): the engine stops what it still runs
            getattr(ended, "close", lambda: None)()
        for i in sorted(alone):
            outcomes[i] = fallback(i, jobs[i])
        if joining is not None:
            joining.finish()
    except BaseException:
        if joining is not None:
            joining.give_up()
        raise
    return outcomes


def _not_in_folders(sweep_dir: Path, jobs: Sequence[Job], ids: Sequence, group: _Group, outcomes: list) -> tuple:
    """The group's members, less those whose job folder holds a finished run of their config (their
    outcome is that run's, skipped); any other run in a member's folder is taken out, for the batch's
    to replace it. Only the members' folders are looked at: one listing of the sweep folder, and one
    ``stat`` for each job whose first folder is there."""
    keep = []
    # A job's folder is below its first path part: one listing rules out every job of a new sweep at once.
    entries = set(os.listdir(sweep_dir)) if sweep_dir.is_dir() else set()
    for b, i in enumerate(group.indices):
        name = jobs[i].name
        head = name.partition("/")[0]
        if (head and head not in entries) or not (sweep_dir / name / SUMMARY_FILE).is_file():
            keep.append(b)
            continue
        folder = sweep_dir / name
        summary, _ = finished_run(folder, ids[i][0])
        if summary is not None:
            outcomes[i] = {**summary, "job": jobs[i].name, "skipped": True}
            continue
        drop_job_run(folder)
        keep.append(b)
    return [group.indices[b] for b in keep], [group.x0[b] for b in keep], [group.settings[b] for b in keep]


def in_process(work: Callable, chunks: Sequence) -> Iterator[tuple[int, object]]:
    """The default engine: each chunk in turn, in this process; an exception propagates."""
    for k, chunk in enumerate(chunks):
        yield k, work(chunk)


@dataclass(frozen=True)
class Piece:
    """Jobs of one group that run as one batch: ``indices`` into the sweep's jobs, their jobs, ids, x0 and settings."""

    indices: list[int]
    jobs: list[Job]
    ids: list[tuple[str, str]]
    x0: np.ndarray
    settings: list[dict]


@dataclass(frozen=True)
class Chunk:
    """One pair of chunk files, ``parts/<name>.{runs,traces}.parquet`` of ``sweep_dir``, and the batches
    whose rows they hold: all that a worker needs (plain data: it pickles small, and builds the
    objective and the optimizer from the configs as the planner did)."""

    sweep_dir: str
    name: str
    pieces: list[Piece]
    threads: int = 1  # the threads that may write its traces file: the cores the engine leaves each chunk


@dataclass(frozen=True)
class ChunkDone:
    """What a chunk's worker sends back, small whatever the traces: each run's outcome (status,
    message, f) by job index, the jobs to run alone (their batch raised), and whether Ctrl-C ended it."""

    outcomes: dict[int, dict]
    alone: list[int]
    interrupted: bool = False
    iterations: int = 0  # the iterations its batches ran (the sweep's progress)


def plan_chunks(
    jobs: Sequence[Job],
    ids: Sequence,
    groups: Sequence[_Group],
    sweep_dir: str,
    prefix: str,
    *,
    chunk_size: int,
    max_chunk_bytes: int,
    workers: int = 1,
    threads: int = 1,
) -> list[Chunk]:
    """The groups cut into batches of at most ``chunk_size`` configs (fewer when their traces would pass
    ``max_chunk_bytes``), and the batches into chunk files ``<prefix>-<k>``: consecutive small batches
    share a file up to the size of the batch that joins them. Each group keeps its order.

    A group's batches are even (sizes differ by one at most), and there are a multiple of ``workers`` of
    them (the chunks an engine runs at once) while each keeps a config: 1,000 configs on 2 workers are
    two batches of 500, not one that leaves a worker idle; 10,000 of at most 599 are 18 of 555 or 556,
    not 16 and a tail of 416 that runs alone at the end. The results do not depend on the cut: each
    config's arithmetic is its own row's. ``threads``: how many threads each chunk may write with."""
    chunks: list[Chunk] = []
    pieces: list[Piece] = []
    pending = 0

    def close():
        nonlocal pending
        if pieces:
            chunks.append(Chunk(sweep_dir, f"{prefix}-{len(chunks):04d}", list(pieces), threads))
            pieces.clear()
            pending = 0

    for group in groups:
        size = _chunk_size(group, chunk_size, max_chunk_bytes)
        bounds = _even_cuts(len(group.indices), size, workers)
        cut = len(bounds) > 2  # a group cut in batches: each is a chunk of its own
        for lo, hi in itertools.pairwise(bounds):
            indices = group.indices[lo:hi]
            if cut or pending + len(indices) > size:
                close()
            piece = Piece(
                indices=indices,
                jobs=[jobs[i] for i in indices],
                ids=[ids[i] for i in indices],
                x0=np.stack(group.x0[lo:hi]),
                settings=group.settings[lo:hi],
            )
            pieces.append(piece)
            pending += len(indices)
            if cut or pending >= size:
                close()
    close()
    return chunks


def _even_cuts(n: int, size: int, workers: int) -> list[int]:
    """Where ``n`` configs are cut into batches of at most ``size``: the fewest batches, rounded up to a
    multiple of ``workers`` (but not past ``n``), each as large as the others or one smaller; the
    ``k + 1`` bounds ``[0, ..., n]``."""
    count = max(1, -(-n // size))
    count = min(max(n, 1), -(-count // workers) * workers)
    return [n * k // count for k in range(count + 1)]


def run_chunk(chunk: Chunk) -> ChunkDone:
    """Run a chunk's batches and write its files; the runs of a batch that raises are left to run alone.

    What an engine's worker calls, and the one process alike. Ctrl-C ends the batch in progress
    (its running configs ``interrupted``) and writes the chunk's files with it.
    """
    sweep_dir = Path(chunk.sweep_dir)
    built: list[_PieceRows] = []
    outcomes: dict[int, dict] = {}
    alone: list[int] = []
    interrupted = False
    iterations = 0
    objectives: dict[str, object] = {}  # the batches of a chunk that share an objective build it once
    for piece in chunk.pieces:
        configs = [job.config for job in piece.jobs]
        settings = piece.settings
        started = time.time()
        try:
            objective = _cached_objective(objectives, configs[0]["objective"])
            optimizer = _batched_optimizer(configs)
            result = minimize_batch(
                objective,
                optimizer,
                piece.x0,
                max_iter=[s["max_iter"] for s in settings],
                tol=[s["tol"] for s in settings],
                grad_tol=[s["grad_tol"] for s in settings],
                rngs=[run_rng(s["seed"]) for s in settings] if optimizer.batch_size is not None else None,
                record_x=settings[0]["record_x"],
                sampling=settings[0]["sampling"],
            )
            group = _Group(piece.indices, objective, list(piece.x0), settings, optimizer)
            built.append(_piece_traces(piece.jobs, piece.ids, group, result, started))
        except Exception:  # e.g. a crashing objective: each run alone records its own failure
            alone.extend(piece.indices)
            continue
        iterations += int(result.iterations.sum())
        f_final = result.f_final
        for b, (i, job) in enumerate(zip(piece.indices, piece.jobs, strict=True)):
            outcomes[i] = {
                "status": result.statuses[b],
                "message": result.messages[b],
                "f": float(f_final[b]),
                "job": job.name,
                "batched": True,
            }
        if result.interrupted:
            interrupted = True
            break
    if built:
        # The runs rows are built while the traces file is written: Python's work beside Arrow's.
        write_part(
            sweep_dir, chunk.name, lambda: [_piece_runs(p) for p in built], [p.traces for p in built], chunk.threads
        )
    return ChunkDone(outcomes, alone, interrupted, iterations)


def record_failed(sweep_dir: Path, chunk: Chunk, error: BaseException) -> dict[int, dict]:
    """Each run of a chunk that an engine could not run, recorded as failed in its job folder, as a
    lone run that raised records itself (``summary.json``: status ``failed``, the error); its outcome
    by job index. The folder's run is replaced when the job runs again."""
    text = str(error).strip()
    reason = type(error).__name__ + (f": {text.splitlines()[0]}" if text else "")
    message = f"chunk {chunk.name} did not run to its end ({reason})"
    outcomes, versions = {}, package_versions()
    for piece in chunk.pieces:
        for i, job, (config_hash, config_id) in zip(piece.indices, piece.jobs, piece.ids, strict=True):
            summary = summary_record(
                run_id=uuid.uuid4().hex[:12],
                config_hash=config_hash,
                config_id=config_id,
                objective=registry_name(job.config["objective"]),
                optimizer=registry_name(job.config["optimizer"]),
                status="failed",
                stop_reason="error",
                message=message,
                error=message,
            )
            folder = sweep_dir / job.name
            summary.update(
                started_at=utc_iso(time.time()), config=job.config, versions=versions, output_dir=str(folder)
            )
            folder.mkdir(parents=True, exist_ok=True)
            write_summary(folder / SUMMARY_FILE, summary)
            outcomes[i] = {**summary, "job": job.name}
    print(f"failed: {message}: its {len(outcomes)} runs run again on resume", file=sys.stderr, flush=True)
    return outcomes
