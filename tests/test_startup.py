"""What ``python -m runner`` saves at start-up gives what Hydra and pyarrow give without it."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import OmegaConf

from runner.app import compose_primary_once, config_dir
from runner.store import read_table
from tests.helpers import sweep_watching_pandas

SWEEP = ["lr=0.1,0.2", "optimizer.momentum=0,0.5", "optimizer=momentum", "hydra/launcher=batched"]


def _loader():
    return GlobalHydra.instance().config_loader()


def _as_hydra_does(loader, overrides: list[str]):
    """Hydra.get_mode's composition, then the multirun's (``hydra.mode=MULTIRUN`` added unless the config sets it)."""
    first = loader.load_configuration("config", list(overrides), RunMode.MULTIRUN, validate_sweep_overrides=False)
    extra = [] if first.hydra.mode == RunMode.MULTIRUN else ["hydra.mode=MULTIRUN"]
    return first, loader.load_configuration("config", [*overrides, *extra], RunMode.MULTIRUN)


@pytest.mark.parametrize(
    "overrides",
    [
        SWEEP,
        ["+experiment=lr_momentum_grid", "hydra.sweep.dir=/tmp/x"],
        ["hydra.mode=RUN", *SWEEP],
        [*SWEEP, "hydra.sweep.subdir=d/${hydra.job.num}"],  # an override line that holds an interpolation
    ],
    ids=["no-mode", "mode-in-config", "mode-run", "interpolation"],
)
def test_the_multirun_takes_the_mode_composition_and_equals_hydras_own(overrides, monkeypatch):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        _, expected = _as_hydra_does(_loader(), overrides)
        monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", ConfigLoaderImpl.load_configuration)
        compose_primary_once()
        first, reused = _as_hydra_does(_loader(), overrides)
    assert reused is first  # composed once
    assert OmegaConf.to_container(reused, resolve=False) == OmegaConf.to_container(expected, resolve=False)
    assert reused.hydra.mode == RunMode.MULTIRUN


def test_a_swept_hydra_setting_is_refused_as_hydra_refuses_it(monkeypatch):
    overrides = [*SWEEP, "hydra.job.name=a,b"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match="Sweeping over Hydra's configuration") as hydra_own:
            _as_hydra_does(_loader(), overrides)
        monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", ConfigLoaderImpl.load_configuration)
        compose_primary_once()
        with pytest.raises(ConfigCompositionException) as reused:
            _as_hydra_does(_loader(), overrides)
    assert str(reused.value) == str(hydra_own.value)


def test_other_compositions_are_composed_anew(monkeypatch):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", ConfigLoaderImpl.load_configuration)
        compose_primary_once()
        loader = _loader()
        first = loader.load_configuration("config", SWEEP, RunMode.MULTIRUN, validate_sweep_overrides=False)
        other = loader.load_configuration("config", [*SWEEP, "lr=0.3"], RunMode.MULTIRUN)  # other overrides
        run = loader.load_configuration("config", ["lr=0.1"], RunMode.RUN)
    assert other is not first and other.lr == 0.3 and run.lr == 0.1


def test_read_table_reads_what_pq_read_table_reads_and_refuses_a_missing_column(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table({"a": [1, 2, 3], "s": ["x", "y", "x"], "f": [0.5, None, 1.5]})
    pq.write_table(table, path, store_schema=False)
    for columns, dictionary in [(None, None), (["f", "a"], None), (["s"], ["s"])]:
        assert read_table(path, columns, read_dictionary=dictionary).equals(
            pq.read_table(path, columns=columns, read_dictionary=dictionary)
        )
    with pytest.raises(pa.ArrowInvalid, match=r"FieldRef.Name\(zz\)"):
        pq.read_table(path, columns=["a", "zz"])
    with pytest.raises(pa.ArrowInvalid, match=r"FieldRef.Name\(zz\)"):
        read_table(path, ["a", "zz"])


def test_a_sweep_from_the_shell_imports_pandas_only_at_its_end_and_load_still_gets_it(tmp_path):
    """In ``python -m runner``'s process: no pandas while the jobs run (the best configs printed at the
    sweep's end rank them with pandas); then load() and pandas objects work."""
    then = f"""
import pyarrow as pa
import runner
traces = runner.load("{tmp_path / "sweep"}")
assert len(traces) == 12 and type(traces).__module__.startswith("pandas"), type(traces)
assert pa.table(traces).num_rows == 12 and pa.array(traces["f"]).type == pa.float64()
print("ok")
"""
    done = sweep_watching_pandas(tmp_path / "sweep", "hydra.callbacks.sweep_end.figures=false", then=then)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr
    [imports] = [line for line in done.stdout.splitlines() if line.startswith("pandas imports:")]
    first_import = imports.split(" ", 3)[3]  # the functions on the stack at the first
    assert not imports.startswith("pandas imports: 0") and "finish_sweep" in first_import, imports
    assert "run_jobs" not in first_import and "run_task" not in first_import, imports
