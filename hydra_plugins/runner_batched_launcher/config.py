from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class BatchedLauncherConf:
    """``hydra.launcher.<key>=...`` of ``hydra/launcher=batched`` (see :mod:`.batched_launcher`)."""

    _target_: str = "hydra_plugins.runner_batched_launcher.batched_launcher.BatchedLauncher"
    # At most this many configs in memory and in one chunk file.
    chunk_size: int = 1024
    # Fewer configs per chunk when their traces would be larger.
    max_chunk_bytes: int = 256 * 2**20
    # fast: compose once per shape of job; exact: every job through load_sweep_config (about 65 ms a job).
    compose: str = "fast"
    # Answer the sweeper's composability check of each job from the fast composition.
    fast_validation: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="runner")
