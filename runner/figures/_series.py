"""What a run draws, and where a view ends: series, repetitions, ranges, exits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from runner.figures._data import _column, _f_star, _finite
from runner.figures._layout import _Layout
from runner.figures._style import GAP


def run_series(rows: pd.DataFrame, run: pd.Series, x: str = "iteration") -> tuple[np.ndarray, np.ndarray]:
    """One run's ``(x, y)``: every trace row, y = f - f* where the run's f* is known, else f."""
    return _series(rows, _f_star(run), x)


def _series(rows: pd.DataFrame, f_star: float | None, x: str) -> tuple[np.ndarray, np.ndarray]:
    y = rows["f"].to_numpy(dtype=float)
    if f_star is not None:
        y = y - f_star
    return rows[x].to_numpy(dtype=float), y


def repetition_quantiles(series: list[tuple[np.ndarray, np.ndarray]], qs=(0.25, 0.5, 0.75)):
    """``(grid, [q_25, q_50, q_75])`` of repetitions given as ``(x, y)`` pairs, x non-decreasing.

    The grid is every x any run recorded, from the latest first x on. At each
    grid point a run counts with its y at its last x at or before it (carried
    forward past its end); a non-finite y counts as +inf. The quantiles are
    numpy's "linear" ones, with +inf handled (a quantile between a finite value
    and +inf is +inf).
    """
    start = max(x[0] for x, _ in series)
    grid = np.unique(np.concatenate([x for x, _ in series]))
    grid = grid[grid >= start]
    values = np.empty((len(series), len(grid)))
    for i, (x, y) in enumerate(series):
        y = np.where(np.isfinite(y), y, np.inf)
        values[i] = y[np.searchsorted(x, grid, side="right") - 1]
    ordered = np.sort(values, axis=0)
    n = len(series)
    out = []
    for q in qs:
        position = (n - 1) * q
        lo, hi = math.floor(position), math.ceil(position)
        t = position - lo
        a, b = ordered[lo], ordered[hi]
        if t == 0:
            out.append(a.copy())
            continue
        with np.errstate(invalid="ignore"):
            out.append(np.where(a == b, a, a + t * (b - a)))
    return grid, out


@dataclass
class _Curve:
    """What one config contributes to a convergence panel."""

    config_id: str
    hue_value: object
    runs: pd.DataFrame  # its runs that have traces
    x: np.ndarray
    y: np.ndarray
    band: tuple | None  # (grid, lo, hi) for repetitions
    per_run: dict  # run_id -> (x, y)
    gap: bool  # y is f - f*

    # Asked for again and again while a panel is drawn: computed once each.
    @cached_property
    def diverged_ids(self) -> list[str]:
        """Runs that diverged: status ``diverged`` (f or its gradient not finite), or a last f that is not finite."""
        status = dict(zip(self.runs["run_id"], self.runs["status"], strict=True))
        return [
            rid
            for rid, (_, y) in self.per_run.items()
            if status.get(rid) == "diverged" or (len(y) and not np.isfinite(y[-1]))
        ]

    @cached_property
    def growing(self) -> bool:
        """Not converged, and ended an order of magnitude above its start: blowing up, not yet overflowed."""
        if (self.runs["status"] == "converged").all() or not len(self.y) or not np.isfinite(self.y[-1]):
            return False
        return _grew(self.y[0], self.y[-1])

    @cached_property
    def wild(self) -> bool:
        return bool(self.diverged_ids) or self.growing

    def note(self) -> str:
        """What the line alone does not say: divergence, growth, interruption."""
        return self._note

    @cached_property
    def _note(self) -> str:
        n = len(self.per_run)
        notes = []
        if self.diverged_ids:
            if n == 1:
                its = self.runs["iterations"].iloc[0]
                notes.append(f"diverged at iteration {int(its)}" if pd.notna(its) else "diverged")
            else:
                notes.append(f"{len(self.diverged_ids)} of {n} diverged")
        elif self.growing:
            notes.append(f"{GAP if self.gap else 'f'} grew to {self.y[-1]:.1e}")
        if (self.runs["status"] == "interrupted").any():
            notes.append("interrupted")
        return ", ".join(notes)


def _curves(layout: _Layout, runs: pd.DataFrame, by_run: dict, x: str) -> list[_Curve]:
    curves = []
    order = {v: i for i, v in enumerate(layout.hue_values)}
    # Whole columns, not a row at a time: a panel of a big grid holds dozens of configs.
    hue = _column(runs, layout.hue).tolist() if layout.hue else [None] * len(runs)
    f_stars = [_finite(v) for v in runs["f_star"]] if "f_star" in runs.columns else [None] * len(runs)
    run_ids = runs["run_id"].tolist()
    positions: dict[str, list[int]] = {}  # each config's rows, configs in order of appearance (as groupby)
    for i, config_id in enumerate(runs["config_id"].tolist()):
        if not pd.isna(config_id):
            positions.setdefault(config_id, []).append(i)
    groups = sorted(positions.items(), key=lambda g: order[hue[g[1][0]]])
    for config_id, rows in groups:
        group = runs.iloc[rows]
        per_run = {run_ids[i]: _series(by_run[run_ids[i]], f_stars[i], x) for i in rows}
        gap = all(f_stars[i] is not None for i in rows)
        if len(per_run) == 1:
            (xs, ys), band = next(iter(per_run.values())), None
            finite = np.isfinite(ys)
            xs, ys = xs[finite], ys[finite]
        else:
            grid, (lo, mid, hi) = repetition_quantiles(list(per_run.values()))
            xs, ys, band = grid, mid, (grid, lo, hi)
        curves.append(_Curve(config_id, hue[rows[0]], group, xs, ys, band, per_run, gap))
    return curves


def _span_is_wide(values: np.ndarray, decades: float = 2.0) -> bool:
    values = values[np.isfinite(values) & (values > 0)]
    return len(values) > 0 and values.max() / values.min() >= 10**decades


def _y_range(curves: list[_Curve], log: bool) -> tuple[float, float]:
    """The y range of a set of curves: every start, and all finite data of the curves that are not
    wild (diverged or blowing up); a wild curve's values count only as far as they stay below that."""
    sane, wild = [], []
    for c in curves:
        sane.extend(y[:1] for _, y in c.per_run.values() if len(y))
        values = [c.y] + ([c.band[1], c.band[2]] if c.band else [])
        (wild if c.wild else sane).extend(values)
    sane = np.concatenate(sane) if sane else np.array([1.0])
    sane = sane[np.isfinite(sane) & ((sane > 0) if log else True)]
    if not len(sane):
        sane = np.array([1.0])
    top = sane.max()
    extra = np.concatenate(wild) if wild else np.array([])
    extra = extra[np.isfinite(extra) & (extra <= top) & ((extra > 0) if log else True)]
    lo = min(sane.min(), extra.min()) if len(extra) else sane.min()
    if log:
        pad = max(0.04 * math.log10(top / lo), 0.15) if top > lo else 0.5
        return lo / 10**pad, top * 10**pad
    pad = 0.05 * (top - lo) if top > lo else max(abs(top), 1.0) * 0.1
    return lo - pad, top + pad


def _exit_point(x: np.ndarray, y: np.ndarray, top: float, bottom: float = -np.inf):
    """Where a diverged run diverged, as drawn: its last finite point, or, when that lies off the
    plot, the first point of its final excursion out of ``[bottom, top]``, put on the edge."""
    finite = np.isfinite(y)
    x, y = x[finite], y[finite]
    if not len(y):
        return None
    outside = (y > top) | (y < bottom)
    if not outside[-1]:
        return float(x[-1]), float(y[-1])
    inside = np.flatnonzero(~outside)
    j = inside[-1] + 1 if len(inside) else 0
    return float(x[j]), float(top if y[j] > top else bottom)


def _sane_points(points: list[np.ndarray], values: list[np.ndarray], wild_points, wild_values):
    """Points that set a view: every sane point, and a diverged run's points no higher than the sane ones."""
    pts = np.concatenate(points)
    vals = np.concatenate(values)
    ok = np.all(np.isfinite(pts), axis=1)
    cap = np.nanmax(np.where(np.isfinite(vals), vals, np.nan)) if np.isfinite(vals).any() else np.inf
    extra = []
    for p, v in zip(wild_points, wild_values, strict=True):
        keep = np.all(np.isfinite(p), axis=1) & np.isfinite(v) & (v <= cap)
        extra.append(p[keep])
    return np.concatenate([pts[ok], *extra])


def _wild(status: str, f: np.ndarray, x: np.ndarray) -> bool:
    """A run (of that ``status``) that diverged, or did not converge and ended with f an order of magnitude
    above its start."""
    if status == "diverged" or not (np.isfinite(f[-1]) and np.all(np.isfinite(x[-1]))):
        return True
    return status != "converged" and _grew(f[0], f[-1])


def _grew(first: float, last: float) -> bool:
    """Ended an order of magnitude above its start: blowing up, whether or not it has overflowed yet."""
    return last - first > 9 * abs(first)


def _box(points: np.ndarray, pad: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return lo - pad * span, hi + pad * span


def _leaves_box(p: np.ndarray, lo, hi) -> np.ndarray:
    return ~np.all(np.isfinite(p) & (p >= lo) & (p <= hi), axis=1)


def _exit(p: np.ndarray, lo, hi) -> tuple[int, np.ndarray]:
    """Where a diverged path is marked, and how much of it to draw.

    Returns ``(k, point)``: the path is drawn up to row ``k`` (the first row
    after it leaves the view ``[lo, hi]`` for good, or its last row when it
    never does), and ``point`` is where it crosses the view's edge on its way
    out (its last row when it stays inside).
    """
    outside = _leaves_box(p, lo, hi)
    if not outside[-1]:
        return len(p) - 1, p[-1]
    inside = np.flatnonzero(~outside)
    if not len(inside):
        return 0, p[0]
    j = int(inside[-1])
    a, b = p[j], p[j + 1]
    if not np.all(np.isfinite(b)):
        return j, a
    d = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > 0, (hi - a) / d, np.where(d < 0, (lo - a) / d, np.inf))
    return j + 1, a + min(1.0, float(np.min(t))) * d
