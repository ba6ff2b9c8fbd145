"""How the figures look and name things: the palette, the names of keys, number formatting."""

from __future__ import annotations

import textwrap

from matplotlib.lines import Line2D

from runner.figures._data import _canon

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", ":", "-.")
# What a key is called on an axis or a legend title; other keys are shown as they are typed.
NAMES = {
    "lr": "learning rate",
    "optimizer.momentum": "momentum",
    "optimizer.method": "method",
    "optimizer.batch_size": "batch size",
    "optimizer.weight_decay": "weight decay",
    "objective.x0": "x0",
}
GAP = "f − f*"
X_LABELS = {
    "iteration": "iteration",
    "nfev": "function evaluations (nfev)",
    "evaluations": "evaluations: function + gradient (nfev + ngev)",
}
DIVERGED_MARKER = {
    "marker": "x",
    "markersize": 9,
    "markeredgewidth": 2.2,
    "linestyle": "none",
    "zorder": 5,
    "clip_on": False,
}
PANEL_SIZE = (4.6, 3.4)
TOL_RULE = "|Δf| < tol"  # the stop rule, as the figures name it


def _name(key: str | None) -> str:
    return NAMES.get(key, key) if key else ""


def _short(key: str | None) -> str:
    """The key as typed, without its group: for notes, where space is short."""
    return key.partition(".")[2] or key if key else ""


def _fmt(value) -> str:
    value = _canon(value)
    if value is None:
        return "default"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _ordered(values) -> list:
    """Distinct values, numbers ascending, else as text; null first."""
    distinct = list(dict.fromkeys(_canon(v) for v in values))
    present = [v for v in distinct if v is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    present.sort(key=(lambda v: v) if numeric else str)
    return ([None] if None in distinct else []) + present


def _styles(values: list) -> dict:
    n = len(PALETTE)
    return {
        v: {"color": PALETTE[i % n], "linestyle": LINESTYLES[(i // n) % len(LINESTYLES)]} for i, v in enumerate(values)
    }


def _diverged_handle(label: str) -> Line2D:
    """The legend entry of the diverged-run marker (:data:`DIVERGED_MARKER`)."""
    return Line2D([], [], color="0.3", label=label, **{k: v for k, v in DIVERGED_MARKER.items() if k != "clip_on"})


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``fontsize`` points (each line kept
    whole where it fits): a character of DejaVu Sans averages under 0.6 em, wide ones 0.65."""
    chars = max(int(width_in * 72 / (0.65 * fontsize)), 20)
    return "\n".join(textwrap.fill(line, chars, break_long_words=True) for line in text.split("\n"))
