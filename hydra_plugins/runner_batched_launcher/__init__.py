"""``hydra/launcher=batched``: run a sweep's jobs as array computations (see :mod:`runner.batched`).

Hydra imports every module of the ``hydra_plugins`` namespace at startup, so these
modules import only Hydra and OmegaConf at the top; the runner is imported when a
sweep is launched.
"""
