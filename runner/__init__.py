"""runner: a declarative experiment runner for optimization studies.

``python -m runner [overrides]`` runs a study from the Hydra configs in ``conf/``;
:func:`run` does the same from Python with a plain config mapping.
"""

from runner.run import run

__all__ = ["run"]
