"""``hydra/sweeper=optuna_study``: hydra-optuna-sweeper, but ``n_trials`` is the study's total.

The stock sweeper runs ``n_trials`` new trials each time it starts, so a search kept in a
database (``hydra.sweeper.storage=sqlite:///study.db``, ``hydra.sweeper.study_name=...``) that was
killed and started again would run them all again on top of the first ones. This one first counts
the study's completed trials and runs only the ones missing: a search stopped after k of n
trials, started again with the same command, runs n - k more (a trial the kill left running stays
in the study as it was, and is not counted). Two processes may share a study: each runs the trials
the study lacked when it started. A process that joins a study holding trials reseeds its sampler
at random (``reseed_rng``): with the seed it was given it would propose again the very points the
seed drew first, which the study has. Everything else (samplers, search space, results file) is
the stock sweeper's. Without the optuna extra this module defines nothing.
"""

# No `from __future__ import annotations`: Hydra's plugin scan loads this module without entering it in
# sys.modules, where the dataclass below would look its string annotations up.
import logging
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

try:
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # the optuna extra is not installed
    OptunaSweeper = None

log = logging.getLogger(__name__)


def study_trials(storage, study_name: str | None) -> tuple[int, int]:
    """``(completed, all)``: the trials of study ``study_name`` in ``storage`` (0, 0 without storage
    or such a study)."""
    if storage is None or study_name is None:
        return 0, 0
    import optuna  # here: importing it costs every process that only scans the plugins

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet
        return 0, 0
    trials = study.get_trials(deepcopy=False)
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials), len(trials)


if OptunaSweeper is not None:

    class StudySweeper(OptunaSweeper):
        """The Optuna sweeper running the trials its study lacks of ``n_trials``."""

        def __init__(self, *args, n_trials: int, **kwargs) -> None:
            super().__init__(*args, n_trials=n_trials, **kwargs)
            self.total_trials = n_trials

        def sweep(self, arguments):
            impl = self.sweeper
            done, held = study_trials(impl.storage, impl.study_name)
            impl.n_trials = max(0, self.total_trials - done)
            if held:
                log.info(f"Study {impl.study_name} holds {done} completed trials: {impl.n_trials} to run")
                if hasattr(impl.sampler, "reseed_rng"):
                    impl.sampler.reseed_rng()
            return super().sweep(arguments)

    @dataclass
    class StudySweeperConf(OptunaSweeperConf):
        _target_: str = "hydra_plugins.runner_optuna_sweeper.study_sweeper.StudySweeper"

    ConfigStore.instance().store(group="hydra/sweeper", name="optuna_study", node=StudySweeperConf, provider="runner")
