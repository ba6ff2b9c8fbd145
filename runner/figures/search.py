"""``search``: a search's outcome (the swept values are not a grid): final value against each key, best so far."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from runner.figures._data import _column, _finite
from runner.figures._layout import _describe, _grid, _legend, _suptitle, is_grid, swept_keys
from runner.figures._series import _span_is_wide
from runner.figures._style import DIVERGED_MARKER, GAP, PALETTE, _diverged_handle, _fmt, _name, _ordered

name = "search"


def _trial_order(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs in the order they started (``started_at``, then table order): a search's trials."""
    if "started_at" not in runs.columns:
        return runs
    started = pd.to_datetime(runs["started_at"], errors="coerce", utc=True)
    return runs.iloc[np.argsort(started.to_numpy(dtype="datetime64[ns]"), kind="stable")]


def figure(traces: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """A search's outcome, drawn when the swept values do not form a grid (:func:`is_grid`):
    final f - f* (f where f* is unknown) against each swept key, one point per run, log x where
    the values span two decades; and the best value so far against the trial, in start order.

    A run whose final value is not finite (diverged) is an ``x`` on the top edge (gid
    ``diverged:<run_id>``); a value at or below 0 on a log axis (f* reached to
    rounding) is a triangle on the bottom edge. A swept key whose values are
    not all finite numbers (text, inf) gets one slot per value.
    """
    if "f" not in runs.columns:
        return None
    done = runs[runs["status"] != "failed"] if "status" in runs.columns else runs
    keys = swept_keys(done)
    if len(done) < 2 or is_grid(done, keys):
        return None
    done = _trial_order(done)
    f_star = done["f_star"].map(_finite) if "f_star" in done.columns else pd.Series(None, index=done.index)
    gap = bool(f_star.notna().all())
    final = pd.to_numeric(done["f"], errors="coerce").to_numpy(float) - (f_star.fillna(0).to_numpy(float))
    finite = np.isfinite(final)
    log_y = bool(finite.any() and (final[finite] > 0).any() and (gap or _span_is_wide(final[finite], 2)))
    shown = final[finite & (final > 0)] if log_y else final[finite]
    if not len(shown):
        shown = np.array([1.0])
    if log_y:
        pad = max(0.04 * math.log10(shown.max() / shown.min()), 0.15) if shown.max() > shown.min() else 0.5
        bottom, top = shown.min() / 10**pad, shown.max() * 10**pad
    else:
        pad = 0.05 * (shown.max() - shown.min()) or max(abs(shown.max()), 1.0) * 0.1
        bottom, top = shown.min() - pad, shown.max() + pad
    y = np.where(~finite, top, np.where(log_y & (final <= 0), bottom, final))
    what = GAP if gap else "f"

    fig, axes, ncols = _grid(len(keys) + 1, sharex=False, sharey=True)
    for i, (ax, key) in enumerate(zip(axes, [*keys, None], strict=True)):
        ax.set_yscale("log" if log_y else "linear")
        ax.set_ylim(bottom, top)
        if key is None:  # best so far against trial
            trial = np.arange(1, len(done) + 1, dtype=float)
            best = np.fmin.accumulate(np.where(finite, y, np.inf))
            ok = np.isfinite(best)
            ax.plot(
                trial[ok],
                best[ok],
                drawstyle="steps-post",
                color=PALETTE[0],
                lw=1.8,
                gid="best_so_far",
                label="best so far",
            )
            xs = trial
            ax.set_xlabel("trial, in start order")
            ax.set_xlim(0.5, len(done) + 0.5)
        else:
            values = _column(done, key)
            numeric = values.map(
                lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ).all()
            if numeric:
                xs = values.to_numpy(float)
                if bool((xs > 0).all()) and _span_is_wide(xs, 1):  # values that span a decade or more
                    ax.set_xscale("log")
            else:  # one slot per value, in value order
                order = _ordered(values)
                xs = values.map(order.index).to_numpy(float)
                ax.set_xticks(range(len(order)), [_fmt(v) for v in order])
                ax.set_xlim(-0.5, len(order) - 0.5)
            ax.set_xlabel(_name(key))
        ok = finite & ((final > 0) if log_y else True)
        ax.plot(xs[ok], y[ok], "o", ms=5, color=PALETTE[0], alpha=0.8, ls="none", gid="final", label=f"final {what}")
        low = finite & ~ok
        if low.any():
            ax.plot(
                xs[low],
                y[low],
                "v",
                ms=7,
                color=PALETTE[2],
                ls="none",
                clip_on=False,
                zorder=4,
                gid="at_f_star",
                label=f"final {what} ≤ 0 (f* to rounding)",
            )
        for rid, xv in zip(done["run_id"][~finite], xs[~finite], strict=True):
            ax.plot([xv], [top], color=PALETTE[1], gid=f"diverged:{rid}", **DIVERGED_MARKER)
        ax.grid(True, alpha=0.3)
        if i % ncols == 0:
            ax.set_ylabel(f"final {what}")
    legend = [
        Line2D([], [], marker="o", ms=5, color=PALETTE[0], ls="none", label=f"final {what}, one run each"),
        Line2D([], [], color=PALETTE[0], lw=1.8, drawstyle="steps-post", label=f"best final {what} so far"),
    ]
    if (finite & log_y & (final <= 0)).any():
        legend.append(Line2D([], [], marker="v", ms=7, color=PALETTE[2], ls="none", label=f"final {what} ≤ 0"))
    if (~finite).any():
        legend.append(_diverged_handle(f"diverged: final {what} not finite"))
    failed = len(runs) - len(done)
    if failed:
        legend.append(Line2D([], [], ls="none", label=f"{failed} failed, not drawn"))
    _legend(axes[min(ncols, len(axes)) - 1], legend, None)
    title = _describe(done, skip=keys) + f"; a search of {len(done)} runs over {', '.join(_name(k) for k in keys)}"
    _suptitle(fig, title.lstrip("; "), runs)
    return fig
