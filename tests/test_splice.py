"""Parquet files joined byte for byte (:mod:`runner.splice`), as a sweep's ``traces.parquet`` is made
from its chunk files: checked against pyarrow's own encoder and read by polars and DuckDB, readers
the project did not write.
"""

from __future__ import annotations

import os
import struct

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import runner
from runner import store, tables
from runner.batched import run_jobs
from runner.splice import CannotSplice, _read_struct, _write_struct, read_footer, splice
from runner.store import PARTS_DIR, TRACES_FILE
from tests.test_batched import GRIDS, config, jobs_of


def footer_bytes(path) -> bytes:
    data = path.read_bytes()
    (length,) = struct.unpack("<I", data[-8:-4])
    return data[-8 - length : -8]


def varied_table(n: int, seed: int) -> pa.Table:
    """Every kind of column a sweep's tables hold, with nulls: numbers, text, bools, lists, timestamps."""
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "iteration": pa.array(np.arange(n, dtype=np.int64)),
            "f": pa.array(rng.normal(size=n)),
            "x_0": pa.array(np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))),
            "run_id": pa.array([f"run{i % 7}" for i in range(n)]),
            "status": pa.array([None if i % 11 == 0 else "converged" for i in range(n)], pa.string()),
            "flag": pa.array([bool(i % 3) for i in range(n)]),
            "betas": pa.array([[0.9, 0.999]] * n, pa.list_(pa.float64())),
            "started_at": pa.array(np.arange(n, dtype=np.int64) * 1_000_000, pa.timestamp("us")),
        }
    )


@pytest.mark.parametrize(
    "options",
    [
        {},  # pyarrow's defaults: dictionaries, statistics, the Arrow schema in the key-value metadata
        {"store_schema": False, "use_dictionary": ["run_id", "status"], "write_statistics": False},  # chunk files
        {"compression": "zstd", "row_group_size": 100},
        {"compression": "lz4", "use_byte_stream_split": ["f"], "store_schema": False},  # trace files
    ],
)
def test_a_footer_decodes_and_encodes_to_pyarrows_bytes(tmp_path, options):
    path = tmp_path / "t.parquet"
    pq.write_table(varied_table(1000, 0), path, **options)
    fields, _ = _read_struct(footer_bytes(path), 0)
    out = bytearray()
    _write_struct(out, fields)
    assert bytes(out) == footer_bytes(path)


@pytest.mark.parametrize("options", [{}, {"store_schema": False, "write_statistics": False, "row_group_size": 64}])
def test_joined_files_read_as_their_rows_one_after_the_other(tmp_path, options):
    sources = []
    for k, n in enumerate([300, 1, 517]):
        sources.append(tmp_path / f"part{k}.parquet")
        pq.write_table(varied_table(n, k), sources[-1], **options)
    target = tmp_path / "all.parquet"
    assert splice(sources, target) == 818
    expected = pa.concat_tables([pq.read_table(p) for p in sources])
    pd.testing.assert_frame_equal(pq.read_table(target).to_pandas(), expected.to_pandas(), check_exact=True)  # NaN too
    assert pq.read_table(target).schema.equals(expected.schema, check_metadata=True)
    metadata = pq.ParquetFile(target).metadata
    assert metadata.num_row_groups == sum(pq.ParquetFile(p).metadata.num_row_groups for p in sources)
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        pq.ParquetFile(p).metadata.row_group(i).num_rows
        for p in sources
        for i in range(pq.ParquetFile(p).metadata.num_row_groups)
    ]
    assert pl.read_parquet(target).equals(
        pl.read_parquet(sources[0]).vstack(pl.concat(map(pl.read_parquet, sources[1:])))
    )
    counted = duckdb.sql(f"select count(*), sum(f), count(distinct run_id), count(status) from '{target}'").fetchall()[
        0
    ]
    want = expected.to_pandas()
    assert counted[0] == 818 and counted[2] == want["run_id"].nunique() and counted[3] == want["status"].notna().sum()
    assert counted[1] == pytest.approx(want["f"].sum(), rel=1e-12)


def test_files_of_different_schemas_are_refused_before_anything_is_written(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(varied_table(10, 0), a)
    pq.write_table(varied_table(10, 1).drop_columns(["flag"]), b)
    with pytest.raises(CannotSplice, match="schema"):
        splice([a, b], tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(
    "options, what",
    [({"write_page_index": True}, "page index"), ({"bloom_filter_options": {"run_id": True}}, "bloom filter")],
)
def test_what_the_splice_does_not_move_is_refused(tmp_path, options, what):
    path = tmp_path / "t.parquet"
    try:
        pq.write_table(varied_table(50, 0), path, **options)
    except TypeError:
        pytest.skip(f"this pyarrow writes no {what}")
    if what == "bloom filter" and not any(
        pq.ParquetFile(path).metadata.row_group(0).column(i).to_dict().get("bloom_filter_offset")
        for i in range(pq.ParquetFile(path).metadata.num_columns)
    ):
        pytest.skip("this pyarrow wrote no bloom filter")
    with pytest.raises(CannotSplice):
        splice([path, path], tmp_path / "out.parquet")


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(CannotSplice, match="not a parquet file"):
        read_footer(path)


def refuse(sources, path):
    raise CannotSplice("encode them")


def test_a_sweep_of_several_chunks_joins_them_as_the_tables_encoded_again_would_be(tmp_path, monkeypatch):
    run_jobs(jobs_of(GRIDS["momentum"]), tmp_path, chunk_size=3)
    parts = sorted((tmp_path / PARTS_DIR).glob(f"*.{TRACES_FILE}"))
    assert len(parts) > 2
    tables.write_tables(tmp_path)
    joined = pq.ParquetFile(tmp_path / TRACES_FILE).metadata
    assert joined.num_row_groups == len(parts)  # joined as they were, one row group each
    spliced = runner.load(tmp_path), runner.load_runs(tmp_path)
    polars_rows = pl.read_parquet(tmp_path / TRACES_FILE)
    monkeypatch.setattr(tables, "join_parquet", refuse)
    monkeypatch.setattr(tables, "joined_already", lambda sweep_dir: False)
    tables.write_tables(tmp_path)
    assert pq.ParquetFile(tmp_path / TRACES_FILE).metadata.num_row_groups < len(parts)  # encoded again
    encoded = runner.load(tmp_path), runner.load_runs(tmp_path)
    for a, b in zip(spliced, encoded, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert polars_rows.equals(pl.read_parquet(tmp_path / TRACES_FILE))


def test_a_new_sweep_joins_its_chunk_files_as_they_end_and_the_tables_keep_it(tmp_path, monkeypatch):
    joined_by = []
    real = store.Joiner.add

    def add(self, path, footer=None):
        joined_by.append(path)
        return real(self, path, footer)

    monkeypatch.setattr(store.Joiner, "add", add)
    run_jobs(jobs_of(GRIDS["momentum"]), tmp_path, chunk_size=3)
    parts = sorted((tmp_path / PARTS_DIR).glob(f"*.{TRACES_FILE}"))
    assert joined_by == parts  # each chunk's file as it ended, in chunk order
    written = (tmp_path / TRACES_FILE).stat().st_mtime_ns
    assert tables.joined_already(tmp_path)
    tables.write_tables(tmp_path)
    assert (tmp_path / TRACES_FILE).stat().st_mtime_ns == written  # kept, not written again
    assert not list(tmp_path.glob(".*.tmp"))
    joined = runner.load(tmp_path)
    monkeypatch.setattr(tables, "joined_already", lambda sweep_dir: False)
    monkeypatch.setattr(tables, "join_parquet", refuse)
    tables.write_tables(tmp_path)  # encoded again, from the chunk files
    pd.testing.assert_frame_equal(joined, runner.load(tmp_path), check_exact=True)


def test_a_joined_file_is_not_kept_when_a_chunks_runs_file_does_not_read(tmp_path, capsys):
    """The tables leave out the traces of a chunk whose runs file does not read; so the joined file, which holds
    them, is written again without them."""
    run_jobs(jobs_of(GRIDS["momentum"]), tmp_path, chunk_size=3)
    assert tables.joined_already(tmp_path)
    damaged = sorted((tmp_path / PARTS_DIR).glob(f"*.{store.RUNS_FILE}"))[0]
    written = damaged.stat()
    damaged.write_bytes(b"not parquet")
    os.utime(damaged, ns=(written.st_atime_ns, written.st_mtime_ns))  # damaged in place: no newer than the table
    tables.write_tables(tmp_path)
    assert f"tables: skipped {PARTS_DIR}/{damaged.name}" in capsys.readouterr().err
    runs, traces = runner.load_runs(tmp_path), runner.load(tmp_path)
    assert len(runs) == len(GRIDS["momentum"]) - 3
    assert set(traces["run_id"]) == set(runs["run_id"])


def test_a_sweep_with_runs_beside_its_chunks_leaves_the_table_to_write_tables(tmp_path):
    jobs = jobs_of([*GRIDS["momentum"][:4], config(optimizer="scipy", **{"optimizer.method": "BFGS"})])
    run_jobs(jobs, tmp_path, chunk_size=2)  # two chunks, and the scipy job in its own folder
    assert not (tmp_path / TRACES_FILE).exists() and not list(tmp_path.glob(".*.tmp"))
    assert not tables.joined_already(tmp_path)
    tables.write_tables(tmp_path)
    assert len(runner.load_runs(tmp_path)) == 5 and runner.load(tmp_path)["run_id"].nunique() == 5


def test_a_resumed_sweep_is_joined_by_write_tables(tmp_path):
    grid = GRIDS["momentum"]
    run_jobs(jobs_of(grid[:4]), tmp_path, chunk_size=2)
    first = (tmp_path / TRACES_FILE).stat().st_mtime_ns
    run_jobs(jobs_of(grid), tmp_path, chunk_size=2)  # more configs into the folder: parts of two launches
    assert (tmp_path / TRACES_FILE).stat().st_mtime_ns == first  # not joined by the second launch
    assert not tables.joined_already(tmp_path)
    tables.write_tables(tmp_path)
    assert runner.load(tmp_path)["run_id"].nunique() == len(grid) == len(runner.load_runs(tmp_path))


def test_ctrl_c_leaves_no_joined_file(tmp_path, monkeypatch):
    from runner import batched

    real = batched.run_chunk
    calls = []

    def interrupted_second(chunk):
        calls.append(chunk)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(chunk)

    monkeypatch.setattr(batched, "run_chunk", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs_of(GRIDS["momentum"]), tmp_path, chunk_size=3)
    assert not (tmp_path / TRACES_FILE).exists() and not list(tmp_path.glob(".*.tmp"))
