"""What the figures of a study across problems share: when they apply, the runs they compare, the notes.

A study across problems sweeps both the objective and the optimizer (``+experiment=optimizer_benchmark``);
each optimizer is compared at its best lr per objective (:func:`runner.profiles.best_lr`), and each
(objective, seed) is one problem. The rules the captions state live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from runner.figures._data import SETTING_KEYS, profiles
from runner.figures._layout import swept_keys
from runner.figures._style import _ordered, _styles

SOLVER = "optimizer"
BEST_RULE = "Each optimizer at its best lr per objective: the smallest median final f − f* over the seeds (f where f* is unknown), a tie going to the smaller lr."  # noqa: E501
FAIL_RULE = "Failed, diverged or never reached: not solved (ratio ∞), so a curve ends at the fraction solved."
TIE_RULE = "τ = 1: the fewest iterations; tied optimizers all count."
PANEL = (5.6, 4.0)


def applies(runs: pd.DataFrame) -> bool:
    """A study across problems: the objective and the optimizer are both swept (several of each), and
    some run has a trace to compare. A single lr sweep, or one optimizer on many objectives, is not."""
    if runs.empty or not {"objective", "optimizer", "lr", "f", "status"} <= set(runs.columns):
        return False
    done = runs[runs["status"] != "failed"]
    keys = swept_keys(runs)
    return "objective" in keys and "optimizer" in keys and done["optimizer"].nunique() >= 2


@dataclass
class Study:
    best: pd.DataFrame  # profiles.best_lr
    chosen: pd.DataFrame  # the runs at their best lr
    problem: tuple  # the problem columns
    styles: dict  # optimizer -> line style
    solvers: list


def study(runs: pd.DataFrame) -> Study:
    """The runs compared: every optimizer's runs at its best lr per objective (all seeds)."""
    problem = profiles.PROBLEM if "seed" in runs.columns else ("objective",)
    best = profiles.best_lr(runs, by=(SOLVER, "objective"), problem=problem)
    chosen = profiles.at_best_lr(runs, best, by=(SOLVER, "objective"))
    solvers = [v for v in _ordered(runs[SOLVER]) if v is not None]
    return Study(best, chosen, problem, _styles(solvers), solvers)


def hopeless(best: pd.DataFrame) -> str:
    """The (optimizer, objective) pairs failing at every lr, for a caption: ``Failing at every lr: sgd on quartic,
    sin_cos.``"""
    pairs = best[best["median"] == float("inf")]
    if pairs.empty:
        return ""
    by = pairs.groupby(SOLVER, sort=True)["objective"].apply(lambda o: ", ".join(sorted(map(str, o))))
    return "Failing at every lr: " + "; ".join(f"{s} on {o}" for s, o in by.items()) + "."


def caption(*lines: str) -> str:
    """A figure's caption: one line per rule, empty ones left out."""
    return "\n".join(line for line in lines if line)


def settings(runs: pd.DataFrame) -> pd.DataFrame:
    """The run settings alone (``max_iter``, ``tol`` ...), for the fixed-settings line: the optimizers'
    and objectives' own keys differ by design in a study across problems and would fill it."""
    return runs[[c for c in SETTING_KEYS if c in runs.columns]]


def reference_note(ref: pd.DataFrame) -> str:
    """Which f_L each objective uses: ``f_L = f* on quartic, ...; the best f found by any optimizer on ...``."""
    known = sorted(set(ref.loc[ref["source"] == "f*", "objective"].astype(str)))
    found = sorted(set(ref.loc[ref["source"] != "f*", "objective"].astype(str)))
    parts = []
    if known:
        parts.append(f"f_L = f* on {', '.join(known)}")
    if found:
        parts.append(f"f_L = the best f any optimizer reached on {', '.join(found)}")
    return "; ".join(parts) + "." if parts else ""
