"""``hydra/launcher=batched``: run a sweep of the runner's jobs as array computations (see :mod:`runner.batched`).

Laid out as Hydra's own launcher plugins are: :mod:`.config` registers the launcher's
config, :mod:`.batched_launcher` is the small ``Launcher`` class, :mod:`._core` does the
work, :mod:`.compose` composes the jobs' configs fast, and :mod:`._hydra_private` holds
every use of Hydra's private API. Hydra's plugin scan imports the modules without a
leading underscore at every start of every Hydra app in the environment, so they import
only Hydra and OmegaConf, and importing them changes no global state but the config
store entry ``hydra/launcher=batched``; the runner is imported when a sweep is launched.
"""
