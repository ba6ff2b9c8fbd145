"""``hydra/sweeper=optuna_study``: Optuna's sweeper with ``n_trials`` counted over the study, so a search
kept in a database continues where it stopped (see :mod:`.study_sweeper`)."""
