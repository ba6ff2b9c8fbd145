"""One schema, everywhere: every file has the same column types however a value was typed and
whichever launcher wrote it, as pyarrow, polars and DuckDB read the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from runner.app import config_dir
from runner.config import SETTING_TYPES, config_columns, config_types, factory_types
from runner.run import run

REPO = Path(__file__).resolve().parent.parent
FLOAT_LIST = pa.list_(pa.float64())
# lr and momentum typed as integers in some jobs and as floats in others
GRID = ["optimizer=momentum", "lr=1,0.5", "optimizer.momentum=0,0.5", "max_iter=20", "tol=0"]


def sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "runner", "-m", *args, "hydra.callbacks.sweep_end.figures=false"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The grid under the basic and the batched launcher, and a sin_cos sweep (no known f*)."""
    root = tmp_path_factory.mktemp("schema")
    runs = {
        "basic": ["hydra/launcher=basic", *GRID],
        "batched": ["hydra/launcher=batched", *GRID],
        "sin_cos": [
            "objective=sin_cos",
            "optimizer=adam",
            "optimizer.betas=[0,0.9],[0.5,0.999]",
            "lr=1,0.01",
            "max_iter=5",
        ],
    }
    dirs = {}
    for name, args in runs.items():
        dirs[name] = root / name
        done = sweep(*args, f"hydra.sweep.dir={dirs[name]}", cwd=root)
        assert done.returncode == 0, done.stderr
    return dirs


def arrow_types(schema: pa.Schema) -> dict:
    return {field.name: field.type for field in schema}


def test_a_single_run_s_trace_has_the_same_types_however_values_were_typed(compose_cfg, tmp_path):
    schemas = {}
    for lr in ("1", "0.5"):
        for m in ("0", "0.5"):
            cfg = compose_cfg("optimizer=momentum", f"lr={lr}", f"optimizer.momentum={m}", "max_iter=3")
            assert run(cfg, tmp_path / f"{lr}-{m}")["status"] == "max_iter"
            schemas[lr, m] = pq.read_schema(tmp_path / f"{lr}-{m}" / "trace.parquet").remove_metadata()
    first = schemas["1", "0"]
    assert all(schema == first for schema in schemas.values()), schemas
    types = arrow_types(first)
    assert types["lr"] == types["optimizer.momentum"] == types["objective.a"] == types["f_star"] == pa.float64()
    assert types["max_iter"] == types["seed"] == types["iteration"] == pa.int64()
    assert types["objective.x0"] == FLOAT_LIST and types["trace.x"] == pa.bool_()
    assert pq.read_table(tmp_path / "1-0" / "trace.parquet")["lr"].to_pylist() == [1.0] * 4


def test_summary_json_gives_started_at_in_utc(compose_cfg, tmp_path):
    summary = run(compose_cfg("max_iter=2"), tmp_path)
    started = datetime.fromisoformat(json.loads((tmp_path / "summary.json").read_text())["started_at"])
    assert summary["started_at"] == started.isoformat(timespec="microseconds")
    assert started.utcoffset() == timedelta(0)
    assert abs((datetime.now(started.tzinfo) - started).total_seconds()) < 600


def test_job_traces_glob_to_the_types_of_traces_parquet(sweeps):
    """polars and DuckDB over the job folders give the column types of the sweep's traces.parquet."""
    sweep_dir = sweeps["basic"]
    glob = str(sweep_dir / "**" / "trace.parquet")
    traces = pq.read_schema(sweep_dir / "traces.parquet")
    files = sorted(sweep_dir.rglob("trace.parquet"))
    assert len(files) == 4
    assert len({pq.read_schema(f).remove_metadata() for f in files}) == 1  # pyarrow: one schema

    scanned = pl.scan_parquet(glob).collect()  # fails on Int64 != Float64 when lr=1 is an integer
    assert len(scanned) == 4 * 21
    table = pl.read_parquet(sweep_dir / "traces.parquet")
    assert {name: table.schema[name] for name in scanned.columns} == dict(scanned.schema)
    assert scanned.schema["lr"] == pl.Float64 and scanned.schema["optimizer.momentum"] == pl.Float64
    assert sorted(scanned["lr"].unique().to_list()) == [0.5, 1.0]

    con = duckdb.connect()
    # The job folders are named key=value (lr=0.5/optimizer=momentum): DuckDB would take them for
    # Hive partitions and read lr from the folder name, as text, instead of from the file.
    describe = "DESCRIBE SELECT * FROM read_parquet('{}', union_by_name=true, hive_partitioning=false)"
    glob_types = {r[0]: r[1] for r in con.execute(describe.format(glob)).fetchall()}
    table_types = {r[0]: r[1] for r in con.execute(describe.format(sweep_dir / "traces.parquet")).fetchall()}
    assert glob_types == {name: table_types[name] for name in glob_types}
    assert glob_types["lr"] == "DOUBLE" and glob_types["objective.x0"] == "DOUBLE[]"
    assert set(table_types) - set(glob_types) == {"status", "job"}
    assert {name: arrow_types(traces)[name] for name in scanned.columns} == arrow_types(
        pq.read_schema(files[0]).remove_metadata()
    )


def test_every_trace_file_splits_its_floats_and_compresses_with_lz4_and_other_readers_agree(sweeps, tmp_path):
    """Trace files (a run's, a chunk's, the sweep's) are written as runner.store.trace_file_options says:
    floating columns BYTE_STREAM_SPLIT, pages LZ4_RAW; polars and DuckDB read every value pyarrow reads,
    floats bit for bit."""
    files = [p for sweep_dir in sweeps.values() for p in sorted(sweep_dir.rglob("trace*.parquet"))]
    files += sorted(sweeps["batched"].glob("parts/*.traces.parquet"))
    assert {p.name for p in files} >= {"trace.parquet", "traces.parquet"} and any("parts" in p.parts for p in files)
    con = duckdb.connect()
    for k, path in enumerate(files):
        meta = pq.ParquetFile(path).metadata
        schema = pq.read_schema(path)
        for group in range(meta.num_row_groups):
            for i in range(meta.num_columns):
                column = meta.row_group(group).column(i)
                assert column.compression == "LZ4", (path, column.path_in_schema)  # pyarrow's name of LZ4_RAW
                if column.path_in_schema in ("f", "grad_norm", "time_s", "x_0"):
                    assert "BYTE_STREAM_SPLIT" in column.encodings, (path, column.path_in_schema)
        ours = pq.read_table(path)
        plain = tmp_path / f"{k}.parquet"  # the same bytes at a path without [ ] (a glob to polars and DuckDB)
        plain.write_bytes(path.read_bytes())
        theirs = {
            "polars": pl.read_parquet(plain).to_arrow(),
            "duckdb": con.sql(f"SELECT * FROM '{plain}'").to_arrow_table(),
        }
        for reader, table in theirs.items():
            assert table.num_rows == ours.num_rows, (path, reader)
            for name in ("f", "grad_norm", "x_0", "time_s"):
                got = table[name].to_numpy().view("int64")
                assert (got == ours[name].to_numpy().view("int64")).all(), (path, reader, name)
        assert schema.field("f").type == pa.float64()


def test_both_launchers_write_the_same_schemas(sweeps):
    for table in ("traces.parquet", "runs.parquet"):
        basic = pq.read_schema(sweeps["basic"] / table).remove_metadata()
        batched = pq.read_schema(sweeps["batched"] / table).remove_metadata()
        assert arrow_types(basic) == arrow_types(batched), table
    # the batched chunk files too, as polars and DuckDB read them
    parts = str(sweeps["batched"] / "parts" / "*.traces.parquet")
    traces = pl.read_parquet(sweeps["basic"] / "traces.parquet")
    assert dict(pl.scan_parquet(parts).collect().schema) == dict(traces.schema)
    con = duckdb.connect()
    describe = "DESCRIBE SELECT * FROM read_parquet('{}', union_by_name=true)"
    assert (
        con.execute(describe.format(parts)).fetchall()
        == con.execute(describe.format(sweeps["basic"] / "traces.parquet")).fetchall()
    )


def test_the_runs_table_has_declared_types_and_no_null_column(sweeps):
    for name, sweep_dir in sweeps.items():
        for table in ("runs.parquet", "traces.parquet"):
            schema = pq.read_schema(sweep_dir / table)
            assert not [f.name for f in schema if pa.types.is_null(f.type)], (name, table)
        runs = arrow_types(pq.read_schema(sweep_dir / "runs.parquet"))
        assert runs["started_at"] == pa.timestamp("us", tz="UTC"), name
        assert runs["error"] == runs["traceback"] == runs["config"] == pa.string()
        assert runs["f_star"] == runs["f_gap"] == runs["lr"] == pa.float64()
        assert runs["objective.x0"] == FLOAT_LIST and runs["iterations"] == pa.int64()
    runs = pq.read_table(sweeps["sin_cos"] / "runs.parquet")  # sin_cos has no known f*: null, yet float64
    assert runs["f_star"].null_count == runs["f_gap"].null_count == 4
    assert runs.schema.field("optimizer.betas").type == FLOAT_LIST
    assert sorted(runs["optimizer.betas"].to_pylist()) == [[0.0, 0.9]] * 2 + [[0.5, 0.999]] * 2
    started = runs["started_at"].to_pylist()[0]
    assert abs((datetime.now(started.tzinfo) - started).total_seconds()) < 600  # UTC, not local time read as UTC
    # DuckDB sees the same
    con = duckdb.connect()
    types = {
        r[0]: r[1]
        for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{sweeps['sin_cos'] / 'runs.parquet'}')").fetchall()
    }
    assert types["started_at"] == "TIMESTAMP WITH TIME ZONE" and types["f_star"] == "DOUBLE"
    assert types["optimizer.betas"] == "DOUBLE[]"


def test_traces_carry_f_star_so_the_gap_needs_no_join(sweeps):
    traces = pl.read_parquet(sweeps["batched"] / "traces.parquet")
    assert traces["f_star"].to_list() == [0.0] * len(traces)  # the shifted quadratic's minimum
    gaps = traces.group_by("run_id").agg((pl.col("f") - pl.col("f_star")).last().alias("gap"))
    runs = pl.read_parquet(sweeps["batched"] / "runs.parquet").select("run_id", "f_gap")
    joined = gaps.join(runs, on="run_id")
    assert len(joined) == 4 and (joined["gap"] == joined["f_gap"]).all()
    sin_cos = pl.read_parquet(sweeps["sin_cos"] / "traces.parquet")
    assert sin_cos.schema["f_star"] == pl.Float64 and sin_cos["f_star"].null_count() == len(sin_cos)


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("option", sorted(f"{p.parent.name}/{p.stem}" for p in Path(config_dir()).glob("o*/*.yaml")))
def test_every_option_key_has_a_declared_type_its_default_has(option):
    """Each key of each conf/ option is typed by its factory (annotation or default), and the
    yaml's own value, where it gives one, is of that type."""
    node = _yaml(Path(config_dir()) / f"{option}.yaml")
    node = node.get("optimizer", node)  # optimizer/scipy.yaml is a _global_ package
    declared = factory_types(node["_target_"])
    python_types = {
        pa.float64(): (float,),
        pa.int64(): (int,),
        pa.bool_(): (bool,),
        pa.string(): (str, dict),
        FLOAT_LIST: (list,),
    }
    for key, value in node.items():
        if key == "_target_" or key == "lr":
            continue
        assert key in declared, f"{option}: {key} has no declared type"
        if value is not None and not (isinstance(value, str) and value.startswith("${")):
            assert isinstance(value, python_types[declared[key]]), (option, key, value, declared[key])


def test_the_settings_types_are_those_of_conf_config_yaml():
    cfg = _yaml(Path(config_dir()) / "config.yaml")
    flat = {**{k: v for k, v in cfg.items() if not isinstance(v, dict)}}
    flat.update({f"trace.{k}": v for k, v in cfg["trace"].items()})
    python = {pa.float64(): float, pa.int64(): int, pa.bool_(): bool, pa.string(): str}
    for key, type_ in SETTING_TYPES.items():
        assert type(flat[key]) is python[type_], key


def test_config_columns_take_the_declared_type_not_the_typed_one(compose_cfg):
    as_int = compose_cfg("optimizer=adam", "lr=1", "optimizer.betas=[0,1]", "optimizer.eps=0", "objective.x0=[1,2]")
    as_float = compose_cfg("optimizer=adam", "lr=0.5", "optimizer.betas=[0.5,0.9]", "optimizer.eps=1e-8")
    assert config_types(as_int) == config_types(as_float)
    columns = config_columns(as_int)
    assert [type(columns[k]) for k in ("lr", "optimizer.eps", "objective.a")] == [float] * 3
    assert columns["optimizer.betas"] == [0.0, 1.0] and columns["objective.x0"] == [1.0, 2.0]
    assert config_columns(compose_cfg("lr=abc"))["lr"] is None  # not a number: null (the config keeps "abc")
    scipy = compose_cfg("optimizer=scipy", "+optimizer.options.maxls=5")
    assert config_types(scipy)["optimizer.options"] == config_types(scipy)["optimizer.method"] == pa.string()
    assert config_columns(scipy)["optimizer.options"] == '{"maxls": 5}' and config_columns(scipy)["lr"] is None
