"""runner: a declarative experiment runner for optimization studies.

``python -m runner [overrides]`` runs a study from the Hydra configs in ``conf/``;
:func:`run` does the same from Python with a plain config mapping, and
:func:`load` / :func:`load_runs` read a whole sweep (or a folder of sweeps, or a list) into pandas.
"""

from runner.run import run
from runner.tables import load, load_runs

__all__ = ["load", "load_runs", "run"]
