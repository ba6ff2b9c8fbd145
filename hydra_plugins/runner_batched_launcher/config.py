from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class RayConf:
    """``hydra.launcher.ray.<key>=...`` of ``engine=ray``."""

    # A running Ray cluster (ray://host:10001, or auto); null starts a local instance for the sweep.
    address: str | None = None
    # More keyword arguments of ray.init (runtime_env, num_cpus, ...).
    init: dict[str, Any] = field(default_factory=dict)
    # Options of each chunk's task: a core each; a chunk whose worker dies fails (resume runs it again).
    remote: dict[str, Any] = field(default_factory=lambda: {"num_cpus": 1, "max_retries": 0})


@dataclass
class SubmititConf:
    """``hydra.launcher.submitit.<key>=...`` of ``engine=submitit``: submitit's AutoExecutor."""

    folder: str = "${hydra.sweep.dir}/.submitit/%j"
    cluster: str = "slurm"  # or local: each chunk a local process, all at once
    timeout_min: int = 60
    cpus_per_task: int = 1
    mem_gb: int | None = None
    partition: str | None = None
    array_parallelism: int = 256  # chunks running at once, on SLURM
    poll_s: float = 1.0  # how often the jobs are looked at
    # Any other AutoExecutor parameter (slurm_qos, slurm_additional_parameters, local_setup, ...).
    parameters: dict[str, Any] = field(default_factory=dict)


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
    # Where the chunks run: local (this process), fork (forked copies of it), joblib (local processes), ray,
    # submitit (see ._engines).
    engine: str = "local"
    n_jobs: int = -1  # fork's and joblib's processes: -1 every core, -2 all but one, ...
    ray: RayConf = field(default_factory=RayConf)
    submitit: SubmititConf = field(default_factory=SubmititConf)


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="runner")
