"""The best configs (runner.best) from real sweeps run from the shell: the ranking of a pyarrow table, without
pandas, is the DataFrame's, and both are the rule written here in plain pandas groupby.

The sweeps end without their page (``report=false``), so the lines they print are ranked from the arrow table.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import runner
from runner.best import best_configs, best_table, rank_configs
from runner.columns import COLUMN_TYPES
from tests.helpers import REPO, run_module, sweep_watching_pandas

NO_PAGE = ["hydra.callbacks.sweep_end.figures=false", "hydra.callbacks.sweep_end.report=false"]
SWEEPS = {
    # Momentum on the quadratic with tol=0: several configs reach f* exactly after as many iterations (ties).
    "ties": ["optimizer=momentum", "lr=1.8,0.45,1.5,0.1", "optimizer.momentum=0.6,0.84,0.76", "seed=0,1", "tol=0"],
    # Least squares: data and f* from the seed, three seeds a config; some of them diverge at lr = 0.012 and
    # 0.014, all of them at 0.02.
    "seeds": [
        *("objective=least_squares", "optimizer=momentum", "lr=0.003,0.012,0.014,0.02", "optimizer.momentum=0,0.5"),
        *("seed=0,1,2", "max_iter=300"),
    ],
    # Two objectives and two optimizers, x0 a list; x0 of two numbers fails on the quartic (one number).
    "mixed": [
        *("objective=shifted_quadratic,quartic", "optimizer=gd,momentum", "lr=0.05,0.2"),
        *("objective.x0=[1,2],[3,4.5]", "max_iter=50"),
    ],
}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Each sweep's folder and what it printed."""
    tmp = tmp_path_factory.mktemp("best")
    done = {}
    for name, args in SWEEPS.items():
        out = run_module("runner", "-m", "hydra/launcher=batched", *args, *NO_PAGE, f"hydra.sweep.dir={name}", cwd=tmp)
        assert (tmp / name / "runs.parquet").is_file(), out.stderr
        done[name] = (tmp / name, out.stdout)
    return done


def _set(table: pa.Table, name: str, values: list, type_=None) -> pa.Table:
    array = pa.array(values, type_ or table.schema.field(name).type)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, array)
    return table.append_column(name, array)


def tables(sweeps) -> dict[str, pa.Table]:
    """The sweeps' runs tables as pyarrow reads them, several sweeps as one, and tables with what a sweep rarely
    has: nulls in the groups, config_id, f and iterations; -0.0 beside 0.0; bools and integers with nulls;
    several chunks; a dictionary-encoded column."""
    found = {name: pq.read_table(folder / "runs.parquet") for name, (folder, _) in sweeps.items()}
    folders = [sweeps["seeds"][0], sweeps["ties"][0]]
    found["two sweeps"] = pa.Table.from_pandas(runner.load_runs(folders), preserve_index=False)
    found["every sweep"] = pa.Table.from_pandas(runner.load_runs(folders[0].parent), preserve_index=False)
    mixed, n = found["mixed"], found["mixed"].num_rows
    odd = mixed
    odd = _set(odd, "objective", [None if i % 3 == 0 else v for i, v in enumerate(odd["objective"].to_pylist())])
    odd = _set(odd, "config_id", [None if i % 5 == 1 else v for i, v in enumerate(odd["config_id"].to_pylist())])
    odd = _set(odd, "f", [None if i % 4 == 2 else v for i, v in enumerate(odd["f"].to_pylist())])
    odd = _set(odd, "iterations", [None if i % 3 == 1 else v for i, v in enumerate(odd["iterations"].to_pylist())])
    odd = _set(odd, "lr", [(-0.0 if i % 3 else 0.0) if i % 2 else v for i, v in enumerate(odd["lr"].to_pylist())])
    odd = _set(odd, "flag", [bool(i % 2) if i % 5 else None for i in range(n)], pa.bool_())
    odd = _set(odd, "count", [i % 3 if i % 4 else None for i in range(n)], pa.int64())
    found["nulls"] = odd
    seeds = found["seeds"]
    flag = {config: i % 2 == 0 for i, config in enumerate(sorted(set(seeds["config_id"].to_pylist())))}  # a config's
    found["a bool setting"] = _set(seeds, "flag", [flag[c] for c in seeds["config_id"].to_pylist()], pa.bool_())
    found["chunks"] = pa.concat_tables([found["ties"].slice(0, 7), found["ties"].slice(7)])
    status = seeds.column_names.index("status")
    found["dictionary"] = seeds.set_column(status, "status", seeds["status"].dictionary_encode())
    return found


def same(mine, theirs) -> bool:
    """Equal values, NaN equal to NaN, None to None (and to NaN: pandas' null of a text column)."""
    null = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (mine, theirs)]
    return all(null) or (not any(null) and type(mine) is type(theirs) and mine == theirs)


def as_python(values) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def test_the_arrow_ranking_is_the_dataframe_ranking(sweeps):
    """rank_configs(table) is best_configs(table.to_pandas()), column by column, value by value."""
    for name, table in tables(sweeps).items():
        frame = table.to_pandas()
        for top in (None, 1, 2):
            mine, theirs = rank_configs(table, top), best_configs(frame, top)
            assert list(mine) == list(theirs.columns), name
            assert len(theirs) > 0, name
            for column, values in mine.items():
                pairs = zip(as_python(values), as_python(theirs[column].to_numpy()), strict=True)
                assert all(same(a, b) for a, b in pairs), (name, top, column)
            pd.testing.assert_frame_equal(pd.DataFrame(mine), theirs, check_exact=True)
        assert best_table(table) == best_table(frame) == best_table(best=rank_configs(table)), name
        assert best_table(table, 1) == best_table(best=best_configs(frame), top=1), name


def text(value) -> str:
    """A setting's value as the table prints it."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(text(v) for v in value) + "]"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "default"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def expected(runs: pd.DataFrame) -> pd.DataFrame:
    """The rule, in plain pandas groupby: f - f* (f where f* is unknown), +inf for runs without a result; per
    group, each config's medians, ranked by them, then by config_id; the setting from the config keys that vary
    in the group and not among a config's runs; the best run the first by (final, iterations)."""
    gap = np.isfinite(runs["f_star"])
    final = np.where(gap, runs["f"] - runs["f_star"], runs["f"])
    bad = runs["status"].isin(["failed", "diverged", "interrupted"]) | ~np.isfinite(final)
    runs = runs.assign(
        final_=np.where(bad, np.inf, final), its_=np.where(bad, np.inf, runs["iterations"]), bad_=bad, gap_=gap
    )
    groups = [key for key in ("sweep", "objective", "optimizer") if key in runs.columns]
    runs[groups] = runs[groups].fillna("")
    keys = [k for k in runs.columns if k not in COLUMN_TYPES and k not in (*groups, "seed") and not k.endswith("_")]
    hashable = runs[keys].map(lambda v: tuple(v) if isinstance(v, (list, np.ndarray)) else v)
    rows = []
    for key, group in runs.groupby(groups, sort=True):
        values = hashable.loc[group.index]
        varying = [k for k in keys if values[k].nunique(dropna=False) > 1]
        setting = [k for k in varying if values.groupby(group["config_id"])[k].nunique(dropna=False).max() == 1]
        configs = []
        for config_id, mine in group.groupby("config_id", sort=False):
            best = mine.sort_values(["final_", "its_"], kind="stable").iloc[0]
            configs.append(
                {
                    **dict(zip(groups, key, strict=True)),
                    "config_id": config_id,
                    "setting": ", ".join(f"{k}={text(mine[k].iloc[0])}" for k in setting) or "-",
                    "measure": "f − f*" if mine["gap_"].all() else "f",
                    "final": mine["final_"].median(),
                    "iterations": mine["its_"].median(),
                    "runs": len(mine),
                    "no_result": int(mine["bad_"].sum()),
                    "run_id": best["run_id"],
                }
            )
        ranked = pd.DataFrame(configs).sort_values(["final", "iterations", "config_id"], kind="stable")
        rows.append(ranked.assign(rank=np.arange(1, len(ranked) + 1)))
    columns = [*groups, "rank", "config_id", "setting", "measure", "final", "iterations", "runs", "no_result", "run_id"]
    return pd.concat(rows)[columns].reset_index(drop=True)


def test_the_ranking_is_the_rule_in_plain_pandas(sweeps):
    found = tables(sweeps)
    for name in ("ties", "seeds", "mixed", "two sweeps", "every sweep", "a bool setting"):
        frame = found[name].to_pandas()
        want = expected(frame)
        pd.testing.assert_frame_equal(best_configs(frame), want, check_exact=True, check_dtype=False, obj=name)
        ranked = pd.DataFrame(rank_configs(found[name]))
        pd.testing.assert_frame_equal(ranked, want, check_exact=True, check_dtype=False, obj=name)
    # What the sweeps rank: ties (f* reached exactly, as many iterations), failures, lists, several groups.
    ties = best_configs(found["ties"].to_pandas())
    assert (ties["final"].iloc[:3] == 0).all() and ties["iterations"].nunique() == 1
    seeds = best_configs(found["seeds"].to_pandas())
    assert (seeds["runs"] == 3).all() and seeds["no_result"].iloc[-1] == 3 and np.isinf(seeds["final"].iloc[-1])
    assert seeds["no_result"].isin([1, 2]).any()
    mixed = best_configs(found["mixed"].to_pandas())
    assert mixed.groupby(["objective", "optimizer"]).ngroups == 4 and mixed["setting"].str.contains(r"x0=\[").all()


def test_the_sweep_prints_the_dataframe_ranking(sweeps):
    """What each sweep printed at its end, ranked from the arrow table, is the DataFrame's table."""
    for name, (folder, stdout) in sweeps.items():
        table = best_table(best=best_configs(pd.read_parquet(folder / "runs.parquet")))
        assert table and table in stdout, name
        assert stdout.rstrip().endswith(table), name  # no page, so nothing after it


def test_an_empty_table_ranks_nothing(sweeps):
    table = pq.read_table(sweeps["seeds"][0] / "runs.parquet").slice(0, 0)
    ranked = rank_configs(table)
    assert list(ranked) == list(best_configs(table.to_pandas()).columns)
    assert all(len(v) == 0 for v in ranked.values())
    assert best_table(table) == best_table(best=ranked) == ""


def test_a_sweep_without_its_page_never_imports_pandas(tmp_path):
    """``python -m runner``'s process, a batched sweep with report=false and figures=false: pandas is never imported,
    and the best configs are printed."""
    done = sweep_watching_pandas(tmp_path / "sweep", *NO_PAGE, then="assert 'pandas' not in sys.modules")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "pandas imports: 0", done.stdout
    assert any(line.startswith("best: shifted_quadratic, momentum") for line in lines), done.stdout
    assert lines[-2].startswith("  2. lr="), done.stdout


def test_the_module_imports_without_pandas():
    code = "import sys, runner.best; assert 'pandas' not in sys.modules, [m for m in sys.modules if 'pandas' in m]"
    done = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(REPO), "PATH": ""}, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_a_group_without_any_result_says_so_instead_of_ranking(sweeps):
    """A group whose every run failed has no best config: one line says so, where a ranking of "no result"
    lines would read as winners. A group with results still lists its configs without one after them."""
    table = pq.read_table(sweeps["seeds"][0] / "runs.parquet")
    failed = _set(table, "status", ["failed"] * table.num_rows)
    assert (
        best_table(failed)
        == best_table(failed.to_pandas())
        == "best: least_squares, momentum  (no config has a result)"
    )
    lines = best_table(table, top=8).splitlines()  # lr = 0.02 diverges with every seed: ranked last, no result
    assert lines[0] == "best: least_squares, momentum  (f − f*, median over seeds)"
    assert lines[-1].endswith(": no result  (3 runs, 3 without a result)") and "after" not in lines[-1]
